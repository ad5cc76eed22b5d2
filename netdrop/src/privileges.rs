//! Fails early, with one line, when netdrop cannot possibly load its programs.

use anyhow::{Result, bail};

const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_CHROOT: u32 = 18;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// What netdrop still needs once its programs are attached:
/// - CAP_BPF: map reads and writes (the event window, `--pid` sockets), which
///   the kernel refuses without it where unprivileged BPF is disabled;
/// - CAP_SYS_ADMIN: joining other network namespaces to read their counters,
///   sysctls, listeners and neighbours (setns);
/// - CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH: /proc/PID/fd and /proc/PID/ns/net of
///   other users' processes (socket owners, unnamed namespaces);
/// - CAP_NET_ADMIN: `nft list ruleset` for the firewall_rule counters
///   (nfnetlink refuses the dump without it), which nft can only have from
///   netdrop under no_new_privs (systemd `NoNewPrivileges=yes`).
///
/// Everything else (CAP_PERFMON, CAP_SYS_CHROOT, CAP_SYSLOG, …) served loading
/// and attaching only.
pub const KEPT_AFTER_ATTACH: [u32; 5] = [
    CAP_BPF,
    CAP_SYS_ADMIN,
    CAP_SYS_PTRACE,
    CAP_DAC_READ_SEARCH,
    CAP_NET_ADMIN,
];

/// Effective capabilities of this process, from /proc/self/status.
fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

/// Whether a capability set allows loading and attaching tracing programs.
pub fn caps_allow_tracing(caps: u64) -> bool {
    let has = |c: u32| caps & (1u64 << c) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

/// Whether this thread has capability `cap` in its effective set.
pub fn has(cap: u32) -> bool {
    effective_caps().is_some_and(|c| c & (1u64 << cap) != 0)
}

/// CAP_SYS_ADMIN and CAP_SYS_CHROOT: enough to enter a mount namespace of
/// netdrop's own and to come back (setns).
pub fn can_use_private_mount_ns() -> bool {
    has(CAP_SYS_ADMIN) && has(CAP_SYS_CHROOT)
}

/// Keeps only [`KEPT_AFTER_ATTACH`] (of those the process has) in the calling
/// thread's effective, permitted and inheritable sets; threads it starts
/// afterwards inherit that. Call once everything is attached.
pub fn drop_after_attach() -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const V3: u32 = 0x2008_0522;
    let mut h = Header {
        version: V3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data words, as documented.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let keep: u64 = KEPT_AFTER_ATTACH.iter().fold(0, |m, c| m | 1u64 << c);
        for (i, w) in d.iter_mut().enumerate() {
            let k = (keep >> (32 * i)) as u32;
            w.effective &= k;
            w.permitted &= k;
            w.inheritable &= k;
        }
        if libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

pub fn check() -> Result<()> {
    let caps = effective_caps().unwrap_or(0);
    if !caps_allow_tracing(caps) {
        // SAFETY: geteuid never fails.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            bail!(
                "netdrop needs root to load its eBPF programs (or CAP_BPF + CAP_PERFMON): run it with sudo"
            );
        }
        bail!(
            "netdrop runs as root but without CAP_BPF/CAP_PERFMON or CAP_SYS_ADMIN (a restricted container?): grant them"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets() {
        assert!(caps_allow_tracing(1 << CAP_SYS_ADMIN));
        assert!(caps_allow_tracing((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!caps_allow_tracing(1 << CAP_BPF));
        assert!(!caps_allow_tracing(0));
    }
}
