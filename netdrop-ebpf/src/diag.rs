//! Kernel-side diagnostics (aya-log), on rare paths only: a ring buffer
//! reserve that failed, a reason beyond the counter arrays, a map insert
//! refused, a packet read that failed. Never on the per-drop hot path.
//!
//! Gated twice. `AYA_LOG_LEVEL` (aya-log-ebpf's read-only global, written by
//! the agent before load: 0 without `-v`) is tested first: with logging off
//! the verifier knows the branch is never taken and drops it, log site and
//! all. With logging on, each site logs once per CPU per session
//! ([`first`]): a storm of one failure gives at most one line per CPU; the
//! failures themselves stay counted in the counter maps, as before.

use aya_ebpf::{macros::map, maps::PerCpuArray};
// aya-log-ebpf's own level test (what its macros call), made before the
// once-per-CPU flag is read: off, nothing at all is left of a site.
use aya_log_ebpf::macro_support::{Level, level_enabled};

/// Log sites, one flag each in [`LOGGED`].
pub mod site {
    /// kfree_skb: a drop event did not fit in the ring buffer.
    pub const DROP_EVENT_LOST: u32 = 0;
    /// kfree_skb: a reason at or above `MAX_REASONS` (counted in the last slot).
    pub const REASON_OUT_OF_RANGE: u32 = 1;
    /// kfree_skb: the packet bytes could not be read (`bpf_probe_read_kernel`).
    pub const CAPTURE_READ_FAILED: u32 = 2;
    /// neigh_create: a failed-create event did not fit in the ring buffer.
    pub const NEIGH_CREATE_EVENT_LOST: u32 = 3;
    /// neigh_update / neigh_timer_handler: a state event did not fit.
    pub const NEIGH_STATE_EVENT_LOST: u32 = 4;
    /// tcp_conn_request: a refused-SYN event did not fit.
    pub const SYN_EVENT_LOST: u32 = 5;
    /// inet_sock_set_state: SOCK_OWNERS refused an entry.
    pub const OWNER_INSERT_FAILED: u32 = 6;
    /// inet_sock_set_state: FILTER_INODES (`--pid`) refused an entry (full).
    pub const PID_INSERT_FAILED: u32 = 7;
    pub const COUNT: u32 = 8;
}

/// 1 once a site has logged on this CPU.
#[map]
static LOGGED: PerCpuArray<u8> = PerCpuArray::with_max_entries(site::COUNT, 0);

/// Whether kernel-side logging is on (`-v`). With it off (a constant the
/// verifier knows) whatever it guards is removed at load.
#[inline(always)]
pub fn logging() -> bool {
    level_enabled(Level::Warn)
}

/// Whether `site` is to log now: logging is on (`-v`) and the site has not
/// logged on this CPU yet (marked here). BPF programs on one CPU do not
/// preempt each other for these hooks, so the flag needs no atomics.
#[inline(always)]
pub fn first(site: u32) -> bool {
    if !logging() {
        return false;
    }
    let Some(flag) = LOGGED.get_ptr_mut(site) else {
        return false;
    };
    // SAFETY: the pointer comes from the map lookup and is valid for this CPU.
    unsafe {
        if *flag != 0 {
            return false;
        }
        *flag = 1;
    }
    true
}
