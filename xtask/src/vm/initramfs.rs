//! The guest's initramfs: busybox, the /init script, the kernel modules the
//! tests need (with their dependencies), and the Debian tools the tests call
//! (iproute2, ping, bpftool) with their shared libraries. The binaries under
//! test are not in it: they come over 9p from the host's share folder.
//!
//! Written as an uncompressed newc cpio archive (every kernel reads one).

use std::{
    collections::BTreeSet,
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use super::kernels::Kernel;

/// Modules the guest loads at boot: 9p over virtio for the share, veth for the
/// tests' links, the queueing disciplines they use, sock_diag for owners,
/// conntrack and nftables for the netfilter tests (the guest has no modprobe:
/// nothing is loaded on demand; nft_counter is its own module before 5.16ish).
pub const MODULES: &[&str] = &[
    "virtio",
    "virtio_ring",
    "virtio_pci",
    "9pnet",
    "9pnet_virtio",
    "9p",
    "veth",
    "sch_tbf",
    "inet_diag",
    "tcp_diag",
    "udp_diag",
    // libcrc32c's crypto (a softdep, not in its depends=): conntrack needs it.
    "crc32c_generic",
    "nf_conntrack",
    "nf_tables",
    "nft_ct",
    "nft_counter",
    "nft_compat",
];

/// Host programs copied in (with their libraries): the tests call them.
pub const TOOLS: &[(&str, &str)] = &[
    ("/usr/sbin/ip", "usr/sbin/ip"),
    ("/usr/sbin/tc", "usr/sbin/tc"),
    ("/usr/sbin/bpftool", "usr/sbin/bpftool"),
    ("/usr/bin/ping", "usr/bin/ping"),
    ("/usr/bin/setpriv", "usr/bin/setpriv"),
    ("/usr/sbin/nft", "usr/sbin/nft"),
    // iptables-nft (xtables-nft-multi: its mode comes from the name it is run by).
    ("/usr/sbin/xtables-nft-multi", "usr/sbin/iptables"),
];

/// iptables-nft's extensions the tests use (dlopened, not in ldd's list).
pub const XTABLES: &str = "/usr/lib/x86_64-linux-gnu/xtables";
pub const XTABLES_EXTENSIONS: &[&str] = &["libxt_standard.so", "libxt_udp.so", "libxt_tcp.so"];

const BUSYBOX: &str = "/bin/busybox";
const INIT: &str = include_str!("../../vm/init");

/// A newc cpio archive being written.
struct Cpio {
    out: Vec<u8>,
    ino: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    fn new() -> Cpio {
        Cpio {
            out: Vec::new(),
            ino: 1,
            dirs: BTreeSet::new(),
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        let name = name.trim_start_matches('/');
        let hdr = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.ino += 1;
        self.out.extend_from_slice(hdr.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// Creates `path`'s parent directories (once each).
    fn parents(&mut self, path: &str) {
        let path = path.trim_start_matches('/');
        let mut acc = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for p in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(p);
            if self.dirs.insert(acc.clone()) {
                self.entry(&acc.clone(), 0o040755, &[]);
            }
        }
    }

    fn dir(&mut self, path: &str) {
        self.parents(&format!("{path}/x"));
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.parents(path);
        self.entry(path, 0o100000 | mode, data);
    }

    fn symlink(&mut self, path: &str, target: &str) {
        self.parents(path);
        self.entry(path, 0o120777, target.as_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        while !self.out.len().is_multiple_of(512) {
            self.out.push(0);
        }
        self.out
    }
}

/// A module file's bytes, decompressed.
fn module_bytes(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else if name.ends_with(".gz") {
        Some("gzip")
    } else {
        None
    };
    match tool {
        None => fs::read(path).with_context(|| format!("reading {name}")),
        Some(t) => {
            let out = Command::new(t)
                .args(["-dc"])
                .arg(path)
                .output()
                .with_context(|| format!("{t} -dc {name}"))?;
            if !out.status.success() {
                bail!("{t} -dc {name} failed");
            }
            Ok(out.stdout)
        }
    }
}

/// A module's `depends=` from its .modinfo section (no depmod needed).
pub fn depends_of(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace('-', "_"))
        .collect()
}

/// Every module file under `dir`, by module name.
fn index(dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            index(&p, out);
            continue;
        }
        let f = e.file_name().to_string_lossy().into_owned();
        for ext in [".ko", ".ko.xz", ".ko.zst", ".ko.gz"] {
            if let Some(stem) = f.strip_suffix(ext) {
                out.push((stem.replace('-', "_"), p.clone()));
            }
        }
    }
}

/// `want` and their dependencies, in load order: (name, bytes). Modules built
/// into this kernel are not files and are left out.
pub fn modules(kernel: &Kernel, want: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut idx = Vec::new();
    index(&kernel.modules.join("kernel"), &mut idx);
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut seen = BTreeSet::new();
    fn add(
        m: &str,
        idx: &[(String, PathBuf)],
        seen: &mut BTreeSet<String>,
        out: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        if !seen.insert(m.to_string()) {
            return Ok(());
        }
        let Some((_, path)) = idx.iter().find(|(n, _)| n == m) else {
            return Ok(()); // built in
        };
        let bytes = module_bytes(path)?;
        for d in depends_of(&bytes) {
            add(&d, idx, seen, out)?;
        }
        out.push((m.to_string(), bytes));
        Ok(())
    }
    for m in want {
        add(m, &idx, &mut seen, &mut out)?;
    }
    Ok(out)
}

/// Writes the initramfs for `kernel` to `out`.
pub fn build(kernel: &Kernel, out: &Path) -> Result<()> {
    let mut c = Cpio::new();
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "mnt", "tmp", "run", "etc",
        "root", "var/run",
    ] {
        c.dir(d);
    }
    let bb = fs::read(BUSYBOX).with_context(|| {
        format!("reading {BUSYBOX}: install busybox-static (scripts/setup.sh does)")
    })?;
    c.file("bin/busybox", 0o755, &bb);
    c.symlink("bin/sh", "busybox");
    c.file("init", 0o755, INIT.as_bytes());
    let mut libs = BTreeSet::new();
    for (host, guest) in TOOLS {
        let data = fs::read(host).with_context(|| format!("reading {host}"))?;
        c.file(guest, 0o755, &data);
        libs.extend(crate::ldd::libraries(host)?);
    }
    for lib in libs {
        let data = fs::read(&lib).with_context(|| format!("reading {}", lib.display()))?;
        let mode = fs::metadata(&lib)?.permissions().mode() & 0o777;
        c.file(&lib.to_string_lossy(), mode | 0o444, &data);
        // ld.so is asked for as /lib64/...: keep the path ldd printed, and
        // make /lib and /lib64 resolve alike.
    }
    for ext in XTABLES_EXTENSIONS {
        let path = format!("{XTABLES}/{ext}");
        let data = fs::read(&path).with_context(|| format!("reading {path}"))?;
        c.file(&path, 0o755, &data);
    }
    let mods = modules(kernel, MODULES)?;
    let mut order = String::new();
    for (name, bytes) in &mods {
        c.file(&format!("lib/modules/{name}.ko"), 0o644, bytes);
        order.push_str(&format!("{name}.ko\n"));
    }
    c.file("lib/modules/load.order", 0o644, order.as_bytes());
    let img = c.finish();
    let mut f = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    f.write_all(&img)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_are_read_from_modinfo() {
        let ko = b"\x7fELF junk\0license=GPL\0depends=9pnet,virtio-ring\0name=9pnet_virtio\0";
        assert_eq!(depends_of(ko), ["9pnet", "virtio_ring"]);
        assert!(depends_of(b"\0depends=\0").is_empty());
        assert!(depends_of(b"nothing").is_empty());
    }

    #[test]
    fn cpio_entries_are_aligned_and_end_with_a_trailer() {
        let mut c = Cpio::new();
        c.file("a/b/c", 0o644, b"hello");
        c.symlink("a/l", "c");
        let img = c.finish();
        assert_eq!(img.len() % 512, 0);
        let text = String::from_utf8_lossy(&img);
        assert!(text.starts_with("070701"));
        // a, a/b, a/b/c, a/l, trailer
        assert_eq!(text.matches("070701").count(), 5);
        assert!(text.contains("TRAILER!!!"));
    }
}
