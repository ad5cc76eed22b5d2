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
