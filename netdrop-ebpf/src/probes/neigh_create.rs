//! `neigh:neigh_create` (since 5.0) — fires for every create attempt, also a
//! refused one (`created` = 0), which is how a full neighbour table shows.

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        bpf_probe_read_kernel_str_bytes,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use netdrop_common::{ABSENT, RawNeighEvent, filter, kind, stat};

const AF_INET: u32 = 2;

use crate::{
    kernel::tp_field,
    maps::{EVENTS, STATS, bump, config},
};

#[tracepoint]
pub fn netdrop_neigh_create(ctx: TracePointContext) -> u32 {
    try_neigh_create(&ctx).unwrap_or(0)
}

fn try_neigh_create(ctx: &TracePointContext) -> Option<u32> {
    let cfg = config();
    let tp = &cfg.neigh_create;
    let created: u8 = tp_field(ctx, tp.created)?;
    if created != 0 {
        return Some(0);
    }
    // Filters: a refusal runs in the sender's context (KERNEL.md), so --pid keeps
    // the process's own; --netns/--dev cannot be told from this record: skipped.
    let f = &cfg.filter;
    if f.flags & filter::REASONS != 0 && f.flags & filter::NEIGH_TABLE == 0 {
        return Some(0);
    }
    if f.flags & (filter::NETNS | filter::DEV) != 0 {
        return Some(0);
    }
    if f.flags & filter::PID != 0 && (bpf_get_current_pid_tgid() >> 32) as u32 != f.pid_tgid {
        return Some(0);
    }
    bump(&STATS, stat::NEIGH_CREATE_FAIL);
    if cfg.emit_events == 0 {
        return Some(0);
    }
    let Some(mut entry) = EVENTS.reserve::<RawNeighEvent>(0) else {
        bump(&STATS, stat::NEIGH_CREATE_FAIL_LOST);
        return Some(0);
    };
    let ev = entry.as_mut_ptr();
    let family: u32 = tp_field(ctx, tp.family).unwrap_or(0);
    // SAFETY: reserved space of the right size; all fields written before submit.
    unsafe {
        (*ev).kind = kind::NEIGH_CREATE_FAIL;
        (*ev).family = family;
        (*ev).ts_ns = bpf_ktime_get_ns();
        (*ev).entries = tp_field(ctx, tp.entries).unwrap_or(-1);
        (*ev).pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        let mut key = [0u8; 16];
        if family == AF_INET {
            if let Some(k) = tp_field::<[u8; 4]>(ctx, tp.primary_key4) {
                key[..4].copy_from_slice(&k);
            }
        } else if let Some(k) = tp_field::<[u8; 16]>(ctx, tp.primary_key6) {
            key = k;
        }
        (*ev).key = key;
        (*ev).dev = [0; 16];
        // `__data_loc char[] dev`: the low 16 bits are the string's offset in the record.
        if tp.dev != ABSENT {
            if let Some(loc) = tp_field::<u32>(ctx, tp.dev) {
                let src = (ctx.as_ptr() as *const u8).add((loc & 0xffff) as usize);
                let _ = bpf_probe_read_kernel_str_bytes(src, &mut (*ev).dev);
            }
        }
    }
    entry.submit(0);
    Some(0)
}
