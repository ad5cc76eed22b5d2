//! Maps and the read-only config shared with the agent (names in `netdrop_common::names`).

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use netdrop_common::{Config, MAX_REASONS, stat};

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
