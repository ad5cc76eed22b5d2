//! Field truth: values in force at the drops, changes during the session.

use serde_json::json;

use super::*;
use crate::diagnose::{
    counters::Start,
    values::{MAX_CHANGES_PER_SCOPE, MAX_SEGMENTS},
};

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
fn gc_thresh_read_at_a_table_drop_is_not_undone_by_an_older_snapshot() {
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![], 64));
    // The initial namespace, read at a full-table drop, shows the raised value.
    let mut init = ns(id(1), "init");
    (
        init.sysctls.gc_thresh1,
        init.sysctls.gc_thresh2,
        init.sysctls.gc_thresh3,
    ) = (Some(256), Some(512), Some(1024));
    d.on_netns_snapshot(62.0, init);
    // A full snapshot whose global read started before it, taken in after.
    d.on_snapshot(full(61.5, vec![], 64));
    let g3 = [crate::diagnose::values::Knob::GcThresh { ipv6: false, n: 3 }];
    let changes: Vec<_> = d.changes.of(None, &g3).collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0].from, changes[0].to), (64, 1024));
}

#[test]
fn the_limit_read_at_the_drop_is_the_one_in_force() {
    let x = id(4);
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![], 1024));
    // Never read: the probe's own reading of the listener is all there is.
    let mut ack = rec_in(x, "eth0", "198.18.0.2", "198.18.0.1", 80);
    ack.accept_queue = Some((2, 1));
    drops(&mut d, &ack, Cause::AcceptQueueFull, 3, 1.0);
    d.on_snapshot(full(5.0, vec![], 1024));
    let r = report(&d, &[(Cause::AcceptQueueFull, 3)]);
    let g = serde_json::to_value(&r.causes[0].groups[0]).unwrap();
    assert_eq!(
        (&g["limit"], &g["peak_queue"], &g["closed"]),
        (&json!(1), &json!(2), &json!(true)),
        "{g}"
    );
}
