//! The floors: an empty BPF program (`r0 = 0; exit`) on kfree_skb, loaded and
//! attached with raw syscalls, so that its cost is only what the kernel pays
//! to run any BPF program on that hook (the hook's glue, the program call, and
//! in the stats storm, with `kernel.bpf_stats_enabled`, the two clock reads of
//! the statistics themselves, which every row pays alike). One on each hook netdrop may use:
//!
//! - the classic tracepoint skb:kfree_skb: bpf(BPF_PROG_LOAD,
//!   BPF_PROG_TYPE_TRACEPOINT, license "GPL"), then
//!   perf_event_open(PERF_TYPE_TRACEPOINT, config = the tracepoint's id from
//!   tracefs, pid -1, cpu 0), PERF_EVENT_IOC_SET_BPF and PERF_EVENT_IOC_ENABLE.
//!   A tracepoint's BPF programs run on every CPU whatever the event's CPU (as
//!   libbpf attaches them). The kernel builds the trace record before the call.
//! - the raw tracepoint kfree_skb: BPF_PROG_TYPE_RAW_TRACEPOINT, attached with
//!   bpf(BPF_RAW_TRACEPOINT_OPEN, name "kfree_skb"); the program is called with
//!   the tracepoint's arguments, no record built.
//!
//! And the SYN hook's floor, an empty `fentry:tcp_conn_request` ([`fentry`]).
//!
//! Closing the descriptors (Drop) detaches and unloads it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::parse::{self, Hook};

mod fentry;
pub use fentry::{EmptyFentry, FUNCTION as FENTRY_FUNCTION, NAME_FENTRY, btf_func_id};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
const PERF_TYPE_TRACEPOINT: u32 = 2;
/// _IOW('$', 8, __u32)
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
/// _IO('$', 0)
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// `union bpf_attr` for BPF_PROG_LOAD up to `core_relo_cnt`: the tracepoint
/// programs leave the later fields zero, the fentry one sets `attach_btf_id`
/// (a kernel older than a field takes it as long as it is zero).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    /// core_relo_cnt: 0 (explicit, so that no padding byte is left unset).
    core_relo_cnt: u32,
}

/// `union bpf_attr` for BPF_RAW_TRACEPOINT_OPEN, without the later `cookie`
/// (zero-filled by the kernel).
#[repr(C)]
struct RawTpOpenAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

/// `struct perf_event_attr` up to config1 (PERF_ATTR_SIZE_VER0, 64 bytes).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

/// The programs' names in `bpftool prog show` (at most 15 characters).
pub const NAME: &str = "nd_bench_empty";
pub const NAME_RAW: &str = "nd_bench_raw_tp";

/// A loaded and attached empty program; detached and unloaded on Drop.
pub struct EmptyProg {
    prog: OwnedFd,
    /// The perf event (tracepoint) or the raw tracepoint link.
    _attachment: OwnedFd,
}

/// Where tracefs is: /sys/kernel/tracing, else /sys/kernel/debug/tracing; if
/// neither has events, tracefs is mounted at /sys/kernel/tracing (returned as
/// `true`: the caller unmounts it at the end).
pub fn tracefs() -> Result<(PathBuf, bool)> {
    for d in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(d).join("events").is_dir() {
            return Ok((PathBuf::from(d), false));
        }
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        bail!(
            "no tracefs, and mounting it at /sys/kernel/tracing failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok((PathBuf::from("/sys/kernel/tracing"), true))
}

/// Unmounts a tracefs that [`tracefs`] mounted.
pub fn unmount_tracefs(dir: &Path) {
    if let Ok(c) = CString::new(dir.as_os_str().as_encoded_bytes()) {
        // SAFETY: a valid path string.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

impl EmptyProg {
    /// Loads the program and attaches it to kfree_skb: the tracepoint
    /// `events/skb/kfree_skb` of `tracefs`, or the raw tracepoint.
    pub fn attach(tracefs: &Path, hook: Hook) -> Result<EmptyProg> {
        match hook {
            Hook::Tracepoint => {
                let prog = load(BPF_PROG_TYPE_TRACEPOINT, NAME)?;
                let event = attach_tracepoint(tracefs, &prog)?;
                Ok(EmptyProg {
                    prog,
                    _attachment: event,
                })
            }
            Hook::RawTp => {
                let prog = load(BPF_PROG_TYPE_RAW_TRACEPOINT, NAME_RAW)?;
                let link = attach_raw_tp(&prog)?;
                Ok(EmptyProg {
                    prog,
                    _attachment: link,
                })
            }
        }
    }

    /// run_time_ns and run_cnt from /proc/self/fdinfo of the program.
    pub fn stats(&self) -> Result<(u64, u64)> {
        let path = format!("/proc/self/fdinfo/{}", self.prog.as_raw_fd());
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse::fdinfo_prog_stats(&text).with_context(|| format!("{path}: no run_time_ns/run_cnt"))
    }
}

/// Loads `r0 = 0; exit` as a program of `prog_type` named `name`.
fn load(prog_type: u32, name: &str) -> Result<OwnedFd> {
    // r0 = 0 (BPF_ALU64 | BPF_MOV | BPF_K); exit (BPF_JMP | BPF_EXIT).
    let insns: [u64; 2] = [0xb7, 0x95];
    let license = c"GPL";
    let mut log = vec![0u8; 4096];
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..Default::default()
    };
    let n = name.len().min(15);
    attr.prog_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    prog_load(
        &mut attr,
        &log,
        &format!("empty program of type {prog_type}"),
    )
}

/// BPF_PROG_LOAD with `attr` (a `bpf_attr` prefix whose log buffer is `log`):
/// the program's descriptor, or the error with the verifier's log.
pub(crate) fn prog_load<A>(attr: &mut A, log: &[u8], what: &str) -> Result<OwnedFd> {
    // SAFETY: attr points at valid instruction, license and log buffers that
    // outlive the call; the size is that of the struct passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            std::ptr::from_mut(attr),
            std::mem::size_of::<A>() as u32,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        let log = String::from_utf8_lossy(log);
        bail!(
            "BPF_PROG_LOAD ({what}): {e}; verifier: {}",
            log.trim_end_matches('\0').trim()
        );
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches `prog` to skb:kfree_skb through a perf event; returns the event.
fn attach_tracepoint(tracefs: &Path, prog: &OwnedFd) -> Result<OwnedFd> {
    let id_path = tracefs.join("events/skb/kfree_skb/id");
    let tp_id: u64 = std::fs::read_to_string(&id_path)
        .with_context(|| format!("reading {}", id_path.display()))?
        .trim()
        .parse()
        .with_context(|| format!("{}: not a number", id_path.display()))?;
    let pattr = PerfEventAttr {
        kind: PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: tp_id,
        sample_period: 1,
        wakeup_events: 1,
        ..Default::default()
    };
    // SAFETY: pattr is a valid perf_event_attr of the size it states.
    let efd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &raw const pattr,
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if efd < 0 {
        bail!(
            "perf_event_open(skb:kfree_skb): {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let event = unsafe { OwnedFd::from_raw_fd(efd as i32) };
    for (req, arg, what) in [
        (
            PERF_EVENT_IOC_SET_BPF,
            prog.as_raw_fd(),
            "PERF_EVENT_IOC_SET_BPF",
        ),
        (PERF_EVENT_IOC_ENABLE, 0, "PERF_EVENT_IOC_ENABLE"),
    ] {
        // SAFETY: ioctls on our perf event descriptor with an int argument.
        if unsafe { libc::ioctl(event.as_raw_fd(), req, arg) } != 0 {
            bail!("{what}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(event)
}

/// Attaches `prog` to the raw tracepoint kfree_skb; returns the link.
fn attach_raw_tp(prog: &OwnedFd) -> Result<OwnedFd> {
    raw_tracepoint_open(prog, Some(c"kfree_skb"), "kfree_skb")
}

/// BPF_RAW_TRACEPOINT_OPEN: `prog` on the raw tracepoint `name`, or with no
/// name a tracing program (fentry) on the function it was loaded for; the link.
pub(crate) fn raw_tracepoint_open(
    prog: &OwnedFd,
    name: Option<&std::ffi::CStr>,
    what: &str,
) -> Result<OwnedFd> {
    let attr = RawTpOpenAttr {
        name: name.map_or(0, |n| n.as_ptr() as u64),
        prog_fd: prog.as_raw_fd() as u32,
        _pad: 0,
    };
    // SAFETY: attr points at a NUL-terminated name (or none) that outlives the
    // call; the size is that of the struct passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_RAW_TRACEPOINT_OPEN,
            &raw const attr,
            std::mem::size_of::<RawTpOpenAttr>() as u32,
        )
    };
    if fd < 0 {
        bail!(
            "BPF_RAW_TRACEPOINT_OPEN({what}): {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
