//! A knob changed mid-session (an operator tries a fix): the groups show the
//! values in force when the drops happened, the change with the drops before
//! and after it, and advice that says the change stopped the drops. Needs
//! root; run one at a time.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::thread::sleep;

use serde_json::json;

use netdrop_tests::field::{
    CHANGE_WAIT, NsId, SNAPSHOT_WAIT, advice, assert_change_stopped_drops, changes_of, group_named,
    group_of_kind,
};
use netdrop_tests::field::{EVENTS_UNLIMITED, assert_gone, unix_now};
use netdrop_tests::neigh::{self, NeighTableOverflow};
use netdrop_tests::rpfilter::RpFilter;
use netdrop_tests::traffic::udp_send_each;
use netdrop_tests::{Netdrop, arp_cache, delta, lock, require_root, settle, skip_loudly, sysctl};

const GC_THRESH3: &str = "net.ipv4.neigh.default.gc_thresh3";
const RP_ALL: &str = "net.ipv4.conf.all.rp_filter";

/// gc_thresh3 lowered: the table overflows; raised back mid-session: no more
/// drops. The table group shows the low value (in force at the drops) and the
/// change. Then rp_filter strict → 0 mid-session, the same for the device.
#[test]
fn knob_changed_mid_session_shows_values_in_force() {
    const TEST: &str = "knob_changed_mid_session_shows_values_in_force";
    let _serial = lock();
    if !require_root(TEST) {
        return;
    }
    knob_change_gc_thresh3(TEST);
    knob_change_rp_filter();
}

fn knob_change_gc_thresh3(test: &str) {
    let sc = NeighTableOverflow::setup().expect("setup");
    let machine: u64 = sysctl::read(GC_THRESH3).unwrap().parse().unwrap();
    let entries = arp_cache().unwrap()["entries"];
    let room_needed = entries + 3 * u64::from(NeighTableOverflow::TARGETS) + 64;
    if machine < room_needed {
        skip_loudly(&format!(
            "{test} (gc_thresh3 part): the machine's gc_thresh3 {machine} leaves no room for the \
             retry ({entries} entries in the ARP table); not run"
        ));
        return;
    }
    let nd = Netdrop::start(EVENTS_UNLIMITED).expect("starting netdrop");
    let before = arp_cache().unwrap();
    // gc_thresh1/2/3 low; the drops happen; one snapshot sees the low values.
    let (run, guards) = sc.generate_held().expect("traffic");
    settle();
    sleep(SNAPSHOT_WAIT);
    let mid = arp_cache().unwrap();
    let fulls = delta(&before, &mid, "table_fulls");
    // Raised back to the machine's value (gc_thresh3 last restored is first here).
    for g in guards.into_iter().rev() {
        g.restore().expect("restoring gc_thresh");
    }
    let changed_at = unix_now();
    sleep(CHANGE_WAIT);
    // Try again, towards 40 other unresolvable neighbours: the table has room now.
    let retry: Vec<SocketAddrV4> = (0..NeighTableOverflow::TARGETS)
        .map(|i| SocketAddrV4::new(Ipv4Addr::new(198, 18, 2, 150 + i), neigh::PORT))
        .collect();
    udp_send_each(&sc.a, Some(NeighTableOverflow::SRC), &retry).expect("retry traffic");
    settle();
    sleep(SNAPSHOT_WAIT);
    let after = arp_cache().unwrap();
    let fulls_after = delta(&mid, &after, "table_fulls");
    let out = nd.stop().expect("stopping netdrop");
    drop(sc);
    out.assert_clean_exit();
    eprintln!(
        "gc_thresh3 {} → {machine} at {changed_at:.1}: table_fulls +{fulls} before, +{fulls_after} after",
        run.thresh3
    );
    assert!(fulls > 0, "no table overflow provoked: {run:?}");
    assert_eq!(
        fulls_after, 0,
        "the kernel still refused creates after gc_thresh3 = {machine} (test precondition)"
    );
    out.assert_one_truth();
    assert_eq!(out.cause("neigh_table_overflow"), fulls);

    let c = out
        .diagnosed("neigh_table_overflow")
        .expect("neigh_table_overflow diagnosed");
    let g = group_of_kind(c, "table");
    eprintln!("table group: {g}");
    assert_eq!(
        g["gc_thresh"][2],
        json!(run.thresh3),
        "gc_thresh3 in force at the drops (not the value at the end, {machine}): {g}"
    );
    assert_eq!(
        g["gc_thresh"],
        json!([run.thresh3, run.thresh3, run.thresh3]),
        "gc_thresh1/2 in force at the drops too: {g}"
    );
    let change = assert_change_stopped_drops(g, &[GC_THRESH3], run.thresh3, machine);
    assert_eq!(change["drops_before"], json!(fulls), "{change}");
    let at = change["at"].as_f64().unwrap();
    assert!(
        (changed_at - 1.0..=changed_at + 2.0 * SNAPSHOT_WAIT.as_secs_f64()).contains(&at),
        "the change is dated {at}, the test made it at {changed_at:.1}: {change}"
    );
    // (An earlier change, machine value → low, may be listed too: netdrop may have
    // seen the machine's value before the test lowered it.)
    assert_eq!(
        changes_of(g, GC_THRESH3).last().copied(),
        Some(change),
        "the raise is the last change of gc_thresh3: {g}"
    );

    // The advice: no "raise" (the raise was done and stopped the drops), never a
    // suggestion below the peak. Assumed wording: "stopped" in the action or reason.
    let peak = g["peak"].as_u64().unwrap_or(0);
    let adv = advice(c);
    eprintln!("table advice: {adv:#?}");
    assert!(!adv.is_empty(), "no advice for the table: {c}");
    for a in adv {
        let action = a["action"].as_str().unwrap_or_default();
        assert!(
            !action.trim_start().to_lowercase().starts_with("raise"),
            "advice still says raise although the raise stopped the drops: {a}"
        );
        for k in a["knobs"].as_array().into_iter().flatten() {
            if k["name"] == GC_THRESH3
                && let Some(s) = k["suggested"].as_u64()
            {
                assert!(
                    s >= peak,
                    "suggests gc_thresh3 = {s}, below the peak {peak}: {a}"
                );
            }
        }
    }
    assert!(
        adv.iter().any(|a| {
            let text = format!("{} {}", a["action"], a["reason"]).to_lowercase();
            text.contains("stopped")
        }),
        "the advice does not say the change stopped the drops (assumed wording: \"stopped\" in \
         action or reason): {adv:#?}"
    );
}

fn knob_change_rp_filter() {
    let sc = RpFilter::setup().expect("setup");
    let b = NsId::of(&sc.b).unwrap();
    let dev_key = format!("net.ipv4.conf.{}.rp_filter", RpFilter::DEV_B);
    let nd = Netdrop::start(EVENTS_UNLIMITED).expect("starting netdrop");
    let before = sc.b.netstat().unwrap();
    sc.generate().expect("strict traffic");
    settle();
    sleep(SNAPSHOT_WAIT);
    let mid = sc.b.netstat().unwrap();
    // Off, on "all" and on the device.
    sc.set_mode(0).expect("rp_filter 0");
    let changed_at = unix_now();
    sleep(CHANGE_WAIT);
    sc.generate().expect("traffic with rp_filter 0");
    settle();
    sleep(SNAPSHOT_WAIT);
    let after = sc.b.netstat().unwrap();
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();
    let strict = delta(&before, &mid, "TcpExt:IPReversePathFilter");
    let off = delta(&mid, &after, "TcpExt:IPReversePathFilter");
    eprintln!(
        "rp_filter 1 → 0 at {changed_at:.1}: IPReversePathFilter +{strict} before, +{off} after"
    );
    assert_eq!(strict, RpFilter::SENDS as u64, "strict mode drops");
    assert_eq!(off, 0, "rp_filter 0 accepts (test precondition)");
    out.assert_one_truth();
    assert_eq!(out.cause("rp_filter"), strict);

    let c = out.diagnosed("rp_filter").expect("rp_filter diagnosed");
    let g = group_named(c, "device", &b.name);
    eprintln!("device group: {g}");
    b.assert_named_by(g, "device group");
    assert_eq!(g["dev"], json!(RpFilter::DEV_B), "{g}");
    assert_eq!(
        (&g["rp_filter_all"], &g["rp_filter_dev"], &g["effective"]),
        (&json!(1), &json!(1), &json!(1)),
        "the values in force at the drops (strict), not the end values (0): {g}"
    );
    assert_gone(g, false);
    let change = assert_change_stopped_drops(g, &[dev_key.as_str(), RP_ALL], 1, 0);
    assert_eq!(change["drops_before"], json!(strict), "{change}");
    for k in [dev_key.as_str(), RP_ALL] {
        for ch in changes_of(g, k) {
            assert_eq!(ch["drops_after"], json!(0), "{ch}");
        }
    }
    drop(sc);
}
