//! `neigh:neigh_create` (since 5.0) — fires for every create attempt, also a
//! refused one (`created` = 0), which is how a full neighbour table shows.
//! A successful create is where a neighbour's resolution starts: with
//! `emit_neigh_states` it becomes a CREATED state event.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use aya_log_ebpf::warn;
use netdrop_common::{RawNeighEvent, filter, kind, neigh_event, nud, rate, stat};

use crate::{
    diag::{first, site},
    kernel::{tp_field, tp_neigh_key, tp_str},
    maps::{EVENTS, STATS, admit, bump, config},
    neigh::{NeighId, emit_state},
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
        if cfg.emit_neigh_states != 0 && cfg.emit_events != 0 {
            let family: u32 = tp_field(ctx, tp.family).unwrap_or(0);
            let mut id = NeighId {
                family,
                dev: [0; 16],
                key: tp_neigh_key(ctx, family, tp.primary_key4, tp.primary_key6),
            };
            tp_str(ctx, tp.dev, &mut id.dev);
            emit_state(cfg, &id, neigh_event::CREATED, nud::NONE, nud::NONE);
        }
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
    if cfg.emit_events == 0 || !admit(cfg, rate::NEIGH_CREATE_FAIL) {
        return Some(0);
    }
    let Some(mut entry) = EVENTS.reserve::<RawNeighEvent>(0) else {
        bump(&STATS, stat::NEIGH_CREATE_FAIL_LOST);
        if first(site::NEIGH_CREATE_EVENT_LOST) {
            warn!(
                ctx,
                "neigh_create: ring buffer full: a refused-create event was lost; lost events stay counted (logged once per CPU)"
            );
        }
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
        (*ev).key = tp_neigh_key(ctx, family, tp.primary_key4, tp.primary_key6);
        (*ev).dev = [0; 16];
        tp_str(ctx, tp.dev, &mut (*ev).dev);
    }
    entry.submit(0);
    bump(&STATS, stat::NEIGH_CREATE_FAIL_SENT);
    Some(0)
}
