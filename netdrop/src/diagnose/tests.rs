use std::net::IpAddr;

use super::{report::Hooks, snapshot::NetnsSnapshot, *};
use crate::{
    context::{DevSysctls, Listener, NetnsSysctls},
    decode::{DropRecord, Packet},
};

const NS: u64 = 4026532177;

fn drop_rec(dev: &str, saddr: &str, daddr: &str, dport: u16) -> DropRecord {
    DropRecord {
        netns: NS as u32,
        ifindex: 2,
        dev: dev.into(),
        packet: Some(Packet {
            saddr: saddr.parse().unwrap(),
            daddr: daddr.parse().unwrap(),
            l4: 6,
            sport: Some(40000),
            dport: Some(dport),
        }),
        ..crate::decode::tests_support::drop_record()
    }
}

fn view(rec: &DropRecord, cause: Cause) -> DropView<'_> {
    DropView {
        rec,
        cause,
        reason: String::new(),
        location: String::new(),
        ts: 0.0,
        owner: None,
        netns_name: None,
        netns_identity: None,
    }
}

fn snap(at: f64, overflows: u64, queue: u32) -> Snapshot {
    let mut sysctls = NetnsSysctls {
        somaxconn: Some(4096),
        ..Default::default()
    };
    sysctls.rp_filter_all = Some(0);
    sysctls.devs.insert(
        "eth1".into(),
        crate::context::DevSysctls {
            rp_filter: Some(1),
            ..Default::default()
        },
    );
    Snapshot {
        at_s: at,
        netns: vec![NetnsSnapshot {
            inode: NS,
            name: Some("lb".into()),
            listen_overflows: Some(overflows),
            sysctls,
            listeners: vec![Listener {
                family: 2,
                addr: "198.18.0.1".parse().unwrap(),
                port: 80,
                accept_queue: queue,
                backlog: 1,
                inode: 1,
                uid: 0,
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn summary(accept: u64, rp: u64) -> Summary {
    let mut s = Summary::default();
    for c in Cause::ALL {
        s.causes.insert(c.as_str(), 0);
    }
    s.causes.insert("accept_queue_full", accept);
    s.causes.insert("rp_filter", rp);
    s
}

#[test]
fn accept_total_is_hooks_plus_counter_exactly() {
    let mut d = Diagnosis::default();
    d.on_snapshot(snap(0.0, 100, 0));
    let ack = drop_rec("eth0", "198.18.0.2", "198.18.0.1", 80);
    d.on_drop(&view(&ack, Cause::AcceptQueueFull));
    d.on_drop(&view(&ack, Cause::AcceptQueueFull));
    // The counter moved by 7 while the listener was full: 5 no hook saw.
    d.on_snapshot(snap(1.0, 107, 2));
    // Then by 3 more; the final snapshot finds the listener still full.
    d.on_snapshot(snap(2.0, 110, 2));
    let r = d.report(&summary(2, 0), &Session::default(), Hooks::default());
    let c = &r.causes[0];
    assert_eq!(c.cause, Cause::AcceptQueueFull);
    assert_eq!(
        (c.drops, c.seen_by_hooks, c.counted_by_kernel_only),
        (10, 2, 8)
    );
    let report::Group::Listener {
        listener,
        limit,
        peak_queue,
        somaxconn,
        drops,
        netns_name,
        ..
    } = &c.groups[0]
    else {
        panic!("not a listener group: {:?}", c.groups[0]);
    };
    assert_eq!(listener, "198.18.0.1:80");
    assert_eq!(
        (*limit, *peak_queue, *somaxconn, *drops),
        (Some(1), Some(2), Some(4096), 10)
    );
    assert_eq!(netns_name.as_deref(), Some("lb"));
    assert!(
        c.advice[0]
            .action
            .contains("listen() backlog of 198.18.0.1:80 from 1 to 1024"),
        "{}",
        c.advice[0].action
    );
    let row = r
        .kernel_counters
        .iter()
        .find(|r| r.counter == "TcpExt:ListenOverflows")
        .unwrap();
    assert_eq!(row.kernel, Some(10));
}

#[test]
fn unseen_drops_without_a_full_listener_stay_unattributed() {
    let mut d = Diagnosis::default();
    d.on_snapshot(snap(0.0, 0, 0));
    d.on_snapshot(snap(1.0, 4, 0));
    let r = d.report(&summary(0, 0), &Session::default(), Hooks::default());
    let c = &r.causes[0];
    assert_eq!((c.drops, c.counted_by_kernel_only), (4, 4));
    let report::Group::Listener { listener, .. } = &c.groups[0] else {
        panic!()
    };
    assert!(listener.contains("no listener full"), "{listener}");
}

#[test]
fn rp_filter_groups_by_device_with_examples_and_live_values() {
    let mut d = Diagnosis::default();
    d.on_snapshot(snap(0.0, 0, 0));
    for src in ["198.19.9.1", "198.19.9.2", "198.19.9.1"] {
        let r = drop_rec("eth1", src, "198.18.4.2", 9);
        d.on_drop(&view(&r, Cause::RpFilter));
    }
    d.on_snapshot(snap(1.0, 0, 0));
    let r = d.report(&summary(0, 3), &Session::default(), Hooks::default());
    assert_eq!(r.causes.len(), 1);
    let report::Group::Device {
        dev,
        rp_filter_all,
        rp_filter_dev,
        effective,
        drops,
        sources,
        ..
    } = &r.causes[0].groups[0]
    else {
        panic!()
    };
    assert_eq!(
        (
            dev.as_str(),
            *rp_filter_all,
            *rp_filter_dev,
            *effective,
            *drops
        ),
        ("eth1", Some(0), Some(1), Some(1), 3)
    );
    let want: Vec<IpAddr> = ["198.19.9.1", "198.19.9.2"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(sources, &want);
    assert!(
        r.render()
            .contains("rp_filter all 0 / eth1 1 → effective 1"),
        "{}",
        r.render()
    );
}

#[test]
fn nothing_to_report_says_so() {
    let mut d = Diagnosis::default();
    d.on_snapshot(snap(0.0, 5, 0));
    d.on_snapshot(snap(1.0, 5, 0));
    let r = d.report(&summary(0, 0), &Session::default(), Hooks::default());
    assert!(r.causes.is_empty());
    assert!(r.render().contains("nothing to change"));
}

// Fixtures of the field-truth tests: a session, namespaces by identity.

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

mod counts;
mod field;
mod fusion;

/// `serve --retain`: a namespace gone for longer is forgotten, groups and
/// all, and every total stays as it was.
#[test]
fn gone_namespaces_are_retired_without_changing_the_totals() {
    let mut d = Diagnosis {
        retain_s: Some(10.0),
        ..Diagnosis::default()
    };
    d.on_snapshot(snap(0.0, 100, 0));
    let ack = drop_rec("eth0", "198.18.0.2", "198.18.0.1", 80);
    d.on_drop(&view(&ack, Cause::AcceptQueueFull));
    d.on_snapshot(snap(1.0, 107, 2));
    let totals = |d: &Diagnosis| {
        let r = d.report(&summary(1, 0), &Session::default(), Hooks::default());
        let row = r
            .kernel_counters
            .iter()
            .find(|r| r.counter == "TcpExt:ListenOverflows")
            .and_then(|r| r.kernel);
        (d.kernel_only(), row, r.causes.first().map(|c| c.drops))
    };
    let before = totals(&d);
    assert_eq!(before.1, Some(7));
    let empty = |at| Snapshot {
        at_s: at,
        ..Default::default()
    };
    // Gone, but not for long enough: kept.
    d.on_snapshot(empty(2.0));
    d.on_snapshot(empty(11.0));
    assert!(!d.accept.is_empty() && !d.latest_ns.is_empty());
    // Gone for 10 s: forgotten, the totals unchanged.
    d.on_snapshot(empty(12.5));
    assert!(d.accept.is_empty(), "{:?}", d.accept);
    assert!(d.latest_ns.is_empty() && d.counters.ns.is_empty());
    assert_eq!(d.retired.namespaces, 1);
    assert_eq!(totals(&d), before);
}

/// Without `retain_s` (watch, diagnose, replay) nothing is forgotten.
#[test]
fn without_retain_gone_namespaces_stay_in_the_report() {
    let mut d = Diagnosis::default();
    d.on_snapshot(snap(0.0, 100, 0));
    let ack = drop_rec("eth0", "198.18.0.2", "198.18.0.1", 80);
    d.on_drop(&view(&ack, Cause::AcceptQueueFull));
    d.on_snapshot(Snapshot {
        at_s: 1000.0,
        ..Default::default()
    });
    assert!(!d.accept.is_empty());
    assert_eq!(d.retired.namespaces, 0);
}
