//! Strict reverse-path filtering: the source is not reachable back through
//! the interface the packet came in on (asymmetric routing, LVS, tunnels).

use netdrop_common::location_slot;

use super::{Cause, CauseSpec, Counter, GroupBy, KnobSpec, Reason, Source};

pub static SPEC: CauseSpec = CauseSpec {
    cause: Cause::RpFilter,
    name: "rp_filter",
    meaning: "reverse-path filter (rp_filter) rejected the source",
    reasons: &[Reason {
        name: "IP_RPFILTER",
        seen: "6.1, 6.12, 6.18, 7.2 (not 5.10: no reasons)",
    }],
    own_slots: &[],
    // ip_rcv_finish_core's drop_error path frees what fib_validate_source
    // refused (-EXDEV, IPReversePathFilter).
    freed_in: &["ip_rcv_finish_core"],
    location_slot: Some(location_slot::RP_FILTER),
    counters: &[Counter {
        name: "TcpExt:IPReversePathFilter",
        source: Source::Bespoke,
    }],
    knobs: &[
        KnobSpec::bespoke("net.ipv4.conf.all.rp_filter"),
        KnobSpec::bespoke("net.ipv4.conf.{dev}.rp_filter"),
    ],
    group_by: GroupBy::Bespoke,
    advise: None,
};
