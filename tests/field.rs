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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::thread::sleep;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use netdrop_tests::accept::AcceptOverflow;
use netdrop_tests::churn::{self, ChurnNs, ChurnOptions, ChurnRun};
use netdrop_tests::field::{
    CHANGE_WAIT, Incident, NsId, SNAPSHOT_WAIT, advice, assert_change_stopped_drops, changes_of,
    check_lines_name_their_incident, group_named, group_of_kind, within_percent,
};
use netdrop_tests::neigh::{self, NeighQueueFull, NeighTableOverflow};
use netdrop_tests::netdrop::assert_drop_line_shape;
use netdrop_tests::netns::{list_netns, own_prefix};
use netdrop_tests::rpfilter::RpFilter;
use netdrop_tests::traffic::udp_send_each;
use netdrop_tests::{
    Netdrop, NetdropOutput, arp_cache, delta, lock, require_root, settle, skip_loudly, sysctl,
};

/// Every drop gets its detail event (no per-second limit): drop lines can be
/// counted against the kernel.
const EVENTS_UNLIMITED: &[&str] = &["--events-per-sec", "0"];
/// The accept-queue incidents: a listener with backlog 1 that never accepts.
const BACKLOG: i32 = 1;
/// Concurrent connects of the accept-queue incidents (bounded: syn_burst caps at 64).
const CLIENTS: usize = 32;
/// How far netdrop's accept_queue_full total may be from ListenOverflows.
const ACCEPT_TOLERANCE_PCT: u64 = 10;
const GC_THRESH3: &str = "net.ipv4.neigh.default.gc_thresh3";
const RP_ALL: &str = "net.ipv4.conf.all.rp_filter";

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// The contract's drop-line fields, new ones included, on every drop line.
fn assert_identity_fields(out: &NetdropOutput) {
    for l in out.drops() {
        assert_drop_line_shape(l);
        assert!(l["netns_cookie"].is_u64(), "netns_cookie: {l}");
        assert!(
            l["netns_name"].is_string() || l["netns_name"].is_null(),
            "netns_name: {l}"
        );
    }
}

/// summary.kernel_only[accept] + seen by hooks == summary total == diagnosis drops.
fn assert_accept_split(out: &NetdropOutput) -> (u64, u64, u64) {
    let total = out.cause("accept_queue_full");
    let kernel_only = out.kernel_only("accept_queue_full");
    let (seen, counted_only) = match out.diagnosed("accept_queue_full") {
        Some(c) => (
            c["seen_by_hooks"].as_u64().expect("seen_by_hooks"),
            c["counted_by_kernel_only"]
                .as_u64()
                .expect("counted_by_kernel_only"),
        ),
        None => (0, 0),
    };
    eprintln!(
        "accept_queue_full: summary total {total} = kernel_only {kernel_only} + seen by hooks {seen} \
         (diagnosis counted_by_kernel_only {counted_only}); hook: {}",
        if out.stderr.contains("no tcp_conn_request hook") {
            "none (counter fusion)"
        } else {
            "tcp_conn_request"
        }
    );
    assert_eq!(
        kernel_only + seen,
        total,
        "summary.kernel_only.accept_queue_full + seen_by_hooks = summary.causes.accept_queue_full"
    );
    assert_eq!(
        counted_only, kernel_only,
        "diagnosis counted_by_kernel_only = summary.kernel_only.accept_queue_full"
    );
    (total, kernel_only, seen)
}

/// The kernel_counters row of `counter`, printed; its `incomplete` must be false.
fn complete_row<'a>(out: &'a NetdropOutput, counter: &str) -> &'a Value {
    let row = out.counter_row(counter).unwrap_or_else(|| {
        panic!(
            "no kernel_counters row {counter}: {:#}",
            out.diagnosis()["kernel_counters"]
        )
    });
    eprintln!("kernel_counters row: {row}");
    let incomplete = row["incomplete"]
        .as_bool()
        .unwrap_or_else(|| panic!("row without an `incomplete` bool: {row}"));
    assert!(
        !incomplete,
        "{counter}: the row says incomplete=true: netdrop lost the counters of a namespace \
         that was deleted before it stopped; the agent must read a namespace's counters when \
         its drops are seen, not only at the end: {row}"
    );
    row
}

/// `gone` of a group: whether its namespace no longer existed at the end.
fn assert_gone(g: &Value, want: bool) {
    assert_eq!(
        g["gone"],
        json!(want),
        "gone must be {want} (namespace {} at the end): {g}",
        if want { "deleted" } else { "still there" }
    );
}

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

/// ~300 namespaces created and deleted during one session (4 at a time); every
/// third sends 5 datagrams to a closed port with a source port that tags it,
/// lives 0.3 s more and goes. Every tagged drop names its namespace, and
/// namespaces that shared an inode have distinct cookies.
#[test]
fn namespace_churn_every_drop_names_its_namespace() {
    const TEST: &str = "namespace_churn_every_drop_names_its_namespace";
    let _serial = lock();
    if !require_root(TEST) {
        return;
    }
    let opts = ChurnOptions::default();
    let nd = Netdrop::start(EVENTS_UNLIMITED).expect("starting netdrop");
    let started = Instant::now();
    // On failure the run deletes every namespace it made before returning.
    let run = churn::run(&opts).expect("namespace churn");
    sleep(SNAPSHOT_WAIT);
    let out = nd.stop().expect("stopping netdrop");
    let leftovers = list_netns(&own_prefix()).unwrap();
    assert!(leftovers.is_empty(), "namespaces left: {leftovers:?}");
    out.assert_clean_exit();
    assert_identity_fields(&out);

    let senders: Vec<&ChurnNs> = run.senders().collect();
    let shared_all = ChurnRun::shared_inodes(run.namespaces.iter());
    let shared = ChurnRun::shared_inodes(senders.iter().copied());
    eprintln!(
        "churn: {} namespaces ({} senders) in {:.1?} (session {:.1?}); {} inodes held by \
         several namespaces, {} of them by several senders",
        run.namespaces.len(),
        senders.len(),
        run.elapsed,
        started.elapsed(),
        shared_all.len(),
        shared.len()
    );
    if run.cut_short {
        skip_loudly(&format!(
            "{TEST}: the churn hit its {:?} limit after {} of {} namespaces; checking those",
            opts.time_limit,
            run.namespaces.len(),
            opts.namespaces
        ));
    }
    assert!(
        senders.len() >= 20,
        "only {} senders ran: too few to say anything",
        senders.len()
    );
    for s in &senders {
        assert_eq!(s.sent, opts.datagrams, "datagrams sent by {s:?}");
        assert_eq!(
            s.no_ports, opts.datagrams as u64,
            "the kernel's Udp:NoPorts in {} (test precondition): {s:?}",
            s.name
        );
    }
    assert_eq!(
        out.lost_events(),
        0,
        "the ring buffer lost events: drop lines cannot be counted"
    );

    let by_tag: HashMap<u16, &ChurnNs> = senders.iter().map(|s| (s.sport, *s)).collect();
    let mut count: HashMap<usize, usize> = HashMap::new();
    let mut cookies: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for l in out.drops() {
        let Some(ns) = l["sport"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .and_then(|p| by_tag.get(&p))
        else {
            continue;
        };
        let ours = l["dport"] == json!(churn::PORT)
            && l["saddr"]
                .as_str()
                .is_some_and(|a| a.starts_with("198.19."));
        if !ours {
            continue;
        }
        *count.entry(ns.index).or_default() += 1;
        if l["saddr"] != json!(ns.src.to_string()) || l["daddr"] != json!(ns.dst.to_string()) {
            wrong.push(format!("tag {} of {}: addresses {l}", ns.sport, ns.name));
        }
        if l["reason"] != "NO_SOCKET" {
            wrong.push(format!("tag {} of {}: reason {l}", ns.sport, ns.name));
        }
        if l["netns_name"] != json!(ns.name) {
            wrong.push(format!(
                "tag {} dropped in {} (inode {}) names {}: {l}",
                ns.sport, ns.name, ns.inode, l["netns_name"]
            ));
        }
        if l["netns"] != json!(ns.inode) {
            wrong.push(format!(
                "tag {} of {} (inode {}): netns {}",
                ns.sport, ns.name, ns.inode, l["netns"]
            ));
        }
        match l["netns_cookie"].as_u64() {
            None => wrong.push(format!("tag {}: no netns_cookie: {l}", ns.sport)),
            Some(c) => {
                if ns.cookie.is_some_and(|k| k != c) {
                    wrong.push(format!(
                        "tag {} of {}: netns_cookie {c}, the kernel's is {:?}",
                        ns.sport, ns.name, ns.cookie
                    ));
                }
                cookies.entry(&ns.name).or_default().insert(c);
            }
        }
    }
    for s in &senders {
        let n = count.get(&s.index).copied().unwrap_or(0);
        if n != s.sent {
            wrong.push(format!(
                "{} (tag {}, inode {}): {n} drop lines for {} datagrams dropped",
                s.name, s.sport, s.inode, s.sent
            ));
        }
    }
    let total: usize = count.values().sum();
    let expected: usize = senders.iter().map(|s| s.sent).sum();
    eprintln!("tagged drop lines: {total} (expected {expected})");
    assert!(
        wrong.is_empty(),
        "{} problems; the first ones:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(total, expected, "one drop line per tagged datagram");

    // Namespaces that shared an inode: one cookie each, all different.
    if shared.is_empty() {
        skip_loudly(&format!(
            "{TEST} (cookie part): no inode was reused among the sender namespaces this run; \
             distinct cookies for one inode not checked"
        ));
    }
    for (inode, nss) in &shared {
        let mut seen = BTreeMap::new();
        for ns in nss {
            let set = &cookies[ns.name.as_str()];
            assert_eq!(set.len(), 1, "{} has several cookies: {set:?}", ns.name);
            let c = *set.iter().next().unwrap();
            if let Some(other) = seen.insert(c, &ns.name) {
                panic!(
                    "inode {inode}: {other} and {} (different namespaces) have the same \
                     netns_cookie {c}",
                    ns.name
                );
            }
        }
        eprintln!("inode {inode}: {} namespaces, cookies {seen:?}", nss.len());
    }
    out.assert_one_truth();
}

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

/// SYNs refused by a full accept queue with tcp_syncookies at its default (1):
/// netdrop's total (hooks + kernel only) is within 10 % of ListenOverflows.
#[test]
fn accept_queue_with_syncookies_default_matches_listen_overflows() {
    const TEST: &str = "accept_queue_with_syncookies_default_matches_listen_overflows";
    let _serial = lock();
    if !require_root(TEST) {
        return;
    }
    let sc = AcceptOverflow::setup().expect("setup");
    let syncookies = sc.s.read_sysctl("net.ipv4.tcp_syncookies").unwrap();
    if syncookies != "1" {
        skip_loudly(&format!(
            "{TEST}: tcp_syncookies is {syncookies} in a new namespace, not the kernel default 1"
        ));
        return;
    }
    let s = NsId::of(&sc.s).unwrap();
    let nd = Netdrop::start(EVENTS_UNLIMITED).expect("starting netdrop");
    let before = sc.s.netstat().unwrap();
    let listener = sc.syn_burst(BACKLOG, CLIENTS).expect("traffic");
    settle();
    sleep(SNAPSHOT_WAIT);
    let after = sc.s.netstat().unwrap();
    let out = nd.stop().expect("stopping netdrop");
    drop(listener);
    out.assert_clean_exit();

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
    let sc = AcceptOverflow::setup().expect("setup");
    let syncookies = sc.s.read_sysctl("net.ipv4.tcp_syncookies").unwrap();
    if syncookies != "1" {
        skip_loudly(&format!(
            "{TEST}: tcp_syncookies is {syncookies} in a new namespace, not the kernel default 1"
        ));
        return;
    }
    let s = NsId::of(&sc.s).unwrap();
    let nd = Netdrop::start(EVENTS_UNLIMITED).expect("starting netdrop");
    let before = sc.s.netstat().unwrap();
    let listener = sc.cookie_burst(1, 40).expect("traffic");
    settle();
    sleep(SNAPSHOT_WAIT);
    let after = sc.s.netstat().unwrap();
    let out = nd.stop().expect("stopping netdrop");
    drop(listener);
    out.assert_clean_exit();

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
