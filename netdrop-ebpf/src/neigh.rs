//! What the neighbour hooks share: which state events are wanted under the
//! filters, and sending one.

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::TracePointContext};
use aya_log_ebpf::warn;
use netdrop_common::{Config, IFNAMSIZ, NeighStateOffsets, RawNeighStateEvent, filter, kind, stat};

use crate::{
    diag::{first, site},
    kernel::{tp_field, tp_neigh_key, tp_str},
    maps::{EVENTS, STATS, bump},
};

/// Which neighbour an event is about.
pub struct NeighId {
    pub family: u32,
    pub dev: [u8; IFNAMSIZ],
    pub key: [u8; 16],
}

impl NeighId {
    /// Family, device and key from a neigh_update / neigh_timer_handler record.
    #[inline(always)]
    pub fn read(ctx: &TracePointContext, tp: &NeighStateOffsets) -> NeighId {
        let family: u32 = tp_field(ctx, tp.family).unwrap_or(0);
        let mut id = NeighId {
            family,
            dev: [0; IFNAMSIZ],
            key: tp_neigh_key(ctx, family, tp.primary_key4, tp.primary_key6),
        };
        tp_str(ctx, tp.dev, &mut id.dev);
        id
    }
}

/// Sends one state event, if the filters keep it. `--dev` compares the device
/// name. The records carry no namespace and run in softirq or in whichever task
/// resolves, so under `--netns` or `--pid` nothing can be attributed: no
/// events then. `--cause` is about drops and does not apply.
#[inline(always)]
pub fn emit_state(cfg: &Config, id: &NeighId, event: u32, old_state: u32, new_state: u32) {
    let f = &cfg.filter;
    if f.flags & (filter::NETNS | filter::PID) != 0 {
        return;
    }
    if f.flags & filter::DEV != 0 && id.dev != f.dev {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<RawNeighStateEvent>(0) else {
        bump(&STATS, stat::NEIGH_STATE_LOST);
        if first(site::NEIGH_STATE_EVENT_LOST) {
            warn!(
                &(),
                "neighbour state: ring buffer full: a state event (event {}, state {}) was lost; lost events stay counted (logged once per CPU)",
                event,
                new_state
            );
        }
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: reserved space of the right size; all fields written before submit.
    unsafe {
        (*ev).kind = kind::NEIGH_STATE;
        (*ev).family = id.family;
        (*ev).ts_ns = bpf_ktime_get_ns();
        (*ev).event = event;
        (*ev).old_state = old_state;
        (*ev).new_state = new_state;
        (*ev)._pad = 0;
        (*ev).dev = id.dev;
        (*ev).key = id.key;
    }
    entry.submit(0);
    bump(&STATS, stat::NEIGH_STATE_SENT);
}
