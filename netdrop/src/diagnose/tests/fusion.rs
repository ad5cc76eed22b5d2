//! Counter fusion beyond the accept queue: rp_filter drops the kernel counted
//! in a namespace that no hook classified (kernels without drop reasons), never
//! counted twice; the neighbour tables' global counters beside netdrop's count.

use serde_json::json;

use super::*;
use crate::context::ArpCacheStats;

/// A namespace read with `rp` in its IPReversePathFilter.
fn ns_rp(id: NetnsId, name: &str, rp: u64) -> NetnsSnapshot {
    NetnsSnapshot {
        rp_filter_drops: Some(rp),
        ..ns(id, name)
    }
}

fn rp_rec(id: NetnsId) -> DropRecord {
    rec_in(id, "eth1", "198.19.9.1", "198.18.4.2", 9)
}

fn rp_cause(r: &Report) -> &report::CauseReport {
    r.causes
        .iter()
        .find(|c| c.cause == Cause::RpFilter)
        .unwrap_or_else(|| panic!("no rp_filter cause: {:#?}", r.causes))
}

#[test]
fn rp_filter_counted_by_the_kernel_only_is_a_cause_with_advice() {
    let a = id(1);
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![ns_rp(a, "lb", 1000)], 1024));
    d.on_snapshot(full(5.0, vec![ns_rp(a, "lb", 1040)], 1024));
    let r = report(&d, &[]);
    let c = rp_cause(&r);
    assert_eq!(
        (
            c.drops,
            c.seen_by_hooks,
            c.counted_by_kernel_only,
            c.maybe_among_other
        ),
        (40, 0, 40, 0)
    );
    assert_eq!(
        (r.totals.cause(Cause::RpFilter), r.totals.total_drops),
        (40, 40)
    );
    assert_eq!(r.totals.kernel_only(Cause::RpFilter), 40);
    // Its device: the only one filtering there (lo aside), with its values.
    let g = serde_json::to_value(&c.groups[0]).unwrap();
    assert_eq!(
        (
            &g["dev"],
            &g["netns_name"],
            &g["effective"],
            &g["drops"],
            &g["drops_seen"],
            &g["drops_counted_only"],
            &g["maybe_among_other"]
        ),
        (
            &json!("eth1"),
            &json!("lb"),
            &json!(1),
            &json!(40),
            &json!(0),
            &json!(40),
            &json!(0)
        ),
        "{g}"
    );
    assert!(
        c.advice[0]
            .action
            .contains("net.ipv4.conf.eth1.rp_filter = 1 (strict) decides"),
        "{:?}",
        c.advice[0]
    );
    assert!(
        c.advice[0].reason.contains("counted by the kernel"),
        "{:?}",
        c.advice[0]
    );
    let text = r.render();
    assert!(
        text.contains("rp_filter — 40 drops (0 seen by hooks, 40 counted by the kernel only)"),
        "{text}"
    );
    assert!(
        text.contains("effective 1, 40 drops (40 counted by the kernel only)"),
        "{text}"
    );
    // The same report from a summary without the kernel-only drops.
    let bare = d.report(&summary(0, 0), &Session::default(), Hooks::default());
    let b = rp_cause(&bare);
    assert_eq!((b.drops, b.counted_by_kernel_only), (40, 40));
    assert_eq!(bare.totals.total_drops, 40);
}

#[test]
fn rp_filter_drops_the_hooks_saw_are_not_counted_again() {
    let a = id(1);
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![ns_rp(a, "lb", 0)], 1024));
    drops(&mut d, &rp_rec(a), Cause::RpFilter, 100, 1.0);
    d.on_snapshot(full(5.0, vec![ns_rp(a, "lb", 100)], 1024));
    assert_eq!(d.kernel_only().beyond_seen(Cause::RpFilter), 0);
    let r = report(&d, &[(Cause::RpFilter, 100)]);
    let c = rp_cause(&r);
    assert_eq!(
        (c.drops, c.counted_by_kernel_only, c.maybe_among_other),
        (100, 0, 0)
    );
    assert_eq!(r.totals.total_drops, 100);
    assert_eq!(c.groups.len(), 1, "{:?}", c.groups);
}

#[test]
fn rp_filter_drops_among_unclassified_ones_are_in_no_total() {
    // A 5.10 guest: the 100 rp_filter drops are `other` (reason UNKNOWN).
    let a = id(1);
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![ns_rp(a, "lb", 0)], 1024));
    drops(&mut d, &rp_rec(a), Cause::Other, 100, 1.0);
    d.on_snapshot(full(5.0, vec![ns_rp(a, "lb", 100)], 1024));
    let ko = d.kernel_only();
    assert_eq!(
        (
            ko.beyond_seen(Cause::RpFilter),
            ko.maybe_among_other(Cause::RpFilter)
        ),
        (0, 100)
    );
    let r = report(&d, &[(Cause::Other, 100)]);
    assert_eq!(
        (
            r.totals.total_drops,
            r.totals.cause(Cause::RpFilter),
            r.totals.cause(Cause::Other)
        ),
        (100, 0, 100),
        "nothing counted twice"
    );
    // The cause the kernel counted is shown all the same, with its advice.
    let c = rp_cause(&r);
    assert_eq!(
        (c.drops, c.counted_by_kernel_only, c.maybe_among_other),
        (0, 0, 100)
    );
    let v = serde_json::to_value(c).unwrap();
    assert_eq!(v["maybe_among_other"], json!(100), "{v}");
    assert_eq!(v["groups"][0]["maybe_among_other"], json!(100), "{v}");
    assert_eq!(v["groups"][0]["drops"], json!(0), "{v}");
    assert!(c.advice[0].reason.starts_with("counted by the kernel"));
    assert!(
        c.advice[0].reason.contains("100 packets"),
        "{:?}",
        c.advice[0]
    );
    let text = r.render();
    assert!(
        text.contains("the kernel counted 100 more than netdrop classified as rp_filter; they may be among the `other` drops"),
        "{text}"
    );
    assert!(
        text.contains("100 more counted by the kernel that may be among the `other` drops there"),
        "{text}"
    );
    let json = serde_json::to_value(&r.totals).unwrap();
    assert_eq!(json["maybe_among_other"]["rp_filter"], json!(100), "{json}");

    // Fewer unclassified drops there than the counter moved: the rest is the
    // kernel's only.
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![ns_rp(a, "lb", 0)], 1024));
    drops(&mut d, &rp_rec(a), Cause::Other, 30, 1.0);
    d.on_snapshot(full(5.0, vec![ns_rp(a, "lb", 100)], 1024));
    let r = report(&d, &[(Cause::Other, 30)]);
    let c = rp_cause(&r);
    assert_eq!(
        (c.drops, c.counted_by_kernel_only, c.maybe_among_other),
        (70, 70, 30)
    );
    assert_eq!(r.totals.total_drops, 100);
}

#[test]
fn unclassified_drops_the_diagnosis_never_placed_guard_too() {
    // The summary counted 100 `other` drops, but only 40 events reached the
    // diagnosis (the rest held back by the event limit): any of the 60 may be
    // the namespace's rp_filter drops.
    let a = id(1);
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![ns_rp(a, "lb", 0)], 1024));
    drops(&mut d, &rp_rec(a), Cause::Other, 40, 1.0);
    d.on_snapshot(full(5.0, vec![ns_rp(a, "lb", 100)], 1024));
    let r = report(&d, &[(Cause::Other, 100)]);
    let c = rp_cause(&r);
    assert_eq!(
        (c.drops, c.counted_by_kernel_only, c.maybe_among_other),
        (0, 0, 100)
    );
    assert_eq!(r.totals.total_drops, 100);
    // The group shows what the kernel counted beyond the namespace's own.
    let v = serde_json::to_value(&c.groups[0]).unwrap();
    assert_eq!(
        (&v["drops_counted_only"], &v["maybe_among_other"]),
        (&json!(0), &json!(40)),
        "{v}"
    );
}

#[test]
fn rp_filter_of_a_namespace_born_mid_session_counts_from_zero() {
    let (base, born) = (id(1), id(2));
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![ns_rp(base, "base", 500)], 1024));
    d.on_netns_snapshot(1.0, ns_rp(born, "pod", 25));
    d.on_snapshot(full(
        5.0,
        vec![ns_rp(base, "base", 500), ns_rp(born, "pod", 30)],
        1024,
    ));
    let r = report(&d, &[]);
    let c = rp_cause(&r);
    assert_eq!((c.drops, c.counted_by_kernel_only), (30, 30));
    assert_eq!(c.groups.len(), 1);
    let g = serde_json::to_value(&c.groups[0]).unwrap();
    assert_eq!(
        (
            &g["netns_name"],
            &g["netns_cookie"],
            &g["drops_counted_only"]
        ),
        (&json!("pod"), &json!(2), &json!(30)),
        "{g}"
    );
}

#[test]
fn rp_filter_fusion_is_per_namespace() {
    // a: counted 10, the hooks saw none. b: counted 20, the hooks saw 5
    // rp_filter drops on eth1 and 5 they could not classify; two devices
    // filter there, so its kernel-only drops have no device.
    let (a, b) = (id(1), id(2));
    let two_devs = |rp: u64| {
        let mut n = ns_rp(b, "b", rp);
        n.sysctls.rp_filter_all = Some(1);
        n.sysctls
            .devs
            .insert("eth2".into(), crate::context::DevSysctls::default());
        n.sysctls
            .devs
            .insert("lo".into(), crate::context::DevSysctls::default());
        n
    };
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![ns_rp(a, "a", 0), two_devs(0)], 1024));
    drops(&mut d, &rp_rec(b), Cause::RpFilter, 5, 1.0);
    drops(&mut d, &rp_rec(b), Cause::Other, 5, 1.0);
    d.on_snapshot(full(5.0, vec![ns_rp(a, "a", 10), two_devs(20)], 1024));
    let r = report(&d, &[(Cause::RpFilter, 5), (Cause::Other, 5)]);
    let c = rp_cause(&r);
    assert_eq!(
        (
            c.drops,
            c.seen_by_hooks,
            c.counted_by_kernel_only,
            c.maybe_among_other
        ),
        (25, 5, 20, 5)
    );
    assert_eq!(r.totals.total_drops, 30);
    let v = serde_json::to_value(&c.groups).unwrap();
    let group = |name: &str, dev: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|g| g["netns_name"] == json!(name) && g["dev"] == json!(dev))
            .cloned()
            .unwrap_or_else(|| panic!("no group {name} {dev}: {v}"))
    };
    let ga = group("a", "eth1");
    assert_eq!(
        (&ga["drops"], &ga["drops_counted_only"]),
        (&json!(10), &json!(10))
    );
    let seen = group("b", "eth1");
    assert_eq!(
        (
            &seen["drops"],
            &seen["drops_seen"],
            &seen["drops_counted_only"]
        ),
        (&json!(5), &json!(5), &json!(0))
    );
    let unknown = group("b", "(unknown device)");
    assert_eq!(
        (
            &unknown["drops"],
            &unknown["drops_counted_only"],
            &unknown["maybe_among_other"],
            &unknown["rp_filter_all"]
        ),
        (&json!(10), &json!(10), &json!(5), &json!(1)),
        "{unknown}"
    );
    let advice = c
        .advice
        .iter()
        .find(|a| a.subject == "netns b (4026532300)")
        .unwrap_or_else(|| panic!("{:#?}", c.advice));
    assert!(
        advice
            .action
            .contains("among eth1 1 (strict), eth2 1 (strict)")
            && !advice.action.contains("lo "),
        "{advice:?}"
    );
    assert!(advice.reason.contains("counted 15"), "{advice:?}");
    // Every group's kernel-only drops sum to the cause's.
    let only: u64 = v
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["drops_counted_only"].as_u64().unwrap())
        .sum();
    assert_eq!(only, c.counted_by_kernel_only);
}

fn arp(unresolved_discards: u64, table_fulls: u64) -> Option<ArpCacheStats> {
    Some(ArpCacheStats {
        unresolved_discards,
        table_fulls,
        ..Default::default()
    })
}

#[test]
fn neighbour_counters_are_shown_beside_netdrops_count_never_added() {
    let a = id(1);
    let mut d = diagnosis();
    let mut first = full(0.0, vec![ns(a, "lb")], 1024);
    first.arp = arp(100, 7);
    d.on_snapshot(first);
    let rec = rec_in(a, "eth1", "198.18.1.1", "198.18.1.99", 9);
    drops(&mut d, &rec, Cause::NeighQueueFull, 20, 1.0);
    let mut last = full(5.0, vec![ns(a, "lb")], 1024);
    // Other namespaces' traffic is in the global count.
    last.arp = arp(130, 7);
    d.on_snapshot(last);
    let r = report(&d, &[(Cause::NeighQueueFull, 20)]);
    assert_eq!(r.causes.len(), 1);
    let c = &r.causes[0];
    assert_eq!(
        (c.drops, c.counted_by_kernel_only, r.totals.total_drops),
        (20, 0, 20)
    );
    let v = serde_json::to_value(c).unwrap();
    assert_eq!(
        v["kernel_counter"],
        json!({
            "name": "arp_cache+ndisc_cache unresolved_discards (all namespaces)",
            "delta": 30,
            "netdrop": 20
        })
    );
    assert!(
        r.render().contains(
            "kernel: arp_cache+ndisc_cache unresolved_discards (all namespaces) +30 during the observation, netdrop 20"
        ),
        "{}",
        r.render()
    );

    // A table not read at the start has no count over the observation (not
    // everything it counted since boot).
    let mut d = diagnosis();
    d.on_snapshot(full(0.0, vec![ns(a, "lb")], 1024));
    drops(&mut d, &rec, Cause::NeighQueueFull, 20, 1.0);
    let mut last = full(5.0, vec![ns(a, "lb")], 1024);
    last.arp = arp(130, 7);
    d.on_snapshot(last);
    let r = report(&d, &[(Cause::NeighQueueFull, 20)]);
    assert!(r.causes[0].kernel_counter.is_none());
    let row = r
        .kernel_counters
        .iter()
        .find(|r| r.cause == Cause::NeighQueueFull)
        .unwrap();
    assert_eq!(row.kernel, None);
}

#[test]
fn table_fulls_are_beside_the_refused_creates() {
    let mut d = diagnosis();
    let mut first = full(0.0, vec![], 1024);
    first.arp = arp(0, 7);
    first.ndisc = arp(0, 1);
    d.on_snapshot(first);
    let rec = table_overflow();
    drops(&mut d, &rec, Cause::NeighTableOverflow, 3, 1.0);
    let mut last = full(5.0, vec![], 1024);
    last.arp = arp(0, 19);
    last.ndisc = arp(0, 2);
    d.on_snapshot(last);
    let mut s = summary_of(&d, &[(Cause::NeighTableOverflow, 3)]);
    s.neigh_create_failures = 12;
    let r = d.report(&s, &Session::default(), Hooks::default());
    let k = r.causes[0].kernel_counter.as_ref().unwrap();
    assert_eq!(
        (k.name.as_str(), k.delta, k.netdrop),
        ("arp_cache+ndisc_cache table_fulls (all namespaces)", 13, 12)
    );
    assert_eq!(r.totals.total_drops, 3);
}

#[test]
fn a_group_of_no_listener_shows_no_queue() {
    let mut d = Diagnosis::default();
    d.on_snapshot(snap(0.0, 0, 0));
    d.on_snapshot(snap(1.0, 4, 0));
    let text = report(&d, &[]).render();
    let line = text
        .lines()
        .find(|l| l.contains("no listener full"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        !line.contains('?') && !line.contains("closed") && !line.contains("accept queue"),
        "{line}"
    );
    assert!(line.ends_with("net.core.somaxconn 4096, 4 drops"), "{line}");
}
