//! Field truth: the kernel's counters of namespaces that come and go, and
//! one total for the drops known only from them.

use serde_json::json;

use super::*;
use crate::diagnose::counters::Start;

#[test]
fn namespace_born_and_deleted_mid_session_counts_from_zero() {
    let (base, short) = (id(1), id(2));
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![ns(base, "base")], 1024));
    // Born after the first snapshot, dropped, read right after its first drops.
    let rec = rec_in(short, "eth1", "198.19.9.1", "198.18.4.2", 9);
    drops(&mut d, &rec, Cause::RpFilter, 12, 1.0);
    let mut s = ns(short, "short");
    s.rp_filter_drops = Some(12);
    d.on_netns_snapshot(1.05, s.clone());
    drops(&mut d, &rec, Cause::RpFilter, 8, 1.1);
    s.rp_filter_drops = Some(20);
    d.on_netns_snapshot(1.2, s);
    // Deleted before the next full snapshot.
    d.on_snapshot(full(5.0, vec![ns(base, "base")], 1024));
    let r = report(&d, &[(Cause::RpFilter, 20)]);
    let row = r
        .kernel_counters
        .iter()
        .find(|r| r.cause == Cause::RpFilter)
        .unwrap();
    assert_eq!(
        (row.kernel, row.netdrop_seen, row.incomplete),
        (Some(20), 20, false)
    );
    let g = serde_json::to_value(&r.causes[0].groups[0]).unwrap();
    assert_eq!(
        (&g["netns_name"], &g["gone"]),
        (&json!("short"), &json!(true)),
        "{g}"
    );
    assert_eq!(g["effective"], json!(1));
    assert!(
        r.render().contains("netns short (4026532300) (gone)"),
        "{}",
        r.render()
    );
}

#[test]
fn a_count_that_may_be_short_says_so() {
    let (base, short) = (id(1), id(2));
    // Drops after its last read, then gone: the kernel's count misses them.
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![ns(base, "base")], 1024));
    let rec = rec_in(short, "eth1", "198.19.9.1", "198.18.4.2", 9);
    drops(&mut d, &rec, Cause::RpFilter, 12, 1.0);
    let mut s = ns(short, "short");
    s.rp_filter_drops = Some(12);
    d.on_netns_snapshot(1.05, s);
    drops(&mut d, &rec, Cause::RpFilter, 8, 1.5);
    d.on_snapshot(full(5.0, vec![ns(base, "base")], 1024));
    let r = report(&d, &[(Cause::RpFilter, 20)]);
    let row = r
        .kernel_counters
        .iter()
        .find(|r| r.cause == Cause::RpFilter)
        .unwrap();
    assert_eq!((row.kernel, row.incomplete), (Some(12), true));
    assert!(r.render().contains("kernel     ≥ 12"), "{}", r.render());
    let v = serde_json::to_value(row).unwrap();
    assert_eq!(v["incomplete"], json!(true));

    // Not in an incomplete first snapshot: it may have counted before its first read.
    let mut d = diagnosis();
    let mut first = full(0.0, vec![ns(base, "base")], 1024);
    first.netns_skipped = 1;
    d.on_snapshot(first);
    let mut s = ns(short, "short");
    s.rp_filter_drops = Some(4);
    d.on_netns_snapshot(1.0, s.clone());
    drops(&mut d, &rec, Cause::RpFilter, 3, 1.5);
    s.rp_filter_drops = Some(7);
    d.on_snapshot(full(5.0, vec![ns(base, "base"), s], 1024));
    assert_eq!(d.counters.get(short).unwrap().start, Start::Unknown);
    let r = report(&d, &[(Cause::RpFilter, 3)]);
    let row = r
        .kernel_counters
        .iter()
        .find(|r| r.cause == Cause::RpFilter)
        .unwrap();
    assert_eq!((row.kernel, row.incomplete), (Some(3), true));

    // A namespace that counted nothing before its first read is exact either way.
    let mut d = diagnosis();
    let mut first = full(0.0, vec![], 1024);
    first.netns_skipped = 1;
    d.on_snapshot(first);
    let mut s = ns(short, "short");
    d.on_netns_snapshot(1.0, s.clone());
    drops(&mut d, &rec, Cause::RpFilter, 3, 1.5);
    s.rp_filter_drops = Some(3);
    d.on_snapshot(full(5.0, vec![s], 1024));
    let r = report(&d, &[(Cause::RpFilter, 3)]);
    let row = r
        .kernel_counters
        .iter()
        .find(|r| r.cause == Cause::RpFilter)
        .unwrap();
    assert_eq!((row.kernel, row.incomplete), (Some(3), false));
}

/// A short-lived namespace whose listener overflowed where no hook sees refused
/// SYNs: the kernel's count up to its last read, attributed to its listener.
fn short_lived_accept_overflow() -> Diagnosis {
    let short = id(9);
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![], 1024));
    let ack = rec_in(short, "eth0", "198.18.0.2", "198.18.0.1", 80);
    drops(&mut d, &ack, Cause::AcceptQueueFull, 2, 1.0);
    let mut s = ns(short, "web");
    s.listeners = snap(0.0, 0, 2).netns[0].listeners.clone();
    s.listen_overflows = Some(8);
    d.on_netns_snapshot(1.1, s);
    d.on_snapshot(full(5.0, vec![], 1024));
    d
}

#[test]
fn kernel_only_is_what_the_report_counts_by_the_kernel_only() {
    let d = short_lived_accept_overflow();
    assert_eq!(d.kernel_only().beyond_seen(Cause::AcceptQueueFull), 6);
    // The summary as the session gives it (kernel-only included)...
    let r = report(&d, &[(Cause::AcceptQueueFull, 2)]);
    let c = &r.causes[0];
    assert_eq!(
        (c.drops, c.seen_by_hooks, c.counted_by_kernel_only),
        (8, 2, 6)
    );
    assert_eq!(
        c.counted_by_kernel_only,
        d.kernel_only().beyond_seen(Cause::AcceptQueueFull)
    );
    assert_eq!(r.totals.cause(Cause::AcceptQueueFull), c.drops);
    // ... or without them: the same report.
    let bare = d.report(&summary(2, 0), &Session::default(), Hooks::default());
    let b = &bare.causes[0];
    assert_eq!(
        (b.drops, b.seen_by_hooks, b.counted_by_kernel_only),
        (8, 2, 6)
    );
    let g = serde_json::to_value(&c.groups[0]).unwrap();
    assert_eq!(
        (&g["listener"], &g["drops"], &g["drops_counted_only"]),
        (&json!("198.18.0.1:80"), &json!(8), &json!(6)),
        "{g}"
    );
    // The listener is gone with its namespace: no "now" queue beside its peak.
    assert_eq!(
        (
            &g["closed"],
            &g["gone"],
            &g["queue"],
            &g["limit"],
            &g["peak_queue"]
        ),
        (
            &json!(true),
            &json!(true),
            &json!(null),
            &json!(1),
            &json!(2)
        ),
        "{g}"
    );
    let text = r.render();
    assert!(
        text.contains("closed; accept queue limit 1 at the drops (peak 2)"),
        "{text}"
    );
    assert!(!text.contains("?/1") && !text.contains("0/1 now"), "{text}");
    let row = r
        .kernel_counters
        .iter()
        .find(|r| r.counter == "TcpExt:ListenOverflows")
        .unwrap();
    assert_eq!(
        (row.kernel, row.netdrop_seen, row.incomplete),
        (Some(8), 2, false)
    );
}

#[test]
fn namespaces_gone_without_drops_are_forgotten() {
    let mut d = diagnosis();
    for i in 0..100u64 {
        d.on_snapshot(full(i as f64, vec![ns(id(1000 + i), "pod")], 1024));
    }
    assert!(d.latest_ns.len() <= 1, "{}", d.latest_ns.len());
    assert!(d.counters.ns.len() <= 1, "{}", d.counters.ns.len());
}

#[test]
fn refused_syns_are_placed_in_time_by_the_drops_clock() {
    let (base, short) = (id(1), id(2));
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![ns(base, "base")], 1024));
    // A drop carries both clocks: CLOCK_MONOTONIC 5 s is START + 1 s.
    let mut rec = rec_in(base, "eth1", "198.19.9.1", "198.18.4.2", 9);
    rec.ts_ns = 5_000_000_000;
    drops(&mut d, &rec, Cause::RpFilter, 1, 1.0);
    // The short-lived namespace is read at 5.0 s; a SYN it refused at 4.0 s
    // (CLOCK_MONOTONIC 8 s) is taken in only after that read: the read
    // counted it, the count is exact.
    let mut s = ns(short, "short");
    s.listen_overflows = Some(1);
    d.on_netns_snapshot(5.0, s);
    d.on_listen_drop(&ListenRecord {
        ts_ns: 8_000_000_000,
        netns: short.inode,
        netns_cookie: short.cookie,
        addr: "198.18.0.1".parse().unwrap(),
        port: 80,
        ack_backlog: 2,
        max_ack_backlog: 1,
        pid: 0,
        comm: String::new(),
        owner_ino: 0,
        owner_uid: 0,
    });
    let t = d.counters.get(short).unwrap();
    assert!(
        (t.last_drop_s[counters::LISTEN_OVERFLOWS].unwrap() - 4.0).abs() < 1e-6,
        "{t:?}"
    );
    d.on_snapshot(full(7.0, vec![ns(base, "base")], 1024));
    let r = report(&d, &[(Cause::AcceptQueueFull, 1), (Cause::RpFilter, 1)]);
    let row = r
        .kernel_counters
        .iter()
        .find(|r| r.counter == "TcpExt:ListenOverflows")
        .unwrap();
    assert_eq!((row.kernel, row.incomplete), (Some(1), false));
}

#[test]
fn a_full_snapshot_older_than_a_namespace_read_is_not_taken_for_it() {
    let x = id(3);
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![ns(x, "lb")], 1024));
    let mut off = ns(x, "lb");
    off.sysctls.devs.get_mut("eth1").unwrap().rp_filter = Some(0);
    off.rp_filter_drops = Some(9);
    d.on_netns_snapshot(3.0, off);
    // A full snapshot started at 2.5 s, before that read, taken in after it.
    let mut stale = ns(x, "lb");
    stale.rp_filter_drops = Some(4);
    d.on_snapshot(full(2.5, vec![stale], 1024));
    assert_eq!(
        d.changes.len(),
        1,
        "no change back and forth: {:?}",
        d.changes
    );
    assert_eq!(
        d.counters.get(x).unwrap().delta(counters::RP_FILTER_DROPS),
        Some(9)
    );
}

/// A namespace read once, at its drops, and gone by the next full snapshot:
/// its group keeps the name and values of that read (marked gone).
#[test]
fn a_gone_namespace_keeps_its_name_while_its_group_is_reported() {
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![], 1024));
    let pod = id(77);
    d.on_netns_snapshot(0.5, ns(pod, "pod-q"));
    let rec = rec_in(pod, "eth1", "198.18.1.1", "198.18.1.99", 9);
    drops(&mut d, &rec, Cause::NeighQueueFull, 15, 0.6);
    d.on_snapshot(full(1.0, vec![], 1024));
    d.on_snapshot(full(2.0, vec![], 1024));
    let r = report(&d, &[(Cause::NeighQueueFull, 15)]);
    let g = serde_json::to_value(&r.causes[0].groups[0]).unwrap();
    assert_eq!(g["netns_name"], "pod-q", "{g}");
    assert_eq!(g["unres_qlen_bytes"], 1, "{g}");
    assert_eq!(g["gone"], true, "{g}");
}
