//! The accept queue with `tcp_syncookies` at its default (1): SYNs refused at a
//! full queue (no drop reason: hooks or the kernel's counters) and syncookie
//! ACKs at a full queue (NO_SOCKET at the listener) add up to the kernel's
//! ListenOverflows. Needs root; run one at a time.

use std::thread::sleep;

use serde_json::{Value, json};

use netdrop_tests::accept::AcceptOverflow;
use netdrop_tests::field::{
    ACCEPT_TOLERANCE_PCT, EVENTS_UNLIMITED, assert_accept_split, assert_gone, complete_row,
};
use netdrop_tests::field::{NsId, SNAPSHOT_WAIT, group_named, within_percent};
use netdrop_tests::{
    Counters, Netdrop, NetdropOutput, delta, lock, require_root, settle, skip_loudly,
};

/// The accept-queue incidents: a listener with backlog 1 that never accepts.
const BACKLOG: i32 = 1;
/// Concurrent connects of the accept-queue incidents (bounded: syn_burst caps at 64).
const CLIENTS: usize = 32;

/// The server and client namespaces, if the server's `tcp_syncookies` is the
/// kernel default (1); else says so loudly.
fn with_default_syncookies(test: &str) -> Option<(AcceptOverflow, NsId)> {
    let sc = AcceptOverflow::setup().expect("setup");
    let syncookies = sc.s.read_sysctl("net.ipv4.tcp_syncookies").unwrap();
    if syncookies != "1" {
        skip_loudly(&format!(
            "{test}: tcp_syncookies is {syncookies} in a new namespace, not the kernel default 1"
        ));
        return None;
    }
    let s = NsId::of(&sc.s).unwrap();
    Some((sc, s))
}

/// netdrop watching `burst` in the server's namespace: its output and the
/// server's counters before and after (the listener stays full until netdrop
/// has seen a snapshot of it).
fn observe(
    sc: &AcceptOverflow,
    burst: impl FnOnce(&AcceptOverflow) -> anyhow::Result<std::net::TcpListener>,
) -> (NetdropOutput, Counters, Counters) {
    let nd = Netdrop::start(EVENTS_UNLIMITED).expect("starting netdrop");
    let before = sc.s.netstat().unwrap();
    let listener = burst(sc).expect("traffic");
    settle();
    sleep(SNAPSHOT_WAIT);
    let after = sc.s.netstat().unwrap();
    let out = nd.stop().expect("stopping netdrop");
    drop(listener);
    out.assert_clean_exit();
    (out, before, after)
}

/// SYNs refused by a full accept queue with tcp_syncookies at its default (1):
/// netdrop's total (hooks + kernel only) is within 10 % of ListenOverflows.
#[test]
fn accept_queue_with_syncookies_default_matches_listen_overflows() {
    const TEST: &str = "accept_queue_with_syncookies_default_matches_listen_overflows";
    let _serial = lock();
    if !require_root(TEST) {
        return;
    }
    let Some((sc, s)) = with_default_syncookies(TEST) else {
        return;
    };
    let (out, before, after) = observe(&sc, |sc| sc.syn_burst(BACKLOG, CLIENTS));

    let kernel = delta(&before, &after, "TcpExt:ListenOverflows");
    for k in [
        "TcpExt:ListenOverflows",
        "TcpExt:ListenDrops",
        "TcpExt:SyncookiesSent",
        "TcpExt:SyncookiesRecv",
        "TcpExt:SyncookiesFailed",
    ] {
        if after.contains_key(k) {
            eprintln!("kernel {k}: +{}", delta(&before, &after, k));
        }
    }
    assert!(kernel >= 1, "no accept queue overflow provoked");
    let (total, _, _) = assert_accept_split(&out);
    eprintln!("accept_queue_full: netdrop {total}, kernel ListenOverflows {kernel}");
    assert!(
        within_percent(total, kernel, ACCEPT_TOLERANCE_PCT),
        "accept_queue_full {total} is not within {ACCEPT_TOLERANCE_PCT} % of ListenOverflows {kernel}"
    );
    out.assert_one_truth();
    let c = out
        .diagnosed("accept_queue_full")
        .expect("accept_queue_full diagnosed");
    let g = group_named(c, "listener", &s.name);
    eprintln!("listener group: {g}");
    s.assert_named_by(g, "listener group");
    assert_eq!(g["limit"], json!(BACKLOG), "{g}");
    assert_gone(g, false);
    complete_row(&out, "TcpExt:ListenOverflows");
}

/// Syncookies at the kernel default: the ACK completing a cookie handshake at a
/// full accept queue is freed with reason NO_SOCKET. netdrop classifies it by
/// what it hit (a listener with a full queue): accept_queue_full, seen by the
/// hooks, in the listener's namespace; the total equals ListenOverflows.
#[test]
fn syncookie_acks_at_a_full_queue_are_accept_queue_drops() {
    const TEST: &str = "syncookie_acks_at_a_full_queue_are_accept_queue_drops";
    let _serial = lock();
    if !require_root(TEST) {
        return;
    }
    let Some((sc, s)) = with_default_syncookies(TEST) else {
        return;
    };
    let (out, before, after) = observe(&sc, |sc| sc.cookie_burst(1, 40));

    let kernel = delta(&before, &after, "TcpExt:ListenOverflows");
    let cookies = delta(&before, &after, "TcpExt:SyncookiesRecv");
    eprintln!("kernel: ListenOverflows +{kernel}, SyncookiesRecv +{cookies}");
    assert!(
        cookies > 0,
        "no cookie ACK provoked (the tbf queue did not hold the ACKs)"
    );
    let cookie_acks = out.reason("NO_SOCKET(listener full)");
    assert!(
        cookie_acks > 0,
        "no NO_SOCKET drop at a full listener counted: {}",
        out.summary()
    );
    let lines: Vec<&Value> = out
        .drops()
        .into_iter()
        .filter(|l| l["reason"] == "NO_SOCKET" && l["cause"] == "accept_queue_full")
        .collect();
    assert_eq!(
        lines.len() as u64,
        cookie_acks,
        "a line per cookie ACK dropped"
    );
    for l in &lines {
        assert_eq!(
            l["netns_name"],
            json!(s.name),
            "the listener's namespace: {l}"
        );
        assert_eq!(l["dport"], json!(AcceptOverflow::PORT), "{l}");
    }
    let (total, kernel_only, seen) = assert_accept_split(&out);
    eprintln!(
        "accept_queue_full: {total} (seen {seen}, kernel only {kernel_only}); kernel {kernel}"
    );
    assert!(seen >= cookie_acks, "the cookie ACKs are seen by the hooks");
    assert!(
        within_percent(total, kernel, ACCEPT_TOLERANCE_PCT),
        "accept_queue_full {total} is not within {ACCEPT_TOLERANCE_PCT} % of ListenOverflows {kernel}"
    );
    out.assert_one_truth();
}
