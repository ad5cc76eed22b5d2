//! Integration-test harness for netdrop.
//!
//! The tests provoke real kernel drops inside network namespaces this crate
//! creates (veth pairs between them), compare what netdrop reports with the
//! kernel's own counters, and clean up after themselves even when they fail:
//! namespaces ([`Netns`]) and global sysctls ([`SysctlGuard`]) are RAII guards.
//!
//! Network rule: every test host address is in 198.18.0.0/15 (checked by
//! [`check_test_addr`]); nothing is ever sent outside the test namespaces.
//!
//! The tests share kernel state (the global ARP table, its gc_thresh sysctls,
//! /proc/net/stat/arp_cache, the set of loaded BPF programs), so they must not
//! run concurrently: each test takes [`lock`], and xtask runs the test binary
//! with `--test-threads=1` as well.

pub mod accept;
pub mod bench;
pub mod churn;
pub mod cmd;
pub mod control;
pub mod counters;
pub mod daemonset;
pub mod deploy;
pub mod field;
pub mod neigh;
pub mod netdrop;
pub mod netns;
pub mod peer;
pub mod prom;
pub mod rpfilter;
pub mod storm;
pub mod synbench;
pub mod sysctl;
pub mod tmux;
pub mod traffic;
pub mod yaml;

use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub use counters::{Counters, arp_cache, delta, parse_arp_cache, parse_netstat};
pub use netdrop::{Netdrop, NetdropOutput, netdrop_bin};
pub use netns::{Netns, in_netns, veth_pair};
pub use sysctl::SysctlGuard;

/// The causes netdrop attributes drops to, plus the catch-all.
pub const CAUSES: [&str; 11] = [
    "neigh_table_overflow",
    "neigh_queue_full",
    "accept_queue_full",
    "rp_filter",
    "socket_rcvbuf",
    "conntrack_full",
    "firewall_rule",
    "tcp_paws",
    "cpu_backlog",
    "qdisc_drop",
    "other",
];

/// The causes without "other".
pub const REAL_CAUSES: [&str; 10] = [
    "neigh_table_overflow",
    "neigh_queue_full",
    "accept_queue_full",
    "rp_filter",
    "socket_rcvbuf",
    "conntrack_full",
    "firewall_rule",
    "tcp_paws",
    "cpu_backlog",
    "qdisc_drop",
];

static SERIAL: Mutex<()> = Mutex::new(());

/// Held while a test touches kernel state: see [`lock`].
pub struct Serial {
    _in_process: MutexGuard<'static, ()>,
    _across_processes: Option<std::fs::File>,
}

/// Where test processes take turns (an flock): two test binaries run at once
/// (two shells, two checkouts) still touch kernel state one at a time.
pub const LOCK_FILE: &str = "/run/lock/netdrop-tests.lock";

/// Serialises tests: they share kernel state. In one process a mutex (a
/// test that panicked while holding it poisons it; the next test still
/// runs), across processes an flock on [`LOCK_FILE`] (released by the
/// kernel when the process ends, however it ends).
pub fn lock() -> Serial {
    let m = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_FILE)
        .ok();
    if let Some(f) = &f {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on an open descriptor; blocks until it is ours.
        while unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
        }
    }
    Serial {
        _in_process: m,
        _across_processes: f,
    }
}

/// Whether the running kernel's BTF names drop reason `name` (without its
/// `SKB_DROP_REASON_` prefix): a test of a reason the kernel lacks skips.
pub fn kernel_has_reason(name: &str) -> bool {
    let needle = format!("SKB_DROP_REASON_{name}\0");
    std::fs::read("/sys/kernel/btf/vmlinux")
        .map(|btf| btf.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .unwrap_or(false)
}

/// True when running as root. Otherwise prints a loud SKIP line and returns
/// false; the caller returns early (the test then counts as passed).
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip_loudly(&format!(
        "{test}: needs root (network namespaces, sysctls, BPF); run the tests as root"
    ));
    false
}

/// Prints a SKIP line that the test harness does not capture (`eprintln!` output
/// of a passing test is swallowed), so a skipped check is always visible.
pub fn skip_loudly(msg: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n********\nSKIP: {msg}\n********"
    );
}

/// How long to let the kernel and netdrop catch up after traffic stopped.
pub const SETTLE: Duration = Duration::from_millis(300);

/// Sleeps [`SETTLE`].
pub fn settle() {
    std::thread::sleep(SETTLE);
}

/// True for addresses the tests may use: 198.18.0.0/15 (RFC 2544 benchmarking).
pub fn is_test_addr(addr: Ipv4Addr) -> bool {
    let o = addr.octets();
    o[0] == 198 && (o[1] & 0xfe) == 18
}

/// Panics unless `addr` is in 198.18.0.0/15: the harness refuses to configure
/// or send to anything else.
pub fn check_test_addr(addr: Ipv4Addr) {
    assert!(
        is_test_addr(addr),
        "{addr} is outside 198.18.0.0/15; tests must not use it"
    );
}

/// Parses "a.b.c.d/len" and checks the address with [`check_test_addr`].
pub fn check_test_cidr(cidr: &str) -> Ipv4Addr {
    let (addr, len) = cidr
        .split_once('/')
        .unwrap_or_else(|| panic!("{cidr}: expected ADDR/PREFIX"));
    let addr: Ipv4Addr = addr
        .parse()
        .unwrap_or_else(|e| panic!("{cidr}: bad address: {e}"));
    let len: u8 = len
        .parse()
        .unwrap_or_else(|e| panic!("{cidr}: bad prefix: {e}"));
    assert!(
        (15..=32).contains(&len),
        "{cidr}: prefix must stay inside 198.18.0.0/15"
    );
    check_test_addr(addr);
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_addr_range() {
        assert!(is_test_addr(Ipv4Addr::new(198, 18, 0, 1)));
        assert!(is_test_addr(Ipv4Addr::new(198, 19, 255, 254)));
        assert!(!is_test_addr(Ipv4Addr::new(198, 20, 0, 1)));
        assert!(!is_test_addr(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(
            check_test_cidr("198.18.1.1/24"),
            Ipv4Addr::new(198, 18, 1, 1)
        );
    }

    #[test]
    #[should_panic(expected = "outside 198.18.0.0/15")]
    fn refuses_other_addresses() {
        check_test_cidr("10.0.0.1/24");
    }
}
