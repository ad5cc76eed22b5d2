//! The floor of a function hook: an empty program (`r0 = 0; exit`) on
//! `fentry:tcp_conn_request`, loaded and attached with raw syscalls.
//!
//! bpf(BPF_PROG_LOAD, BPF_PROG_TYPE_TRACING, expected_attach_type
//! BPF_TRACE_FENTRY, attach_btf_id = the id of the FUNC `tcp_conn_request` in
//! /sys/kernel/btf/vmlinux), then bpf(BPF_RAW_TRACEPOINT_OPEN, name NULL),
//! which attaches a tracing program to its BTF target. Its cost is the
//! trampoline's and the program call's: what any fentry tracer of that
//! function pays on every SYN. Closing the descriptors (Drop) detaches and
//! unloads it.

use std::os::fd::OwnedFd;

use anyhow::{Context, Result, bail};

use super::ProgLoadAttr;

const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_FENTRY: u32 = 24;
const BTF_MAGIC: u16 = 0xeb9f;
const BTF_KIND_FUNC: u32 = 12;

/// The function the SYN hook of netdrop watches.
pub const FUNCTION: &str = "tcp_conn_request";
/// The program's name in `bpftool prog show`.
pub const NAME_FENTRY: &str = "nd_bench_fentry";

/// An empty fentry program attached to [`FUNCTION`]; detached and unloaded on Drop.
pub struct EmptyFentry {
    _prog: OwnedFd,
    _link: OwnedFd,
}

impl EmptyFentry {
    /// Loads and attaches it (BTF from /sys/kernel/btf/vmlinux).
    pub fn attach() -> Result<EmptyFentry> {
        let btf = std::fs::read("/sys/kernel/btf/vmlinux")
            .context("reading /sys/kernel/btf/vmlinux (the kernel's BTF)")?;
        let id = btf_func_id(&btf, FUNCTION)?
            .with_context(|| format!("no FUNC {FUNCTION} in the kernel's BTF"))?;
        let prog = load(id)?;
        let link = super::raw_tracepoint_open(&prog, None, &format!("fentry:{FUNCTION}"))?;
        Ok(EmptyFentry {
            _prog: prog,
            _link: link,
        })
    }
}

fn load(attach_btf_id: u32) -> Result<OwnedFd> {
    // r0 = 0; exit (fentry programs must return 0).
    let insns: [u64; 2] = [0xb7, 0x95];
    let license = c"GPL";
    let mut log = vec![0u8; 4096];
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_TRACING,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        expected_attach_type: BPF_TRACE_FENTRY,
        attach_btf_id,
        ..Default::default()
    };
    attr.prog_name[..NAME_FENTRY.len()].copy_from_slice(NAME_FENTRY.as_bytes());
    super::prog_load(
        &mut attr,
        &log,
        &format!("empty fentry program, BTF id {attach_btf_id}"),
    )
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Bytes that follow the 12-byte `struct btf_type` of `kind` with `vlen` members.
fn extra_len(kind: u32, vlen: usize) -> Result<usize> {
    Ok(match kind {
        // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
        2 | 7..=12 | 16 | 18 => 0,
        // INT, VAR, DECL_TAG: one u32
        1 | 14 | 17 => 4,
        // ARRAY
        3 => 12,
        // STRUCT, UNION, DATASEC, ENUM64: 12 bytes per member
        4 | 5 | 15 | 19 => 12 * vlen,
        // ENUM, FUNC_PROTO: 8 bytes per member
        6 | 13 => 8 * vlen,
        _ => bail!("BTF: unknown kind {kind}"),
    })
}

/// The type id of the FUNC named `name` in a raw BTF blob (little-endian, as
/// /sys/kernel/btf/vmlinux on x86): walks the type section, ids from 1.
pub fn btf_func_id(btf: &[u8], name: &str) -> Result<Option<u32>> {
    let magic = btf.get(0..2).map(|m| u16::from_le_bytes([m[0], m[1]]));
    if magic != Some(BTF_MAGIC) {
        bail!("BTF: bad magic {magic:x?}");
    }
    let field = |at| u32_at(btf, at).context("BTF: truncated header");
    let hdr_len = field(4)? as usize;
    let (type_off, type_len) = (field(8)? as usize, field(12)? as usize);
    let (str_off, str_len) = (field(16)? as usize, field(20)? as usize);
    let types = btf
        .get(hdr_len + type_off..hdr_len + type_off + type_len)
        .context("BTF: type section out of bounds")?;
    let strings = btf
        .get(hdr_len + str_off..hdr_len + str_off + str_len)
        .context("BTF: string section out of bounds")?;
    let name_at = |off: usize| -> Option<&[u8]> {
        let s = strings.get(off..)?;
        Some(&s[..s.iter().position(|&c| c == 0)?])
    };
    let mut at = 0;
    let mut id = 1u32;
    while at < types.len() {
        let name_off = u32_at(types, at).context("BTF: truncated type")? as usize;
        let info = u32_at(types, at + 4).context("BTF: truncated type")?;
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        if kind == BTF_KIND_FUNC && name_at(name_off) == Some(name.as_bytes()) {
            return Ok(Some(id));
        }
        at += 12 + extra_len(kind, vlen)?;
        id += 1;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob: INT "int", FUNC_PROTO (1 param), FUNC "f", STRUCT "s" (2 members), FUNC "tcp_conn_request".
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0f\0s\0tcp_conn_request\0".to_vec();
        let mut t = Vec::new();
        let mut ty = |name: u32, kind: u32, vlen: u32, size: u32, extra: usize| {
            for v in [name, (kind << 24) | vlen, size] {
                t.extend(v.to_le_bytes());
            }
            t.extend(std::iter::repeat_n(0u8, extra));
        };
        ty(1, 1, 0, 4, 4); // id 1 INT int
        ty(0, 13, 1, 1, 8); // id 2 FUNC_PROTO
        ty(5, 12, 0, 2, 0); // id 3 FUNC f
        ty(7, 4, 2, 8, 24); // id 4 STRUCT s
        ty(9, 12, 0, 2, 0); // id 5 FUNC tcp_conn_request
        let mut b = Vec::new();
        b.extend(BTF_MAGIC.to_le_bytes());
        b.extend([1u8, 0]);
        for v in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            b.extend(v.to_le_bytes());
        }
        b.extend(t);
        b.extend(strings);
        b
    }

    #[test]
    fn finds_the_func_id() {
        let b = blob();
        assert_eq!(btf_func_id(&b, "tcp_conn_request").unwrap(), Some(5));
        assert_eq!(btf_func_id(&b, "f").unwrap(), Some(3));
        assert_eq!(
            btf_func_id(&b, "s").unwrap(),
            None,
            "a STRUCT is not a FUNC"
        );
        assert_eq!(btf_func_id(&b, "int").unwrap(), None);
        assert!(btf_func_id(&b[..10], "f").is_err());
        assert!(btf_func_id(b"nope", "f").is_err());
    }

    /// On a kernel with BTF, tcp_conn_request is a FUNC (reads the file only).
    #[test]
    fn the_running_kernel_has_the_function() {
        let Ok(b) = std::fs::read("/sys/kernel/btf/vmlinux") else {
            return;
        };
        assert!(btf_func_id(&b, FUNCTION).unwrap().is_some());
        assert_eq!(btf_func_id(&b, "no_such_function_here").unwrap(), None);
    }
}
