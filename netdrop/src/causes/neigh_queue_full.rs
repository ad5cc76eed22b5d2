//! Too many packets wait for one neighbour's resolution: the unresolved
//! queue (`unres_qlen_bytes`) overflows and the oldest packet is freed.

use netdrop_common::location_slot;

use super::{Cause, CauseSpec, Counter, GroupBy, KnobSpec, Reason, Source};

pub static SPEC: CauseSpec = CauseSpec {
    cause: Cause::NeighQueueFull,
    name: "neigh_queue_full",
    meaning: "queue of packets waiting for ARP/ND resolution full (unres_qlen_bytes)",
    reasons: &[Reason {
        name: "NEIGH_QUEUEFULL",
        seen: "6.1, 6.12, 6.18, 7.2 (not 5.10: no reasons)",
    }],
    own_slots: &[],
    // __neigh_event_send frees the oldest queued packet while the queue is
    // over unres_qlen_bytes (and, rarely, a packet with no probe configured).
    freed_in: &["__neigh_event_send"],
    location_slot: Some(location_slot::NEIGH_QUEUE_FULL),
    counters: &[Counter {
        name: "arp_cache+ndisc_cache unresolved_discards (all namespaces)",
        source: Source::Bespoke,
    }],
    knobs: &[
        KnobSpec::bespoke("net.ipv4.neigh.{dev}.unres_qlen_bytes"),
        KnobSpec::bespoke("net.ipv6.neigh.{dev}.unres_qlen_bytes"),
    ],
    group_by: GroupBy::Bespoke,
    advise: None,
};
