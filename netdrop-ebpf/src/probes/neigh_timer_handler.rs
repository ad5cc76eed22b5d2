//! `neigh:neigh_timer_handler` (since 5.0) — fires at the end of the neighbour
//! timer, after it changed the state. Resolution that gives up (INCOMPLETE or
//! PROBE out of probes) turns FAILED here, not in neigh_update: that is the
//! only state sent from this hook. The state before is not in the record
//! (`old_state` = [`nud::UNKNOWN`]). Attached only when neighbour state events
//! are asked for.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use netdrop_common::{neigh_event, nud};

use crate::{
    kernel::tp_field,
    maps::config,
    neigh::{NeighId, emit_state},
};

#[tracepoint]
pub fn netdrop_neigh_timer_handler(ctx: TracePointContext) -> u32 {
    try_neigh_timer(&ctx);
    0
}

#[inline(always)]
fn try_neigh_timer(ctx: &TracePointContext) -> Option<()> {
    let cfg = config();
    if cfg.emit_neigh_states == 0 || cfg.emit_events == 0 {
        return None;
    }
    let tp = &cfg.neigh_timer;
    let state = u32::from(tp_field::<u8>(ctx, tp.nud_state)?);
    // A FAILED entry has no timer of its own (not in NUD_IN_TIMER): the handler
    // sees FAILED only on the run that set it.
    if state & nud::FAILED == 0 {
        return None;
    }
    emit_state(
        cfg,
        &NeighId::read(ctx, tp),
        neigh_event::TIMER,
        nud::UNKNOWN,
        state,
    );
    Some(())
}
