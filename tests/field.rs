//! Field truth: what netdrop says about an incident holds in the conditions of a
//! real node, not only in the one-incident-per-run shape of drops.rs.
//!
//! - several incidents in ONE session, each in namespaces deleted before the
//!   next (the kernel reuses their inode numbers): every drop line and group
//!   names the namespace that made it (`netns_name`, `netns`, `netns_cookie`);
//! - hundreds of short-lived namespaces: every drop names its own;
//! - a knob changed mid-session: the groups show the values in force when the
//!   drops happened, and the change (`changes`) with drops before and none after;
//! - SYNs refused by a full accept queue with `tcp_syncookies` at its default:
//!   the total (hooks + kernel-only) matches the kernel's ListenOverflows;
//! - a namespace deleted before netdrop stops: its kernel counters are not lost.
//!
//! Everywhere: summary.causes[c] == the diagnosis' drops of c ("one truth").
//!
//! Needs root; run one at a time (xtask passes `--test-threads=1`):
//!
//!     cargo build -p netdrop
//!     cargo test -p netdrop-tests --test field -- --test-threads=1

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::thread::sleep;

use serde_json::{Value, json};

use netdrop_tests::accept::AcceptOverflow;
use netdrop_tests::field::{
    ACCEPT_TOLERANCE_PCT, EVENTS_UNLIMITED, assert_accept_split, assert_gone,
    assert_identity_fields, complete_row,
};
use netdrop_tests::field::{
    Incident, NsId, SNAPSHOT_WAIT, assert_change_stopped_drops, check_lines_name_their_incident,
    group_named, group_of_kind, within_percent,
};
use netdrop_tests::neigh::{NeighQueueFull, NeighTableOverflow};
use netdrop_tests::rpfilter::RpFilter;
use netdrop_tests::{Netdrop, arp_cache, delta, lock, require_root, settle, skip_loudly};

/// The accept-queue incidents: a listener with backlog 1 that never accepts.
const BACKLOG: i32 = 1;
/// Concurrent connects of the accept-queue incidents (bounded: syn_burst caps at 64).
const CLIENTS: usize = 32;
const GC_THRESH3: &str = "net.ipv4.neigh.default.gc_thresh3";
fn print_inode_reuse(incidents: &[Incident]) {
    let mut by_inode: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for inc in incidents {
        for n in &inc.namespaces {
            by_inode.entry(n.inode).or_default().push(&n.name);
        }
    }
    by_inode.retain(|_, v| v.len() > 1);
    if by_inode.is_empty() {
        eprintln!("inode reuse: none between the incidents' namespaces this time");
    } else {
        eprintln!("inode reuse between incidents: {by_inode:?}");
    }
}

/// What the neighbour-table incident of the one-session test did.
struct TableIncident {
    thresh3: u64,
    restored_to: u64,
    fulls: u64,
}

struct QueueIncident {
    ns: NsId,
    target: Ipv4Addr,
    unres_qlen_bytes: i64,
    discards: u64,
}

struct AcceptIncident {
    ns: NsId,
    overflows: u64,
    somaxconn: u64,
}

struct RpIncident {
    ns: NsId,
    refused: u64,
}

/// One watch session, four incidents back to back, each in namespaces made for
/// it and deleted before the next: a full neighbour table, a full unresolved
/// queue, a full accept queue (tcp_syncookies at its default), strict
/// rp_filter. Each incident's namespaces live one snapshot interval after its
/// drops (as an incident would), then go.
#[test]
fn several_incidents_one_session_on_kernel_defaults() {
    const TEST: &str = "several_incidents_one_session_on_kernel_defaults";
    let _serial = lock();
    if !require_root(TEST) {
        return;
    }
    let nd = Netdrop::start(EVENTS_UNLIMITED).expect("starting netdrop");
    let mut incidents = Vec::new();

    // 1. The neighbour table overflows (gc_thresh* lowered for one snapshot).
    let table = {
        let sc = NeighTableOverflow::setup().expect("setup table");
        incidents.push(
            Incident::new("neigh_table_overflow")
                .ns(&sc.a, &[NeighTableOverflow::DEV_A])
                .and_then(|i| i.ns(&sc.b, &[NeighTableOverflow::DEV_B]))
                .expect("namespace identity")
                .addrs(&["198.18.2."]),
        );
        let before = arp_cache().unwrap();
        let (run, guards) = sc.generate_held().expect("table traffic");
        let restored_to: u64 = guards[2].saved().parse().expect("saved gc_thresh3");
        settle();
        sleep(SNAPSHOT_WAIT);
        for g in guards.into_iter().rev() {
            g.restore().expect("restoring gc_thresh");
        }
        let fulls = delta(&before, &arp_cache().unwrap(), "table_fulls");
        eprintln!(
            "table incident: gc_thresh3 {} (then back to {restored_to}), table_fulls +{fulls}",
            run.thresh3
        );
        assert!(fulls > 0, "no table overflow provoked: {run:?}");
        TableIncident {
            thresh3: run.thresh3,
            restored_to,
            fulls,
        }
    };

    // 2. The unresolved-neighbour queue overflows.
    let queue = {
        let sc = NeighQueueFull::setup().expect("setup queue");
        incidents.push(
            Incident::new("neigh_queue_full")
                .ns(&sc.a, &[NeighQueueFull::DEV_A])
                .and_then(|i| i.ns(&sc.b, &[NeighQueueFull::DEV_B]))
                .expect("namespace identity")
                .addrs(&["198.18.1."]),
        );
        let key = format!("net.ipv4.neigh.{}.unres_qlen_bytes", NeighQueueFull::DEV_A);
        let unres_qlen_bytes: i64 = sc.a.read_sysctl(&key).unwrap().parse().unwrap();
        let before = arp_cache().unwrap();
        sc.generate().expect("queue traffic");
        settle();
        sleep(SNAPSHOT_WAIT);
        let discards = delta(&before, &arp_cache().unwrap(), "unresolved_discards");
        eprintln!("queue incident: unresolved_discards +{discards}");
        assert_eq!(
            discards,
            NeighQueueFull::EXPECTED_DROPS,
            "unresolved_discards"
        );
        QueueIncident {
            ns: NsId::of(&sc.a).unwrap(),
            target: sc.target,
            unres_qlen_bytes,
            discards,
        }
    };

    // 3. An accept queue overflows; tcp_syncookies stays at the kernel's default.
    let accept = {
        let sc = AcceptOverflow::setup().expect("setup accept");
        let syncookies = sc.s.read_sysctl("net.ipv4.tcp_syncookies").unwrap();
        if syncookies != "1" {
            skip_loudly(&format!(
                "{TEST} (accept-queue incident): tcp_syncookies is {syncookies} in a new \
                 namespace, not the default 1; the incident was not run"
            ));
            None
        } else {
            incidents.push(
                Incident::new("accept_queue_full")
                    .ns(&sc.s, &[AcceptOverflow::DEV_S])
                    .and_then(|i| i.ns(&sc.c, &[AcceptOverflow::DEV_C]))
                    .expect("namespace identity")
                    .addrs(&["198.18.3."]),
            );
            let somaxconn: u64 =
                sc.s.read_sysctl("net.core.somaxconn")
                    .unwrap()
                    .parse()
                    .unwrap();
            let before = sc.s.netstat().unwrap();
            let listener = sc.syn_burst(BACKLOG, CLIENTS).expect("accept traffic");
            settle();
            sleep(SNAPSHOT_WAIT);
            let overflows = delta(&before, &sc.s.netstat().unwrap(), "TcpExt:ListenOverflows");
            drop(listener);
            eprintln!("accept incident: ListenOverflows +{overflows} (syncookies 1)");
            assert!(overflows > 0, "no accept queue overflow provoked");
            Some(AcceptIncident {
                ns: NsId::of(&sc.s).unwrap(),
                overflows,
                somaxconn,
            })
        }
    };

    // 4. Strict rp_filter.
    let rp = {
        let sc = RpFilter::setup().expect("setup rp_filter");
        incidents.push(
            Incident::new("rp_filter")
                .ns(&sc.a, &[RpFilter::DEV_A])
                .and_then(|i| i.ns(&sc.b, &[RpFilter::DEV_B]))
                .expect("namespace identity")
                .addrs(&["198.18.4.", "198.19.9."]),
        );
        let before = sc.b.netstat().unwrap();
        sc.generate().expect("rp_filter traffic");
        settle();
        sleep(SNAPSHOT_WAIT);
        let refused = delta(
            &before,
            &sc.b.netstat().unwrap(),
            "TcpExt:IPReversePathFilter",
        );
        eprintln!("rp_filter incident: IPReversePathFilter +{refused}");
        assert_eq!(refused, RpFilter::SENDS as u64, "B's IPReversePathFilter");
        RpIncident {
            ns: NsId::of(&sc.b).unwrap(),
            refused,
        }
    };
    // Every incident's namespaces are gone; let netdrop take a snapshot without them.
    sleep(SNAPSHOT_WAIT);
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();
    print_inode_reuse(&incidents);

    assert_eq!(
        out.lost_events(),
        0,
        "the ring buffer lost events: drop lines cannot be checked one by one"
    );
    assert_identity_fields(&out);
    let drops = out.drops();
    let per = check_lines_name_their_incident(&drops, &incidents);
    let lines_of = |label: &str, cause: &str| -> Vec<&Value> {
        let i = incidents.iter().position(|inc| inc.label == label).unwrap();
        per[i]
            .iter()
            .copied()
            .filter(|l| l["cause"] == cause)
            .collect()
    };
    out.assert_one_truth();

    // The table: global, so no namespace; the thresholds in force at the drops.
    let table_lines = lines_of("neigh_table_overflow", "neigh_table_overflow");
    assert!(
        !table_lines.is_empty(),
        "no neigh_table_overflow line from the table incident"
    );
    // table_fulls counts refused creates (neigh:neigh_create with created=0);
    // a refusal drops at most one packet (NEIGH_CREATEFAIL), some none (an
    // incoming ARP that would have made an entry).
    assert_eq!(
        out.neigh_create_failures(),
        table.fulls,
        "refused creates = table_fulls"
    );
    assert!(
        (1..=table.fulls).contains(&out.cause("neigh_table_overflow")),
        "causes.neigh_table_overflow {} within 1..=table_fulls {}",
        out.cause("neigh_table_overflow"),
        table.fulls
    );
    let c = out
        .diagnosed("neigh_table_overflow")
        .expect("neigh_table_overflow diagnosed");
    let g = group_of_kind(c, "table");
    eprintln!("table group: {g}");
    assert_eq!(
        g["gc_thresh"],
        json!([table.thresh3, table.thresh3, table.thresh3]),
        "gc_thresh1/2/3 in force at the drops, not the restored ones: {g}"
    );
    assert_eq!(g["refused_creates"], json!(table.fulls), "{g}");
    assert!(
        g["peak"].as_u64().unwrap_or(0) >= table.thresh3,
        "peak reached gc_thresh3: {g}"
    );
    assert_change_stopped_drops(g, &[GC_THRESH3], table.thresh3, table.restored_to);

    // The unresolved queue: its neighbour, device, namespace and unres_qlen_bytes.
    let queue_lines = lines_of("neigh_queue_full", "neigh_queue_full");
    assert_eq!(
        queue_lines.len() as u64,
        queue.discards,
        "one line per evicted datagram"
    );
    for l in &queue_lines {
        queue.ns.assert_named_by(l, "neigh_queue_full line");
    }
    assert_eq!(out.cause("neigh_queue_full"), queue.discards);
    let c = out
        .diagnosed("neigh_queue_full")
        .expect("neigh_queue_full diagnosed");
    let g = group_named(c, "neighbour", &queue.ns.name);
    eprintln!("neighbour group: {g}");
    queue.ns.assert_named_by(g, "neighbour group");
    assert_eq!(g["neighbour"], json!(queue.target.to_string()), "{g}");
    assert_eq!(g["dev"], json!(NeighQueueFull::DEV_A), "{g}");
    assert_eq!(g["unres_qlen_bytes"], json!(queue.unres_qlen_bytes), "{g}");
    assert!(
        matches!(g["state"].as_str(), Some("INCOMPLETE") | Some("FAILED")),
        "nobody answers ARP: {g}"
    );
    assert_gone(g, true);

    // The accept queue: total within 10 % of ListenOverflows, its listener.
    if let Some(acc) = &accept {
        let (total, _, _) = assert_accept_split(&out);
        eprintln!(
            "accept_queue_full: netdrop {total}, kernel ListenOverflows {}",
            acc.overflows
        );
        assert!(
            within_percent(total, acc.overflows, ACCEPT_TOLERANCE_PCT),
            "accept_queue_full {total} is not within {ACCEPT_TOLERANCE_PCT} % of the namespace's \
             ListenOverflows {}",
            acc.overflows
        );
        for l in lines_of("accept_queue_full", "accept_queue_full") {
            acc.ns.assert_named_by(l, "accept_queue_full line");
        }
        let c = out
            .diagnosed("accept_queue_full")
            .expect("accept_queue_full diagnosed");
        let g = group_named(c, "listener", &acc.ns.name);
        eprintln!("listener group: {g}");
        acc.ns.assert_named_by(g, "listener group");
        assert_eq!(
            g["listener"],
            json!(format!(
                "{}:{}",
                AcceptOverflow::SERVER,
                AcceptOverflow::PORT
            )),
            "{g}"
        );
        assert_eq!(g["limit"], json!(BACKLOG), "backlog in force: {g}");
        assert_eq!(g["somaxconn"], json!(acc.somaxconn), "{g}");
        assert!(
            g["peak_queue"].as_u64().unwrap_or(0) >= BACKLOG as u64,
            "the queue was full: {g}"
        );
        assert_gone(g, true);
        let row = complete_row(&out, "TcpExt:ListenOverflows");
        assert_eq!(
            row["kernel"],
            json!(acc.overflows),
            "ListenOverflows row (namespace deleted before netdrop stopped): {row}"
        );
    }

    // rp_filter: its device, namespace and values; the counter row survives the namespace.
    let rp_lines = lines_of("rp_filter", "rp_filter");
    assert_eq!(rp_lines.len() as u64, rp.refused, "one line per drop");
    for l in &rp_lines {
        rp.ns.assert_named_by(l, "rp_filter line");
    }
    assert_eq!(out.cause("rp_filter"), rp.refused);
    let c = out.diagnosed("rp_filter").expect("rp_filter diagnosed");
    let g = group_named(c, "device", &rp.ns.name);
    eprintln!("device group: {g}");
    rp.ns.assert_named_by(g, "device group");
    assert_eq!(g["dev"], json!(RpFilter::DEV_B), "{g}");
    assert_eq!(
        (&g["rp_filter_all"], &g["rp_filter_dev"], &g["effective"]),
        (&json!(1), &json!(1), &json!(1)),
        "strict on all and on the device: {g}"
    );
    assert_gone(g, true);
    let row = complete_row(&out, "TcpExt:IPReversePathFilter");
    assert_eq!(
        (&row["kernel"], &row["netdrop_seen"]),
        (&json!(rp.refused), &json!(rp.refused)),
        "IPReversePathFilter: kernel = netdrop although the namespace was deleted first: {row}"
    );
}

/// netdrop first; then a namespace is made, drops with strict rp_filter, and is
/// deleted; then netdrop stops. Its IPReversePathFilter is not lost.
#[test]
fn short_lived_namespace_counters_are_not_zero() {
    const TEST: &str = "short_lived_namespace_counters_are_not_zero";
    let _serial = lock();
    if !require_root(TEST) {
        return;
    }
    let nd = Netdrop::start(EVENTS_UNLIMITED).expect("starting netdrop");
    let (refused, b) = {
        let sc = RpFilter::setup().expect("setup");
        let b = NsId::of(&sc.b).unwrap();
        let before = sc.b.netstat().unwrap();
        sc.generate().expect("traffic");
        // Less than a snapshot interval: netdrop has to read the namespace because
        // of its drops, not on its periodic round.
        settle();
        let refused = delta(
            &before,
            &sc.b.netstat().unwrap(),
            "TcpExt:IPReversePathFilter",
        );
        (refused, b)
        // sc dropped: both namespaces deleted here.
    };
    eprintln!(
        "short-lived namespace {} (inode {}): IPReversePathFilter +{refused}, deleted",
        b.name, b.inode
    );
    sleep(SNAPSHOT_WAIT);
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();
    assert_eq!(
        refused,
        RpFilter::SENDS as u64,
        "IPReversePathFilter (test precondition)"
    );

    let row = complete_row(&out, "TcpExt:IPReversePathFilter");
    assert_eq!(
        row["kernel"],
        json!(refused),
        "the kernel counter row of the deleted namespace must be what the test read before \
         deleting it, not 0: {row}"
    );
    assert_eq!(row["netdrop_seen"], json!(refused), "{row}");
    assert_eq!(out.cause("rp_filter"), refused);
    out.assert_one_truth();
    let c = out.diagnosed("rp_filter").expect("rp_filter diagnosed");
    let g = group_named(c, "device", &b.name);
    b.assert_named_by(g, "device group");
    assert_gone(g, true);
}
