//! `neigh:neigh_update` (since 5.0) — fires at the start of `__neigh_update`
//! with the entry's current state (`nud_state`) and the state asked for
//! (`new_state`). Attached only when neighbour state events are asked for.
//! Which updates are sent is decided by [`nud::is_resolution_update`]: a state
//! reached by resolution (any valid state from NONE/INCOMPLETE), REACHABLE, or
//! FAILED. Refreshes (STALE → STALE, …) are not sent.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use netdrop_common::{neigh_event, nud};

use crate::{
    kernel::tp_field,
    maps::config,
    neigh::{NeighId, emit_state},
};

#[tracepoint]
pub fn netdrop_neigh_update(ctx: TracePointContext) -> u32 {
    try_neigh_update(&ctx);
    0
}

#[inline(always)]
fn try_neigh_update(ctx: &TracePointContext) -> Option<()> {
    let cfg = config();
    if cfg.emit_neigh_states == 0 || cfg.emit_events == 0 {
        return None;
    }
    let tp = &cfg.neigh_update;
    let old = u32::from(tp_field::<u8>(ctx, tp.nud_state)?);
    let new = u32::from(tp_field::<u8>(ctx, tp.new_state)?);
    // A dead entry is not updated (`__neigh_update` returns early).
    if tp_field::<u8>(ctx, tp.dead).unwrap_or(0) != 0 || !nud::is_resolution_update(old, new) {
        return None;
    }
    emit_state(cfg, &NeighId::read(ctx, tp), neigh_event::UPDATE, old, new);
    Some(())
}
