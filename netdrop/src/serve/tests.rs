//! The exporter's state and exposition, without a kernel: events, reads and
//! reports go in as the session gives them, a page comes out.

use std::sync::{Arc, Mutex};

use prometheus_client::{encoding::prometheus_text, registry::Registry};

use super::{
    encode::Exposition,
    state::{MetricsSink, State},
};
use crate::{
    causes::Cause,
    container::{Identity, Runtime},
    context::Listener,
    decode::tests_support::drop_record,
    event::DropView,
    sink::Sink,
    snapshot::{NetnsSnapshot, Snapshot},
};

fn sink(top: usize) -> MetricsSink {
    MetricsSink {
        state: Arc::new(Mutex::new(State::new(top))),
    }
}

fn page(s: &MetricsSink) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exposition(s.state.clone())));
    let mut out = String::new();
    prometheus_text::encode(&mut out, &registry).unwrap();
    out
}

/// The value of the one sample of `metric` whose labels hold all of `has`.
fn value(page: &str, metric: &str, has: &[&str]) -> Option<f64> {
    page.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .find(|l| has.iter().all(|h| l.contains(h)))
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
}

fn drop_in(s: &mut MetricsSink, inode: u32, cause: Cause, identity: Option<Identity>) {
    let rec = crate::decode::DropRecord {
        netns: inode,
        netns_cookie: inode.into(),
        ..drop_record()
    };
    let v = DropView {
        rec: &rec,
        cause,
        reason: "X".into(),
        location: String::new(),
        ts: 0.0,
        owner: None,
        netns_name: Some(format!("ns{inode}")),
        netns_identity: identity,
    };
    s.on_drop(&v).unwrap();
}

fn ns(inode: u64, listeners: Vec<Listener>) -> NetnsSnapshot {
    NetnsSnapshot {
        inode,
        cookie: inode,
        listen_overflows: Some(0),
        listeners,
        ..NetnsSnapshot::default()
    }
}

fn listener(queue: u32, backlog: u32) -> Listener {
    Listener {
        family: 2,
        addr: "198.18.0.1".parse().unwrap(),
        port: 80,
        accept_queue: queue,
        backlog,
        inode: 1,
        uid: 0,
    }
}

#[test]
fn namespaces_beyond_top_add_up_in_other() {
    let mut s = sink(2);
    for inode in 1..=5 {
        for _ in 0..inode {
            drop_in(&mut s, inode, Cause::RpFilter, None);
        }
    }
    let p = page(&s);
    let series: Vec<&str> = p
        .lines()
        .filter(|l| l.starts_with("netdrop_netns_drops_total{"))
        .collect();
    assert_eq!(series.len(), 3, "{series:?}");
    assert_eq!(
        value(
            &p,
            "netdrop_netns_drops_total",
            &["netns=\"1\"", "netns_name=\"ns1\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&p, "netdrop_netns_drops_total", &["netns=\"2\""]),
        Some(2.0)
    );
    assert_eq!(
        value(&p, "netdrop_netns_drops_total", &["netns=\"other\""]),
        Some(12.0)
    );
    assert_eq!(value(&p, "netdrop_series_folded_total", &[]), Some(12.0));
}

#[test]
fn gone_namespaces_expire_into_other_and_sums_hold() {
    let mut s = sink(10);
    s.state.lock().unwrap().retain_s = 0.0;
    drop_in(&mut s, 7, Cause::Other, None);
    drop_in(&mut s, 8, Cause::Other, None);
    // Only namespace 8 is still there (a complete snapshot).
    std::thread::sleep(std::time::Duration::from_millis(5));
    s.on_snapshot(&Snapshot {
        netns: vec![ns(8, vec![])],
        ..Snapshot::default()
    })
    .unwrap();
    let p = page(&s);
    assert_eq!(
        value(&p, "netdrop_netns_drops_total", &["netns=\"7\""]),
        None,
        "{p}"
    );
    assert_eq!(
        value(&p, "netdrop_netns_drops_total", &["netns=\"8\""]),
        Some(1.0)
    );
    assert_eq!(
        value(&p, "netdrop_netns_drops_total", &["netns=\"other\""]),
        Some(1.0)
    );
    assert_eq!(value(&p, "netdrop_namespaces_tracked", &[]), Some(1.0));
}

#[test]
fn listener_peak_is_since_the_previous_scrape() {
    let mut s = sink(10);
    s.on_netns_snapshot(0.0, &ns(9, vec![listener(128, 128)]))
        .unwrap();
    s.on_netns_snapshot(0.5, &ns(9, vec![listener(3, 128)]))
        .unwrap();
    let p = page(&s);
    let l = ["netns=\"9\"", "listener=\"198.18.0.1:80\""];
    assert_eq!(value(&p, "netdrop_listen_queue_length", &l), Some(3.0));
    assert_eq!(value(&p, "netdrop_listen_queue_peak", &l), Some(128.0));
    assert_eq!(value(&p, "netdrop_listen_queue_fill_ratio", &l), Some(1.0));
    s.state.lock().unwrap().scraped();
    let p = page(&s);
    assert_eq!(value(&p, "netdrop_listen_queue_peak", &l), Some(3.0));
}

#[test]
fn pod_labels_come_from_the_namespace_identity_escaped() {
    let mut s = sink(10);
    let id = Identity {
        runtime: Runtime::Containerd,
        container_id: "ab".repeat(32),
        container_name: Some("app".into()),
        pod_name: Some("web\u{1b}[31m-1".into()),
        pod_namespace: Some("prod".into()),
        pod_uid: None,
    };
    drop_in(&mut s, 4, Cause::SocketRcvbuf, Some(id));
    let p = page(&s);
    assert!(!p.contains('\u{1b}'), "a raw ESC on the page");
    let v = value(
        &p,
        "netdrop_netns_drops_total",
        &[
            "pod=\"web\\\\x1b[31m-1\"",
            "pod_namespace=\"prod\"",
            "container=\"app\"",
        ],
    );
    assert_eq!(v, Some(1.0), "{p}");
}

#[test]
fn conntrack_and_rp_filter_gauges_from_a_read() {
    let mut s = sink(10);
    let mut n = ns(5, vec![]);
    n.knobs
        .insert("net.netfilter.nf_conntrack_count".into(), 90);
    n.knobs.insert("net.netfilter.nf_conntrack_max".into(), 100);
    n.sysctls.rp_filter_all = Some(0);
    for (dev, v) in [("eth0", 1), ("eth1", 0), ("eth2", 2)] {
        n.sysctls.devs.insert(
            dev.into(),
            crate::context::DevSysctls {
                rp_filter: Some(v),
                ..Default::default()
            },
        );
    }
    s.on_netns_snapshot(0.0, &n).unwrap();
    let p = page(&s);
    assert_eq!(
        value(&p, "netdrop_conntrack_fill_ratio", &["netns=\"5\""]),
        Some(0.9)
    );
    assert_eq!(
        value(&p, "netdrop_rp_filter_effective", &["device=\"eth0\""]),
        Some(1.0)
    );
    assert_eq!(
        value(&p, "netdrop_rp_filter_effective", &["device=\"eth1\""]),
        None
    );
    assert_eq!(
        value(&p, "netdrop_rp_filter_effective", &["device=\"eth2\""]),
        Some(2.0)
    );
}

#[test]
fn every_family_has_help_and_a_type() {
    let s = sink(10);
    let p = page(&s);
    let types = p.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let helps = p.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(types, helps);
    assert!(types >= 30, "{types} families:\n{p}");
    for name in [
        "netdrop_cause_drops_total",
        "netdrop_neigh_table_fill_ratio",
        "netdrop_build_info",
    ] {
        assert!(p.contains(&format!("# TYPE {name} ")), "{name}");
    }
}

/// The kernel reuses a namespace's inode: two namespaces with one inode are
/// two series (their cookies differ), never one label set twice.
#[test]
fn a_reused_inode_is_two_series() {
    let mut s = sink(10);
    for cookie in [1u64, 2] {
        let rec = crate::decode::DropRecord {
            netns: 77,
            netns_cookie: cookie,
            ..drop_record()
        };
        let v = DropView {
            rec: &rec,
            cause: Cause::RpFilter,
            reason: "IP_RPFILTER".into(),
            location: String::new(),
            ts: 0.0,
            owner: None,
            netns_name: None,
            netns_identity: None,
        };
        s.on_drop(&v).unwrap();
    }
    let p = page(&s);
    let series: Vec<&str> = p
        .lines()
        .filter(|l| l.starts_with("netdrop_netns_drops_total{") && l.contains("netns=\"77\""))
        .map(|l| l.rsplit_once(' ').unwrap().0)
        .collect();
    assert_eq!(series.len(), 2, "{p}");
    assert_ne!(series[0], series[1]);
    assert!(series.iter().any(|l| l.contains("netns_cookie=\"1\"")));
    assert!(series.iter().any(|l| l.contains("netns_cookie=\"2\"")));
}
