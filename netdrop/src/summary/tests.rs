//! Unit tests of the summary (kept apart: summary.rs is the logic).
use super::*;
use netdrop_common::MAX_REASONS;

fn naming(has_reason_field: bool) -> Naming {
    let reasons = ReasonTable::from_pairs(
        [
            ("NOT_SPECIFIED", 2),
            ("IP_RPFILTER", 16),
            ("TCP_LISTEN_OVERFLOW", 40),
            ("NEIGH_CREATEFAIL", 57),
            ("NEIGH_QUEUEFULL", 59),
        ]
        .map(|(n, v)| (format!("SKB_DROP_REASON_{n}"), v)),
    );
    Naming {
        reasons,
        has_reason_field,
    }
}

/// Counters where every drop not lost was sent (no event limit reached).
/// `stats`: neigh fails, their lost, -, refused SYNs, their lost.
fn counts(pairs: &[(u32, u64)], lost: &[(u32, u64)], stats: [u64; 5]) -> Counts {
    let mut c = Counts {
        drops: vec![0; MAX_REASONS as usize],
        lost: vec![0; MAX_REASONS as usize],
        sent: vec![0; MAX_REASONS as usize],
        stats: stats.to_vec(),
    };
    c.stats.resize(stat::COUNT as usize, 0);
    for &(slot, n) in pairs {
        c.drops[slot as usize] = n;
    }
    for &(slot, n) in lost {
        c.lost[slot as usize] = n;
    }
    for slot in 0..MAX_REASONS as usize {
        c.sent[slot] = c.drops[slot] - c.lost[slot];
    }
    c.stats[stat::NEIGH_CREATE_FAIL_SENT as usize] = stats[0] - stats[1];
    c.stats[stat::ACCEPT_SYN_DROP_SENT as usize] = stats[3] - stats[4];
    c
}

#[test]
fn held_back_events_are_what_was_neither_sent_nor_lost() {
    let mut c = counts(&[(16, 5000), (59, 10)], &[(16, 100)], [30, 0, 0, 40, 0]);
    c.sent[16] = 1000;
    c.stats[stat::NEIGH_CREATE_FAIL_SENT as usize] = 25;
    c.stats[stat::ACCEPT_SYN_DROP_SENT as usize] = 38;
    let s = Summary::from_counts(&c, &naming(true));
    assert_eq!(s.sampled_by_cause["rp_filter"], 3900);
    assert_eq!(s.sampled_by_cause["neigh_table_overflow"], 5);
    assert_eq!(s.sampled_by_cause["accept_queue_full"], 2);
    assert!(!s.sampled_by_cause.contains_key("neigh_queue_full"));
    assert_eq!(s.sampled_events, 3907);
    assert_eq!(s.lost_events, 100);
    // Counts are exact whatever was held back.
    assert_eq!(s.cause(Cause::RpFilter), 5000);
    // A read where sent + lost > drops (never, by read order) is not negative.
    c.sent[59] = 11;
    assert_eq!(c.held_back(59), 0);
}

#[test]
fn causes_sum_their_reasons() {
    let c = counts(
        &[
            (2, 5),
            (16, 3),
            (40, 7),
            (57, 11),
            (59, 13),
            (REASON_OVERFLOW_SLOT, 1),
        ],
        &[(59, 4)],
        [11, 2, 0, 0, 0],
    );
    let s = Summary::from_counts(&c, &naming(true));
    assert_eq!(s.cause(Cause::RpFilter), 3);
    assert_eq!(s.cause(Cause::AcceptQueueFull), 7);
    assert_eq!(s.cause(Cause::NeighTableOverflow), 11);
    assert_eq!(s.cause(Cause::NeighQueueFull), 13);
    assert_eq!(s.cause(Cause::Other), 6);
    assert_eq!(s.reasons["NEIGH_QUEUEFULL"], 13);
    assert_eq!(s.reasons["UNKNOWN_GE_511"], 1);
    assert_eq!(s.total_drops, 40);
    assert_eq!(s.neigh_create_failures, 11);
    assert_eq!(s.lost_events, 6);
    assert_eq!(s.lost_by_cause["neigh_queue_full"], 4);
    assert_eq!(s.lost_by_cause["neigh_table_overflow"], 2);
    assert!(!s.reasons.contains_key("TCP_CSUM"));
    assert_eq!(
        s.causes.len(),
        Cause::ALL.len(),
        "every registered cause is listed"
    );
}

#[test]
fn refused_syns_count_as_accept_queue_drops() {
    let c = counts(&[(40, 2)], &[], [0, 0, 0, 7, 1]);
    let s = Summary::from_counts(&c, &naming(true));
    assert_eq!(
        (
            s.cause(Cause::AcceptQueueFull),
            s.accept_syn_drops,
            s.total_drops
        ),
        (9, 7, 9)
    );
    assert_eq!(s.lost_by_cause["accept_queue_full"], 1);
}

#[test]
fn netfilter_drop_at_a_full_conntrack_table_is_conntrack_full() {
    let n = naming(true);
    let slot = NETFILTER_DROP_CONNTRACK_FULL_SLOT;
    let c = counts(&[(slot, 3)], &[], [0; 5]);
    let s = Summary::from_counts(&c, &n);
    assert_eq!(s.cause(Cause::ConntrackFull), 3);
    assert_eq!(s.reasons[crate::causes::NETFILTER_DROP_CONNTRACK_FULL], 3);
    // Its events carry the slot as their reason.
    assert_eq!(
        n.drop_reason_name(slot, ""),
        crate::causes::NETFILTER_DROP_CONNTRACK_FULL
    );
    // The slot is free: no location slot, not the listener's.
    assert!(!netdrop_common::location_slot::ALL.contains(&slot));
    assert_ne!(slot, LISTEN_FULL_NO_SOCKET_SLOT);
}

#[test]
fn no_socket_at_a_full_listener_is_an_accept_queue_drop() {
    let c = counts(&[(2, 4), (LISTEN_FULL_NO_SOCKET_SLOT, 6)], &[], [0; 5]);
    let s = Summary::from_counts(&c, &naming(true));
    assert_eq!(s.cause(Cause::AcceptQueueFull), 6);
    assert_eq!(s.cause(Cause::Other), 4);
    assert_eq!(s.reasons[crate::classify::NO_SOCKET_LISTEN_FULL], 6);
    assert_eq!(s.total_drops, 10);
}

fn only(beyond: &[(Cause, u64)], maybe: &[(Cause, u64)], placed: &[(Cause, u64)]) -> KernelOnly {
    KernelOnly {
        beyond_seen: beyond.iter().copied().collect(),
        maybe_among_other: maybe.iter().copied().collect(),
        from_other: BTreeMap::new(),
        placed: placed.iter().copied().collect(),
    }
}

#[test]
fn without_reasons_table_drops_by_location_are_not_counted_twice() {
    let slot = netdrop_common::location_slot::NEIGH_TABLE_FULL;
    // 5.10 with ip_finish_output2 found: 24 drops there, 24 refused creates.
    let c = counts(&[(slot, 24)], &[], [24, 0, 0, 0, 0]);
    let s = Summary::from_counts(&c, &naming(false));
    assert_eq!(s.cause(Cause::NeighTableOverflow), 24);
    assert_eq!(s.neigh_create_failures, 24);
    assert_eq!(s.reasons.get("NEIGH_CREATEFAIL(by location)"), Some(&24));
    // No location classified: the refused creates are the only sign.
    let c = counts(&[(0, 24)], &[], [24, 0, 0, 0, 0]);
    let s = Summary::from_counts(&c, &naming(false));
    assert_eq!(s.cause(Cause::NeighTableOverflow), 24);
    assert_eq!(s.cause(Cause::Other), 24);
}

#[test]
fn overflows_seen_without_a_reason_move_from_other() {
    // 6.1: 91 drops NOT_SPECIFIED (reason 2), 60 of them ACKs refused by a
    // full accept queue (ListenOverflows 60, no SYN seen by the hook).
    let c = counts(&[(2, 91)], &[], [0; 5]);
    let mut ko = only(&[(Cause::AcceptQueueFull, 60)], &[], &[(Cause::Other, 91)]);
    ko.from_other.insert(Cause::AcceptQueueFull, 60);
    let s = Summary::from_counts(&c, &naming(true)).with_kernel_only(&ko);
    assert_eq!(s.cause(Cause::AcceptQueueFull), 60);
    assert_eq!(s.cause(Cause::Other), 31);
    assert_eq!(s.total_drops, 91, "moved, not added");
    assert_eq!(s.kernel_only(Cause::AcceptQueueFull), 0);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["from_other"]["accept_queue_full"], 60, "{json}");
    // The counter moved beyond the candidates: the rest is kernel-only.
    let mut ko = only(&[(Cause::AcceptQueueFull, 70)], &[], &[(Cause::Other, 91)]);
    ko.from_other.insert(Cause::AcceptQueueFull, 60);
    let s = Summary::from_counts(&c, &naming(true)).with_kernel_only(&ko);
    assert_eq!(
        (
            s.cause(Cause::AcceptQueueFull),
            s.cause(Cause::Other),
            s.total_drops
        ),
        (70, 31, 101)
    );
}

#[test]
fn kernel_only_drops_are_in_every_total() {
    let c = counts(&[(40, 2)], &[], [0, 0, 0, 3, 0]);
    let ko = only(
        &[(Cause::AcceptQueueFull, 10), (Cause::RpFilter, 0)],
        &[],
        &[(Cause::AcceptQueueFull, 5)],
    );
    let s = Summary::from_counts(&c, &naming(true)).with_kernel_only(&ko);
    assert_eq!(s.cause(Cause::AcceptQueueFull), 15);
    assert_eq!(s.kernel_only(Cause::AcceptQueueFull), 10);
    assert_eq!(s.total_drops, 15);
    assert!(
        !s.kernel_only.contains_key("rp_filter"),
        "zeros are left out"
    );
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["kernel_only"]["accept_queue_full"], 10);
    assert_eq!(json["causes"]["accept_queue_full"], 15);
    assert!(json.get("maybe_among_other").is_none(), "{json}");
    // Once only.
    assert_eq!(s.clone().with_kernel_only(&ko), s);
}

#[test]
fn kernel_only_leaves_out_what_the_summary_counted_but_the_diagnosis_never_placed() {
    // 5 accept-queue drops counted, 2 of their events held back: the
    // diagnosis placed 3, and its 10 beyond them may hold those 2.
    let c = counts(&[(40, 2)], &[], [0, 0, 0, 3, 0]);
    let ko = only(
        &[(Cause::AcceptQueueFull, 10)],
        &[],
        &[(Cause::AcceptQueueFull, 3)],
    );
    let s = Summary::from_counts(&c, &naming(true)).with_kernel_only(&ko);
    assert_eq!(
        (s.kernel_only(Cause::AcceptQueueFull), s.total_drops),
        (8, 13)
    );
    assert_eq!(s.maybe_among_other(Cause::AcceptQueueFull), 0);
}

#[test]
fn rp_filter_kernel_only_is_guarded_by_unplaced_other_drops() {
    // No drop reasons: 100 drops, all `other`; 60 placed in a namespace,
    // 40 held back. The diagnosis has 50 rp_filter drops beyond the rp_filter
    // and `other` drops of their namespaces, and 20 that may be among them.
    let c = counts(&[(0, 100)], &[], [0; 5]);
    let ko = only(
        &[(Cause::RpFilter, 50)],
        &[(Cause::RpFilter, 20)],
        &[(Cause::Other, 60)],
    );
    let s = Summary::from_counts(&c, &naming(false)).with_kernel_only(&ko);
    assert_eq!(s.kernel_only(Cause::RpFilter), 10);
    assert_eq!(s.cause(Cause::RpFilter), 10);
    assert_eq!(s.cause(Cause::Other), 100);
    assert_eq!(s.total_drops, 110);
    assert_eq!(s.maybe_among_other(Cause::RpFilter), 60);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["maybe_among_other"]["rp_filter"], 60, "{json}");
    // Unplaced rp_filter drops are rp_filter drops: in the totals already,
    // not among `other`.
    let c = counts(&[(16, 30)], &[], [0; 5]);
    let ko = only(&[(Cause::RpFilter, 50)], &[], &[(Cause::RpFilter, 10)]);
    let s = Summary::from_counts(&c, &naming(true)).with_kernel_only(&ko);
    assert_eq!(
        (
            s.kernel_only(Cause::RpFilter),
            s.cause(Cause::RpFilter),
            s.maybe_among_other(Cause::RpFilter)
        ),
        (30, 60, 0)
    );
}

#[test]
fn without_reasons_the_table_is_known_from_refused_creates() {
    let c = counts(&[(0, 9)], &[], [4, 0, 0, 0, 0]);
    let s = Summary::from_counts(&c, &naming(false));
    assert_eq!(s.reasons["UNKNOWN"], 9);
    assert_eq!(s.cause(Cause::Other), 9);
    assert_eq!(s.cause(Cause::NeighTableOverflow), 4);
}
