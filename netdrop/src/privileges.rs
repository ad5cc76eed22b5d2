//! Fails early, with one line, when netdrop cannot possibly load its programs.

use anyhow::{Result, bail};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

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
