//! Field truth: values in force at the drops, changes during the session,
//! per-namespace counters of namespaces that come and go, one total.

use serde_json::json;

use super::*;
use crate::{
    context::DevSysctls,
    diagnose::{
        counters::Start,
        values::{MAX_CHANGES_PER_SCOPE, MAX_SEGMENTS},
    },
};

/// The session's start, unix seconds (19:31:00 UTC is START + 60).
const START: f64 = 1_700_076_600.0;
const INODE: u32 = 4026532300;

fn id(cookie: u64) -> NetnsId {
    NetnsId::new(INODE, cookie)
}

fn ns(id: NetnsId, name: &str) -> NetnsSnapshot {
    let mut sysctls = NetnsSysctls {
        somaxconn: Some(4096),
        rp_filter_all: Some(0),
        ..Default::default()
    };
    sysctls.devs.insert(
        "eth1".into(),
        DevSysctls {
            rp_filter: Some(1),
            unres_qlen_bytes: Some(1),
            unres_qlen: Some(0),
        },
    );
    NetnsSnapshot {
        inode: id.inode.into(),
        cookie: id.cookie,
        name: Some(name.into()),
        listen_overflows: Some(0),
        listen_drops: Some(0),
        rp_filter_drops: Some(0),
        sysctls,
        ..Default::default()
    }
}

fn full(at_s: f64, namespaces: Vec<NetnsSnapshot>, gc3: u64) -> Snapshot {
    Snapshot {
        at_s,
        gc_thresh4: [Some(gc3 / 4), Some(gc3 / 2), Some(gc3)],
        netns: namespaces,
        ..Default::default()
    }
}

fn diagnosis() -> Diagnosis {
    Diagnosis {
        start_unix: START,
        ..Diagnosis::default()
    }
}

fn rec_in(id: NetnsId, dev: &str, saddr: &str, daddr: &str, dport: u16) -> DropRecord {
    DropRecord {
        netns: id.inode,
        netns_cookie: id.cookie,
        ..drop_rec(dev, saddr, daddr, dport)
    }
}

/// `n` drops of `cause` in `rec` at `at_s` seconds after the start.
fn drops(d: &mut Diagnosis, rec: &DropRecord, cause: Cause, n: u64, at_s: f64) {
    for _ in 0..n {
        d.on_drop(&DropView {
            ts: START + at_s,
            ..view(rec, cause)
        });
    }
}

/// The summary the session gives the report: the hooks' counts plus the
/// drops known only from kernel counters.
fn summary_of(d: &Diagnosis, causes: &[(Cause, u64)]) -> Summary {
    let mut s = summary(0, 0);
    for (c, n) in causes {
        s.causes.insert(c.as_str(), *n);
        s.total_drops += n;
    }
    s.with_kernel_only(&d.kernel_only())
}

fn report(d: &Diagnosis, causes: &[(Cause, u64)]) -> Report {
    d.report(
        &summary_of(d, causes),
        &Session::default(),
        Hooks::default(),
    )
}

fn table_overflow() -> DropRecord {
    drop_rec("eth0", "198.18.0.1", "198.18.9.9", 9)
}

#[test]
fn namespaces_sharing_an_inode_never_share_anything() {
    let (a, b) = (id(101), id(202));
    let mut old = ns(a, "old");
    let mut new = ns(b, "new");
    new.sysctls.devs.get_mut("eth1").unwrap().rp_filter = Some(2);
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![old.clone()], 1024));
    // The old namespace drops, is deleted; the kernel gives its inode to a new one.
    drops(
        &mut d,
        &rec_in(a, "eth1", "198.19.9.1", "198.18.4.2", 9),
        Cause::RpFilter,
        3,
        1.0,
    );
    old.rp_filter_drops = Some(3);
    d.on_snapshot(full(2.0, vec![old], 1024));
    d.on_netns_snapshot(3.0, {
        new.rp_filter_drops = Some(0);
        new.clone()
    });
    drops(
        &mut d,
        &rec_in(b, "eth1", "198.19.9.7", "198.18.4.2", 9),
        Cause::RpFilter,
        5,
        3.5,
    );
    new.rp_filter_drops = Some(5);
    d.on_snapshot(full(5.0, vec![new], 1024));

    let r = report(&d, &[(Cause::RpFilter, 8)]);
    let groups = &r.causes[0].groups;
    assert_eq!(groups.len(), 2, "{groups:?}");
    let v = serde_json::to_value(groups).unwrap();
    let by_cookie = |c: u64| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|g| g["netns_cookie"] == json!(c))
            .cloned()
            .unwrap_or_else(|| panic!("no group of cookie {c}: {v}"))
    };
    let (g_old, g_new) = (by_cookie(101), by_cookie(202));
    assert_eq!(g_old["netns"], json!(INODE));
    assert_eq!(g_new["netns"], json!(INODE));
    assert_eq!(
        (
            &g_old["netns_name"],
            &g_old["drops"],
            &g_old["effective"],
            &g_old["gone"]
        ),
        (&json!("old"), &json!(3), &json!(1), &json!(true))
    );
    assert_eq!(
        (
            &g_new["netns_name"],
            &g_new["drops"],
            &g_new["effective"],
            &g_new["gone"]
        ),
        (&json!("new"), &json!(5), &json!(2), &json!(false))
    );
    assert_eq!(g_old["sources"], json!(["198.19.9.1"]));
    // Each counted by itself: 3 up to the old one's last read, 5 from zero.
    assert_eq!(
        d.counters.get(a).unwrap().delta(counters::RP_FILTER_DROPS),
        Some(3)
    );
    assert_eq!(d.counters.get(b).unwrap().start, Start::BornLater);
    assert_eq!(
        d.counters.get(b).unwrap().delta(counters::RP_FILTER_DROPS),
        Some(5)
    );
    let row = r
        .kernel_counters
        .iter()
        .find(|r| r.cause == Cause::RpFilter)
        .unwrap();
    assert_eq!((row.kernel, row.incomplete), (Some(8), false));
    // No change detected across the two: their values differ, but they are
    // two namespaces, not one that changed.
    assert!(d.changes.is_empty(), "{:?}", d.changes);
}

#[test]
fn gc_thresh3_raised_mid_incident_splits_the_drops_and_stopped_them() {
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![], 64));
    drops(
        &mut d,
        &table_overflow(),
        Cause::NeighTableOverflow,
        196,
        30.0,
    );
    // The operator raises gc_thresh3; the next read shows it at 19:31:02.
    d.on_snapshot(full(62.0, vec![], 1024));
    d.on_snapshot(full(70.0, vec![], 1024));
    let r = report(&d, &[(Cause::NeighTableOverflow, 196)]);
    let c = &r.causes[0];
    let g = serde_json::to_value(&c.groups[0]).unwrap();
    assert_eq!(g["kind"], "table");
    assert_eq!(
        g["gc_thresh"],
        json!([16, 32, 64]),
        "values in force at the drops: {g}"
    );
    assert_eq!(g["gone"], json!(false));
    // The operator raised all three; gc_thresh3 is the one that bounds the table.
    assert_eq!(g["changes"].as_array().unwrap().len(), 3, "{g}");
    assert_eq!(
        g["changes"][2],
        json!({
            "knob": "net.ipv4.neigh.default.gc_thresh3",
            "from": 64, "to": 1024, "at": START + 62.0,
            "drops_before": 196, "drops_after": 0, "stopped": true
        }),
        "{g}"
    );
    assert_eq!(
        c.advice[0].action,
        "none: gc_thresh3 64 → 1024 at 19:31:02 stopped the drops (196 before, 0 after)"
    );
    let text = r.render();
    assert!(
        text.contains("gc_thresh3 64 → 1024 at 19:31:02; 196 drops before, 0 after: the change stopped the drops"),
        "{text}"
    );
    assert!(text.contains("gc_thresh1/2/3 16/32/64"), "{text}");
    assert!(
        text.contains("gc_thresh2 32 → 512 at 19:31:02; 196 drops before, 0 after: none since"),
        "{text}"
    );
}

#[test]
fn drops_after_a_change_are_advised_from_the_new_value() {
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![], 64));
    drops(
        &mut d,
        &table_overflow(),
        Cause::NeighTableOverflow,
        196,
        30.0,
    );
    d.on_snapshot(full(62.0, vec![], 1024));
    d.on_neigh_fail(&NeighRecord {
        ts_ns: 0,
        family: 2,
        entries: 1108,
        dev: "eth0".into(),
        addr: None,
        pid: 0,
        comm: String::new(),
    });
    drops(
        &mut d,
        &table_overflow(),
        Cause::NeighTableOverflow,
        12,
        65.0,
    );
    d.on_snapshot(full(70.0, vec![], 1024));
    let r = report(&d, &[(Cause::NeighTableOverflow, 208)]);
    let c = &r.causes[0];
    let g = serde_json::to_value(&c.groups[0]).unwrap();
    assert_eq!(g["gc_thresh"], json!([256, 512, 1024]), "{g}");
    assert_eq!(g["changes"][0]["drops_before"], json!(196));
    assert_eq!(g["changes"][0]["drops_after"], json!(12));
    assert_eq!(g["changes"][0]["stopped"], json!(false));
    let a = &c.advice[0];
    assert!(
        a.action.starts_with(
            "net.ipv4.neigh.default.gc_thresh3 = 1024, table peaked at 1108 entries → raise to 4096"
        ),
        "{}",
        a.action
    );
    // Never below the peak.
    assert!(a.knobs[2].suggested.unwrap() > 1108);
    assert!(
        a.reason
            .contains("did not stop them (196 before, 12 after)"),
        "{}",
        a.reason
    );
}

#[test]
fn rp_filter_turned_off_mid_session_shows_strict_for_its_drops() {
    let x = id(7);
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![ns(x, "lb")], 1024));
    drops(
        &mut d,
        &rec_in(x, "eth1", "198.19.9.1", "198.18.4.2", 9),
        Cause::RpFilter,
        20,
        10.0,
    );
    let mut off = ns(x, "lb");
    off.sysctls.devs.get_mut("eth1").unwrap().rp_filter = Some(0);
    off.rp_filter_drops = Some(20);
    d.on_snapshot(full(62.0, vec![off.clone()], 1024));
    d.on_snapshot(full(70.0, vec![off], 1024));
    let r = report(&d, &[(Cause::RpFilter, 20)]);
    let c = &r.causes[0];
    let g = serde_json::to_value(&c.groups[0]).unwrap();
    assert_eq!(
        (&g["rp_filter_all"], &g["rp_filter_dev"], &g["effective"]),
        (&json!(0), &json!(1), &json!(1)),
        "in force at the drops: {g}"
    );
    assert_eq!(g["changes"][0]["knob"], "net.ipv4.conf.eth1.rp_filter");
    assert_eq!(
        (
            &g["changes"][0]["from"],
            &g["changes"][0]["to"],
            &g["changes"][0]["drops_before"]
        ),
        (&json!(1), &json!(0), &json!(20))
    );
    assert!(
        c.advice[0]
            .action
            .starts_with("none: net.ipv4.conf.eth1.rp_filter 1 → 0 at 19:31:02 stopped the drops (20 before, 0 after)"),
        "{}",
        c.advice[0].action
    );
    assert!(
        r.render().contains("→ effective 1, 20 drops"),
        "{}",
        r.render()
    );
}

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
    assert_eq!(d.kernel_only()[&Cause::AcceptQueueFull], 6);
    // The summary as the session gives it (kernel-only included)...
    let r = report(&d, &[(Cause::AcceptQueueFull, 2)]);
    let c = &r.causes[0];
    assert_eq!(
        (c.drops, c.seen_by_hooks, c.counted_by_kernel_only),
        (8, 2, 6)
    );
    assert_eq!(
        c.counted_by_kernel_only,
        d.kernel_only()[&Cause::AcceptQueueFull]
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
fn listener_restarted_with_a_larger_backlog_stopped_the_drops() {
    let x = id(5);
    let with_backlog = |backlog: u32, queue: u32| {
        let mut s = ns(x, "web");
        let mut l = snap(0.0, 0, queue).netns[0].listeners[0].clone();
        l.backlog = backlog;
        s.listeners = vec![l];
        s
    };
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![with_backlog(1, 0)], 1024));
    let ack = rec_in(x, "eth0", "198.18.0.2", "198.18.0.1", 80);
    drops(&mut d, &ack, Cause::AcceptQueueFull, 30, 1.0);
    d.on_snapshot(full(62.0, vec![with_backlog(1024, 0)], 1024));
    let r = report(&d, &[(Cause::AcceptQueueFull, 30)]);
    let c = &r.causes[0];
    let g = serde_json::to_value(&c.groups[0]).unwrap();
    assert_eq!(
        (&g["limit"], &g["queue"], &g["closed"]),
        (&json!(1), &json!(0), &json!(false)),
        "{g}"
    );
    assert_eq!(g["changes"][0]["knob"], "listen() backlog of 198.18.0.1:80");
    assert_eq!(
        c.advice[0].action,
        "none: listen() backlog of 198.18.0.1:80 1 → 1024 at 19:31:02 stopped the drops (30 before, 0 after)"
    );
}

#[test]
fn advice_never_suggests_below_the_peak() {
    let x = id(5);
    let mut d = diagnosis();
    let mut s = ns(x, "web");
    s.listeners = snap(0.0, 0, 0).netns[0].listeners.clone();
    s.listeners[0].backlog = 4096;
    s.sysctls.somaxconn = Some(4096);
    d.on_snapshot(full(0.0, vec![s.clone()], 1024));
    d.on_listen_drop(&ListenRecord {
        ts_ns: 0,
        netns: x.inode,
        netns_cookie: x.cookie,
        addr: "198.18.0.1".parse().unwrap(),
        port: 80,
        ack_backlog: 70_000,
        max_ack_backlog: 4096,
        pid: 0,
        comm: String::new(),
        owner_ino: 0,
        owner_uid: 0,
    });
    d.on_snapshot(full(5.0, vec![s], 1024));
    let r = report(&d, &[(Cause::AcceptQueueFull, 1)]);
    let a = &r.causes[0].advice[0];
    for k in &a.knobs {
        if let Some(s) = k.suggested {
            assert!(s > 70_000, "{} → {s} below the peak: {}", k.name, a.action);
        }
    }
}

#[test]
fn segments_and_changes_stay_bounded() {
    let (x, y) = (id(1), id(2));
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![ns(x, "churn"), ns(y, "calm")], 1024));
    let rec = rec_in(x, "eth1", "198.19.9.1", "198.18.4.2", 9);
    let mut calm = ns(y, "calm");
    calm.sysctls.somaxconn = Some(128);
    d.on_netns_snapshot(0.5, calm);
    for i in 0..1000i32 {
        let mut s = ns(x, "churn");
        s.sysctls.devs.get_mut("eth1").unwrap().rp_filter = Some(1 + i64::from(i % 2));
        d.on_netns_snapshot(1.0 + f64::from(i), s);
        drops(&mut d, &rec, Cause::RpFilter, 1, 1.5 + f64::from(i));
    }
    assert!(
        d.changes.len() <= MAX_CHANGES_PER_SCOPE + 1,
        "{}",
        d.changes.len()
    );
    assert!(
        d.changes
            .of(Some(y), &[crate::diagnose::values::Knob::Somaxconn])
            .count()
            == 1,
        "the calm namespace's change is kept"
    );
    let g = &d.rp[&(x, "eth1".to_string())];
    assert!(g.segments.0.len() <= MAX_SEGMENTS);
    assert_eq!(g.segments.total(), 1000, "no drop lost in merging");
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
