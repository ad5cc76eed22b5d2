//! The neighbour (ARP/NDISC) table is full: more on-link peers than
//! `gc_thresh3`, so no entry can be created and the packet is freed.

use netdrop_common::location_slot;

use super::{Cause, CauseSpec, Counter, GroupBy, KnobSpec, Reason, Source};

pub static SPEC: CauseSpec = CauseSpec {
    cause: Cause::NeighTableOverflow,
    name: "neigh_table_overflow",
    meaning: "neighbour table full (net.ipv4.neigh.default.gc_thresh3)",
    reasons: &[Reason {
        name: "NEIGH_CREATEFAIL",
        seen: "6.1, 6.12, 6.18, 7.2 (not 5.10: no reasons)",
    }],
    own_slots: &[],
    // __neigh_create failed in the output path: the table is over gc_thresh3.
    freed_in: &["ip_finish_output2", "ip6_finish_output2"],
    location_slot: Some(location_slot::NEIGH_TABLE_FULL),
    counters: &[Counter {
        name: "arp_cache+ndisc_cache table_fulls (all namespaces)",
        source: Source::Bespoke,
    }],
    knobs: &[
        KnobSpec::bespoke("net.ipv4.neigh.default.gc_thresh3"),
        KnobSpec::bespoke("net.ipv6.neigh.default.gc_thresh3"),
    ],
    group_by: GroupBy::Bespoke,
    advise: None,
};
