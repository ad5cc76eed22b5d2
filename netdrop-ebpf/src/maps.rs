//! Maps and the read-only config shared with the agent (names in `netdrop_common::names`).

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use netdrop_common::{Config, MAX_REASONS, RateSlot, rate, stat};

/// Written by the agent before load (`EbpfLoader::set_global`); read-only here.
#[unsafe(no_mangle)]
pub static NETDROP_CONFIG: Config = Config::unknown();

/// Detail events; the agent sizes it at load (`--ring-buffer-kib`).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

/// Exact drop counts per skb_drop_reason value (the last slot gathers larger values).
#[map]
pub static DROP_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_REASONS, 0);

/// Drops whose detail event did not fit in the ring buffer, per reason.
#[map]
pub static LOST_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_REASONS, 0);

/// Drop events submitted, per reason. Counted − sent − lost = held back by
/// the event limit: the storm path over the limit writes nothing.
#[map]
pub static EVENT_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_REASONS, 0);

/// Detail events sent in the current window, per `netdrop_common::rate` slot.
#[map]
pub static RATE: Array<RateSlot> = Array::with_max_entries(rate::SLOTS, 0);

/// The current window: the agent advances `WINDOW[0]` every second.
#[map]
pub static WINDOW: Array<u64> = Array::with_max_entries(1, 0);

/// Other counters, indexed by `netdrop_common::stat`.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// `--pid`: socket inodes of the watched process (the agent adds the ones it
/// finds in /proc/PID/fd; the inet_sock_set_state hook adds new TCP sockets).
#[map]
pub static FILTER_INODES: HashMap<u64, u8> = HashMap::with_max_entries(65536, 0);

/// Socket inode → the process (tgid) that connected or listened with it, learned
/// in that process's context by the inet_sock_set_state hook. Least recently
/// used entries make room.
#[map]
pub static SOCK_OWNERS: LruHashMap<u64, u32> = LruHashMap::with_max_entries(65536, 0);

/// `--cause`: 1 for each reason slot to keep.
#[map]
pub static FILTER_REASONS: Array<u8> = Array::with_max_entries(MAX_REASONS, 0);

/// Is reason slot `slot` kept by the `--cause` filter (always, without one)?
#[inline(always)]
pub fn reason_allowed(cfg: &Config, slot: u32) -> bool {
    cfg.filter.flags & netdrop_common::filter::REASONS == 0 || FILTER_REASONS.get(slot) == Some(&1)
}

/// The config as the agent wrote it. The volatile read stops the compiler from
/// folding the compile-time default into the code.
#[inline(always)]
pub fn config() -> &'static Config {
    // SAFETY: a plain static; the read only has to happen at run time.
    unsafe { &*core::ptr::read_volatile(&&NETDROP_CONFIG) }
}

/// Adds one to slot `index` of a per-CPU counter array (no atomics needed: per CPU,
/// and BPF programs on one CPU do not preempt each other for these tracepoints).
#[inline(always)]
pub fn bump(map: &PerCpuArray<u64>, index: u32) {
    if let Some(slot) = map.get_ptr_mut(index) {
        // SAFETY: the pointer comes from the map lookup and is valid for this CPU.
        unsafe { *slot += 1 };
    }
}

/// May slot `slot` send one more detail event in this window (`Config::event_limit`)?
///
/// Over the limit (a storm) this only reads: two array lookups the verifier
/// inlines and two loads, no helper call, no write. Under it, one atomic add.
/// CPUs that race on a window change or the last free place may send a few
/// more than the limit (at most one each); nothing is ever counted twice.
#[inline(always)]
pub fn admit(cfg: &Config, slot: u32) -> bool {
    if cfg.event_limit == 0 {
        return true;
    }
    let (Some(window), Some(st)) = (WINDOW.get(0), RATE.get_ptr_mut(slot)) else {
        return true;
    };
    let window = *window;
    // SAFETY: the pointer comes from the map lookup; the slot is plain data.
    unsafe {
        if (*st).window != window {
            (*st).window = window;
            (*st).sent = 0;
        } else if (*st).sent >= u64::from(cfg.event_limit) {
            return false;
        }
        // The BPF target offers no AtomicU64::fetch_add; this is the same
        // `lock *(u64 *)(r + 0) += 1` (BPF_ATOMIC | BPF_ADD, every kernel).
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            &raw mut (*st).sent,
            1,
        );
    }
    true
}
