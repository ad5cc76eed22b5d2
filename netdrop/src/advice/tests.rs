use std::net::IpAddr;

use super::*;

fn accept(limit: u32, somaxconn: Option<u64>, requested: Option<u32>) -> AcceptQueueFacts {
    AcceptQueueFacts {
        listener: "198.18.0.1:8080".into(),
        netns: "4026532177".into(),
        queue: Some(limit + 1),
        limit,
        peak_queue: limit + 1,
        somaxconn,
        requested_backlog: requested,
        drops: 178,
        closed: false,
        changes: Vec::new(),
    }
}

#[test]
fn accept_queue_names_the_smaller_bound() {
    // The application asked for 1 while somaxconn is 4096: the application is the limit.
    let a = advise_accept(&accept(1, Some(4096), None));
    assert_eq!(
        accept_bound(&accept(1, Some(4096), None)),
        AcceptBound::Application
    );
    assert!(
        a.action
            .starts_with("raise the listen() backlog of 198.18.0.1:8080 from 1 to 1024"),
        "{}",
        a.action
    );
    assert!(
        a.action
            .contains("net.core.somaxconn = 4096 is not the limit"),
        "{}",
        a.action
    );
    assert!(
        a.reason.contains("178 connection attempts") && a.reason.contains("2/1"),
        "{}",
        a.reason
    );

    // Limit equals somaxconn: somaxconn caps it.
    let a = advise_accept(&accept(128, Some(128), None));
    assert!(
        a.action
            .starts_with("raise net.core.somaxconn in netns 4026532177 from 128 to 1024"),
        "{}",
        a.action
    );
    assert_eq!(
        a.knobs[1],
        Knob {
            name: "net.core.somaxconn".into(),
            current: Some(128),
            suggested: Some(1024)
        }
    );
}

#[test]
fn backlog_above_somaxconn_is_clamped_by_somaxconn() {
    let f = accept(4096, Some(4096), Some(65535));
    assert_eq!(accept_bound(&f), AcceptBound::Somaxconn);
    let a = advise_accept(&f);
    assert!(
        a.action
            .contains("it asks for 65535; the kernel takes the smaller"),
        "{}",
        a.action
    );
    assert_eq!(a.knobs[1].suggested, Some(16384));
}

#[test]
fn application_backlog_above_suggestion_also_raises_somaxconn() {
    let a = advise_accept(&accept(64, Some(128), None));
    assert!(
        a.action.contains("from 64 to 1024") && a.action.contains("net.core.somaxconn to 1024"),
        "{}",
        a.action
    );
    // Unknown somaxconn: say both bound it.
    let a = advise_accept(&accept(64, None, None));
    assert!(
        a.action
            .contains("both the application's listen() backlog and net.core.somaxconn"),
        "{}",
        a.action
    );
}

fn neigh_queue(state: Option<&str>, bytes: Option<u64>) -> NeighQueueFacts {
    NeighQueueFacts {
        neighbour: "198.18.1.99".parse().unwrap(),
        dev: "veth0".into(),
        netns: "ns-a".into(),
        state: state.map(Into::into),
        unres_qlen_bytes: bytes,
        unres_qlen: bytes.map(|b| b / 1024),
        drops: 13,
        changes: Vec::new(),
    }
}

#[test]
fn neigh_queue_names_the_device_knob_and_the_silent_neighbour() {
    let a = advise_neigh_queue(&neigh_queue(Some("INCOMPLETE"), Some(1)));
    assert_eq!(a.knobs[0].name, "net.ipv4.neigh.veth0.unres_qlen_bytes");
    assert_eq!(
        (a.knobs[0].current, a.knobs[0].suggested),
        (Some(1), Some(212_992))
    );
    assert!(
        a.action
            .contains("does not answer ARP/ND: its entry is INCOMPLETE"),
        "{}",
        a.action
    );
    assert!(
        a.reason.starts_with("13 packets to 198.18.1.99 dropped"),
        "{}",
        a.reason
    );
    // A resolved neighbour: only the queue size.
    let a = advise_neigh_queue(&neigh_queue(Some("REACHABLE"), Some(212_992)));
    assert_eq!(a.knobs[0].suggested, Some(851_968));
    assert!(!a.action.contains("does not answer"), "{}", a.action);
    let mut v6 = neigh_queue(None, None);
    v6.neighbour = "2001:db8::1".parse().unwrap();
    assert_eq!(
        advise_neigh_queue(&v6).knobs[0].name,
        "net.ipv6.neigh.veth0.unres_qlen_bytes"
    );
}

fn table(entries: u64, peak: u64, g3: u64, incomplete: u64) -> NeighTableFacts {
    NeighTableFacts {
        ipv6: false,
        entries,
        peak,
        gc_thresh: [Some(g3 / 8), Some(g3 / 2), Some(g3)],
        incomplete,
        failed: 0,
        drops: 22,
        refused_creates: 22,
        changes: Vec::new(),
    }
}

#[test]
fn neigh_table_example_from_the_incident() {
    let a = advise_neigh_table(&table(1108, 1108, 1024, 0));
    assert_eq!(
        a.action,
        "net.ipv4.neigh.default.gc_thresh3 = 1024, table peaked at 1108 entries → raise to 4096 (and gc_thresh2 = 2048, gc_thresh1 = 1024)"
    );
    assert!(
        a.reason
            .contains("(gc_thresh3 was 1024 at the drops, it holds 1108 entries now)"),
        "{}",
        a.reason
    );
}

#[test]
fn neigh_table_small_threshold_and_stuck_entries() {
    // gc_thresh3 far below the entries, mostly INCOMPLETE.
    let a = advise_neigh_table(&table(18, 18, 8, 16));
    assert_eq!(a.knobs[2].suggested, Some(1024));
    assert!(
        a.reason
            .contains("16 entries are INCOMPLETE (16) or FAILED (0)"),
        "{}",
        a.reason
    );
    // Never suggest lowering a threshold.
    let mut f = table(10, 10, 8192, 0);
    f.gc_thresh[0] = Some(5000);
    let a = advise_neigh_table(&f);
    assert_eq!(a.knobs[0].suggested, Some(5000));
    assert_eq!(a.knobs[2].suggested, Some(16384));
}

fn rp(all: u64, dev: u64) -> RpFilterFacts {
    RpFilterFacts {
        dev: "eth1".into(),
        netns: "lb".into(),
        all: Some(all),
        dev_value: Some(dev),
        drops: 10,
        sources: vec!["198.19.9.1".parse::<IpAddr>().unwrap()],
        changes: Vec::new(),
    }
}

#[test]
fn rp_filter_the_larger_value_wins() {
    // all=0, dev=1: the device decides.
    let a = advise_rp_filter(&rp(0, 1));
    assert_eq!(rp(0, 1).effective(), Some(1));
    assert!(
        a.action
            .starts_with("net.ipv4.conf.eth1.rp_filter = 1 (strict) decides (all = 0)"),
        "{}",
        a.action
    );
    assert_eq!(a.knobs[1].suggested, Some(2));
    // all=1, dev=0: all decides although the device says 0.
    let a = advise_rp_filter(&rp(1, 0));
    assert!(
        a.action
            .starts_with("net.ipv4.conf.all.rp_filter = 1 decides"),
        "{}",
        a.action
    );
    assert!(a.reason.contains("max(all 1, eth1 0) = 1"), "{}", a.reason);
    // both strict.
    assert!(
        advise_rp_filter(&rp(1, 1))
            .action
            .contains("both 1 (strict)")
    );
    // loose already: routing, not the filter mode.
    let a = advise_rp_filter(&rp(2, 0));
    assert!(a.action.contains("already loose (2)"), "{}", a.action);
    assert!(a.reason.contains("198.19.9.1"), "{}", a.reason);
}

fn change(knob: &str, from: i64, to: i64, before: u64, after: u64) -> KnobChange {
    KnobChange {
        knob: knob.into(),
        from,
        to,
        at: "19:31:02".into(),
        drops_before: before,
        drops_after: after,
    }
}

#[test]
fn clock_and_short_names() {
    assert_eq!(clock(1_700_000_000.0 + 3661.9), "23:14:21");
    assert_eq!(clock(3661.5), "01:01:01");
    assert_eq!(
        short_knob("net.ipv6.neigh.default.gc_thresh3"),
        "gc_thresh3"
    );
    assert_eq!(
        short_knob("net.ipv4.conf.all.rp_filter"),
        "net.ipv4.conf.all.rp_filter"
    );
}

#[test]
fn table_raised_after_the_drops_says_it_stopped() {
    let mut f = table(66, 66, 64, 0);
    f.drops = 196;
    f.changes = vec![change(
        "net.ipv4.neigh.default.gc_thresh3",
        64,
        1024,
        196,
        0,
    )];
    let a = advise_neigh_table(&f);
    assert_eq!(
        a.action,
        "none: gc_thresh3 64 → 1024 at 19:31:02 stopped the drops (196 before, 0 after)"
    );
    assert_eq!(a.stopped_by, Some(f.changes[0].clone()));
    assert_eq!(a.knobs.len(), 1);
    assert_eq!(
        (a.knobs[0].current, a.knobs[0].suggested),
        (Some(1024), None),
        "nothing more to raise"
    );
    assert!(
        a.reason.contains("gc_thresh3 was 64 at the drops"),
        "{}",
        a.reason
    );
    assert!(
        a.reason.contains("none since gc_thresh3 became 1024"),
        "{}",
        a.reason
    );
}

#[test]
fn table_changes_that_did_not_stop_the_drops() {
    // Raised, but the drops went on: advise from the new value, say so.
    let mut f = table(1100, 1100, 1024, 0);
    f.changes = vec![change(
        "net.ipv4.neigh.default.gc_thresh3",
        64,
        1024,
        196,
        22,
    )];
    let a = advise_neigh_table(&f);
    assert_eq!(a.stopped_by, None);
    assert!(a.action.contains("gc_thresh3 = 1024"), "{}", a.action);
    assert!(
        a.reason
            .contains("gc_thresh3 64 → 1024 at 19:31:02 did not stop them (196 before, 22 after)"),
        "{}",
        a.reason
    );
    // Lowered after the drops: not what stopped them.
    let mut f = table(66, 66, 1024, 0);
    f.changes = vec![change(
        "net.ipv4.neigh.default.gc_thresh3",
        1024,
        512,
        22,
        0,
    )];
    assert_eq!(advise_neigh_table(&f).stopped_by, None);
    // gc_thresh2 alone does not bound the table.
    let mut f = table(66, 66, 64, 0);
    f.changes = vec![change("net.ipv4.neigh.default.gc_thresh2", 32, 512, 22, 0)];
    let a = advise_neigh_table(&f);
    assert_eq!(a.stopped_by, None);
    assert!(a.action.contains("raise to"), "{}", a.action);
    // Made before any drop of the group: not a cause of anything stopping.
    let mut f = table(66, 66, 64, 0);
    f.changes = vec![change("net.ipv4.neigh.default.gc_thresh3", 32, 64, 0, 22)];
    assert_eq!(advise_neigh_table(&f).stopped_by, None);
}

#[test]
fn table_suggestions_exceed_the_peak_and_the_threshold() {
    for (entries, peak, g3) in [
        (66, 66, 64),
        (10, 5000, 1024),
        (1108, 1108, 1024),
        (0, 0, 0),
        (70_000, 90_000, 65_536),
        (66, 66, 1024),
    ] {
        let a = advise_neigh_table(&table(entries, peak, g3, 0));
        let s3 = a.knobs[2].suggested.unwrap();
        assert!(s3 > peak.max(entries), "{s3} for peak {peak}: {}", a.action);
        assert!(s3 > g3, "{s3} for gc_thresh3 {g3}: {}", a.action);
        for k in &a.knobs {
            assert!(k.suggested >= k.current, "never lower {}: {:?}", k.name, k);
        }
    }
    // A table refused entries although the reads never saw it full: say so,
    // do not pretend it peaked above the threshold.
    let a = advise_neigh_table(&table(66, 66, 1024, 0));
    assert!(
        a.action
            .contains("refused entries although the reads saw at most 66 (it fills between reads) → raise to 2048"),
        "{}",
        a.action
    );
}

#[test]
fn neigh_queue_raised_after_the_drops_says_it_stopped() {
    let mut f = neigh_queue(Some("INCOMPLETE"), Some(1));
    f.changes = vec![change(
        "net.ipv4.neigh.veth0.unres_qlen_bytes",
        1,
        212_992,
        13,
        0,
    )];
    let a = advise_neigh_queue(&f);
    assert!(
        a.action
            .starts_with("none: net.ipv4.neigh.veth0.unres_qlen_bytes 1 → 212992 at 19:31:02 stopped the drops (13 before, 0 after)"),
        "{}",
        a.action
    );
    // Drops after it: advise from the values in force.
    f.changes[0].drops_after = 4;
    assert_eq!(advise_neigh_queue(&f).stopped_by, None);
}

#[test]
fn neigh_queue_suggestion_always_exceeds_the_current() {
    for cur in [0, 1, 1000, 212_992, 10_000_000, u64::MAX / 2, u64::MAX - 1] {
        let a = advise_neigh_queue(&neigh_queue(Some("REACHABLE"), Some(cur)));
        let s = a.knobs[0].suggested.unwrap();
        assert!(s > cur, "{s} for {cur}");
        assert!(
            a.action.contains(&format!("from {cur} to {s}")),
            "{}",
            a.action
        );
    }
}

#[test]
fn accept_backlog_raised_after_the_drops_says_it_stopped() {
    let mut f = accept(1, Some(4096), None);
    f.changes = vec![change(
        "listen() backlog of 198.18.0.1:8080",
        1,
        1024,
        178,
        0,
    )];
    let a = advise_accept(&f);
    assert_eq!(
        a.action,
        "none: listen() backlog of 198.18.0.1:8080 1 → 1024 at 19:31:02 stopped the drops (178 before, 0 after)"
    );
    // somaxconn only applies when the application listens again: not it.
    f.changes = vec![change("net.core.somaxconn", 128, 4096, 178, 0)];
    let a = advise_accept(&f);
    assert_eq!(a.stopped_by, None);
    assert!(
        a.action.starts_with("raise the listen() backlog"),
        "{}",
        a.action
    );
}

#[test]
fn accept_suggestion_exceeds_limit_and_peak() {
    for (limit, peak) in [
        (1, 2),
        (128, 129),
        (4096, 4097),
        (65535, 65536),
        (100_000, 100_001),
        (16384, 70_000),
    ] {
        let mut f = accept(limit, Some(u64::from(limit)), None);
        f.peak_queue = peak;
        let a = advise_accept(&f);
        let s = a.knobs[0].suggested.unwrap();
        assert!(
            s > u64::from(limit) && s > u64::from(peak),
            "{s} for {limit}/{peak}: {}",
            a.action
        );
    }
}

#[test]
fn accept_queue_words_match_the_peak() {
    // Seen full: never "not full".
    let a = advise_accept(&accept(1, Some(4096), None));
    assert!(a.reason.contains("peaked at 2"), "{}", a.reason);
    assert!(!a.reason.contains("not full"), "{}", a.reason);
    // Never seen full by the reads: say the reads missed it.
    let mut f = accept(128, Some(4096), None);
    f.peak_queue = 3;
    f.queue = Some(0);
    let a = advise_accept(&f);
    assert!(
        a.reason
            .contains("the reads saw at most 3 of 128 (it fills between reads)"),
        "{}",
        a.reason
    );
    assert!(!a.reason.contains("not full"), "{}", a.reason);
}

#[test]
fn accept_queue_of_a_closed_listener() {
    let mut f = accept(1, Some(4096), None);
    f.queue = None;
    f.closed = true;
    let a = advise_accept(&f);
    assert!(
        a.reason.contains(
            "the accept queue peaked at 2 (limit 1 at the drops); the listener is closed now"
        ),
        "{}",
        a.reason
    );
    assert!(
        !a.reason.contains('?') && !a.reason.contains("/1 now"),
        "{}",
        a.reason
    );
}

#[test]
fn rp_filter_change_that_stops_the_drops() {
    // all 1 → 0 while the device says 0: effective 0, stopped.
    let mut f = rp(1, 0);
    f.changes = vec![change("net.ipv4.conf.all.rp_filter", 1, 0, 10, 0)];
    let a = advise_rp_filter(&f);
    assert_eq!(
        a.action,
        "none: net.ipv4.conf.all.rp_filter 1 → 0 at 19:31:02 stopped the drops (10 before, 0 after)"
    );
    // all 1 → 0 while the device is 1: still strict, not the change that stopped them.
    let mut f = rp(1, 1);
    f.changes = vec![change("net.ipv4.conf.all.rp_filter", 1, 0, 10, 0)];
    let a = advise_rp_filter(&f);
    assert_eq!(a.stopped_by, None);
    assert!(a.action.contains("both 1 (strict)"), "{}", a.action);
    // ... until the device follows: that one is credited.
    f.changes
        .push(change("net.ipv4.conf.eth1.rp_filter", 1, 2, 10, 0));
    let a = advise_rp_filter(&f);
    assert_eq!(
        a.stopped_by.map(|c| c.knob),
        Some("net.ipv4.conf.eth1.rp_filter".to_string())
    );
    // Strict → loose on the device: stopped.
    let mut f = rp(0, 1);
    f.changes = vec![change("net.ipv4.conf.eth1.rp_filter", 1, 2, 10, 0)];
    assert!(advise_rp_filter(&f).action.starts_with("none: "));
    // Loose → strict: not a fix.
    let mut f = rp(0, 2);
    f.changes = vec![change("net.ipv4.conf.eth1.rp_filter", 2, 1, 10, 0)];
    assert_eq!(advise_rp_filter(&f).stopped_by, None);
}

#[test]
fn neigh_table_never_read_does_not_claim_a_peak() {
    let a = advise_neigh_table(&table(0, 0, 64, 0));
    assert!(
        a.action.starts_with(
            "net.ipv4.neigh.default.gc_thresh3 = 64, the table's size was not read → raise to 1024"
        ),
        "{}",
        a.action
    );
}
