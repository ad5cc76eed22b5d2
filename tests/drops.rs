//! netdrop against real kernel drops.
//!
//! Each scenario provokes one kind of drop inside namespaces the harness
//! creates, and compares netdrop's JSON report with the kernel's own counter
//! for that drop. Needs root; tests skip loudly otherwise. They share kernel
//! state: run them one at a time (xtask passes `--test-threads=1`):
//!
//!     cargo build -p netdrop
//!     cargo test -p netdrop-tests --test drops -- --test-threads=1
//!
//! NETDROP_BIN overrides the binary (default: target/debug/netdrop).
//! Start-up errors are tested in errors.rs.
//! The strict equalities assume nothing else on the machine produces the same
//! drops during a test (the four causes are rare on a quiet host).

use serde_json::{Value, json};

use netdrop_tests::accept::AcceptOverflow;
use netdrop_tests::control::Control;
use netdrop_tests::neigh::{self, NeighQueueFull, NeighTableOverflow};
use netdrop_tests::netdrop::{
    assert_drop_line_shape, netdrop_programs, programs_left_after, reason_of,
};
use netdrop_tests::netns::{list_netns, own_prefix};
use netdrop_tests::rpfilter::RpFilter;
use netdrop_tests::{
    Netdrop, NetdropOutput, Netns, REAL_CAUSES, arp_cache, delta, lock, require_root, settle,
};

const ETH_P_IP: u16 = 0x0800;
const AF_INET: u32 = 2;

/// Asserts the drop lines of `cause`: at least one, one per counted drop when
/// no event was lost, the contract's field types, and the given field values.
fn assert_cause_lines(out: &NetdropOutput, cause: &str, fields: &[(&str, Value)]) {
    let lines = out.drops_with_cause(cause);
    assert!(
        !lines.is_empty(),
        "no drop line with cause {cause}; summary: {}",
        out.summary()
    );
    if out.lost_events() == 0 {
        assert_eq!(
            lines.len() as u64,
            out.cause(cause),
            "one drop line per {cause} drop"
        );
    }
    for line in lines {
        assert_drop_line_shape(line);
        for (key, want) in fields {
            if *key == "reason" {
                assert_eq!(reason_of(line), want, "field {key} of {line}");
                continue;
            }
            assert_eq!(&line[*key], want, "field {key} of {line}");
        }
    }
}

#[test]
fn neigh_queue_full() {
    let _serial = lock();
    if !require_root("neigh_queue_full") {
        return;
    }
    let sc = NeighQueueFull::setup().expect("setup");
    let nd = Netdrop::start(&[]).expect("starting netdrop");
    let before = arp_cache().unwrap();
    let sent = sc.generate().expect("traffic");
    settle();
    let after = arp_cache().unwrap();
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();

    assert_eq!(sent, NeighQueueFull::SENDS, "datagrams sent");
    // 16 datagrams into a queue that holds one: 15 evictions.
    let kernel = delta(&before, &after, "unresolved_discards");
    assert_eq!(
        kernel,
        NeighQueueFull::EXPECTED_DROPS,
        "arp_cache unresolved_discards"
    );
    assert_eq!(
        out.reason("NEIGH_QUEUEFULL"),
        kernel,
        "reasons.NEIGH_QUEUEFULL"
    );
    assert_eq!(
        out.cause("neigh_queue_full"),
        kernel,
        "causes.neigh_queue_full"
    );
    let dev = NeighQueueFull::DEV_A;
    assert_cause_lines(
        &out,
        "neigh_queue_full",
        &[
            ("reason", json!("NEIGH_QUEUEFULL")),
            ("netns", json!(sc.a.inode())),
            ("dev", json!(dev)),
            ("ifindex", json!(sc.a.ifindex(dev).unwrap())),
            ("protocol", json!(ETH_P_IP)),
            ("saddr", json!(NeighQueueFull::SRC.to_string())),
            ("daddr", json!(sc.target.to_string())),
            ("l4", json!("udp")),
            ("dport", json!(neigh::PORT)),
        ],
    );
}

#[test]
fn neigh_table_overflow() {
    let _serial = lock();
    if !require_root("neigh_table_overflow") {
        return;
    }
    let sc = NeighTableOverflow::setup().expect("setup");
    let nd = Netdrop::start(&[]).expect("starting netdrop");
    let before = arp_cache().unwrap();
    // Lowers gc_thresh1/2/3 only for the burst (guards restore them, also on panic).
    let run = sc.generate().expect("traffic");
    settle();
    let after = arp_cache().unwrap();
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();

    // Every datagram went out or was refused: 5.10 returns the failed
    // create's EINVAL to sendto, newer kernels do not.
    assert!(run.sent <= sc.targets.len(), "datagrams sent: {run:?}");
    let fulls = delta(&before, &after, "table_fulls");
    assert!(fulls > 0, "no table overflow provoked: {run:?}");
    assert!(
        fulls <= sc.targets.len() as u64,
        "{fulls} table_fulls for {} datagrams: {run:?}",
        sc.targets.len()
    );
    // Every failed allocation counts table_fulls once and fires neigh_create
    // with created = 0. Here only A's output path creates entries, and
    // ip_finish_output2 frees the packet with NEIGH_CREATEFAIL each time, so
    // all four are equal (verified with bpftrace). In general a failed create
    // on ARP input (neigh_event_ns) counts table_fulls and neigh_create
    // without any packet drop, so NEIGH_CREATEFAIL <= table_fulls.
    assert_eq!(
        out.reason("NEIGH_CREATEFAIL"),
        fulls,
        "reasons.NEIGH_CREATEFAIL"
    );
    assert_eq!(
        out.cause("neigh_table_overflow"),
        fulls,
        "causes.neigh_table_overflow"
    );
    assert_eq!(
        out.neigh_create_failures(),
        fulls,
        "summary.neigh_create_failures"
    );

    let dev = NeighTableOverflow::DEV_A;
    let targets: Vec<String> = sc.targets.iter().map(|t| t.to_string()).collect();
    let failed = out.neigh_create_failed();
    assert!(!failed.is_empty(), "no neigh_create_failed line");
    for line in &failed {
        assert_eq!(line["cause"], "neigh_table_overflow", "{line}");
        assert_eq!(line["dev"], dev, "{line}");
        assert_eq!(line["family"], json!(AF_INET), "{line}");
        assert!(line["ts"].is_number(), "{line}");
        let entries = line["entries"]
            .as_i64()
            .unwrap_or_else(|| panic!("entries: {line}"));
        assert!(
            entries >= run.thresh3 as i64,
            "entries below gc_thresh3 {}: {line}",
            run.thresh3
        );
        let addr = line["addr"].as_str().unwrap_or_default();
        assert!(
            targets.iter().any(|t| t == addr),
            "addr not a target: {line}"
        );
    }
    assert_cause_lines(
        &out,
        "neigh_table_overflow",
        &[
            ("reason", json!("NEIGH_CREATEFAIL")),
            ("netns", json!(sc.a.inode())),
            ("dev", json!(dev)),
            ("saddr", json!(NeighTableOverflow::SRC.to_string())),
            ("l4", json!("udp")),
            ("dport", json!(neigh::PORT)),
        ],
    );
    for line in out.drops_with_cause("neigh_table_overflow") {
        let daddr = line["daddr"].as_str().unwrap_or_default();
        assert!(
            targets.iter().any(|t| t == daddr),
            "daddr not a target: {line}"
        );
    }
}

#[test]
fn accept_queue_full() {
    let _serial = lock();
    if !require_root("accept_queue_full") {
        return;
    }
    let sc = AcceptOverflow::setup().expect("setup");
    let nd = Netdrop::start(&[]).expect("starting netdrop");
    let before = sc.s.netstat().unwrap();
    // Ends with the clients aborted (RST): no segment is in flight after it.
    let run = sc.generate().expect("traffic");
    settle();
    let after = sc.s.netstat().unwrap();
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();

    // SYNs are meant never to meet a full queue here (see AcceptOverflow), so
    // the ListenOverflows increments are data segments freed with
    // TCP_LISTEN_OVERFLOW (the odd SYN that does is counted apart, below).
    let overflows = delta(&before, &after, "TcpExt:ListenOverflows");
    assert!(overflows > 0, "no accept queue overflow provoked: {run:?}");
    assert!(
        overflows >= (run.clients - run.accepted) as u64,
        "each refused client overflows at least once: {overflows}, {run:?}"
    );
    // Kernels before TCP_LISTEN_OVERFLOW (6.1, 5.10) free these ACKs in
    // tcp_v4_rcv without a reason: ListenOverflows says how many of those
    // unclassified drops were overflows (counter fusion, `from_other`).
    let by_reason = out.reason("TCP_LISTEN_OVERFLOW");
    let by_fusion = out.summary()["from_other"]["accept_queue_full"]
        .as_u64()
        .unwrap_or(0);
    // A SYN may still meet the full queue now and then: refused in
    // tcp_conn_request and freed by no one, it is counted by the hook there
    // (accept_syn_drops) or, where that function cannot be hooked (this CI
    // host), only by ListenOverflows (kernel-only).
    let syns = out.summary()["accept_syn_drops"].as_u64().unwrap_or(0)
        + out.kernel_only("accept_queue_full");
    assert_eq!(
        by_reason + by_fusion + syns,
        overflows,
        "reasons ({by_reason}) + from_other ({by_fusion}) + refused SYNs ({syns})"
    );
    assert_eq!(
        out.cause("accept_queue_full"),
        overflows,
        "causes.accept_queue_full"
    );
    out.assert_one_truth();
    if by_fusion > 0 {
        eprintln!(
            "accept_queue_full: this kernel gives refused ACKs no reason; {by_fusion} classified by ListenOverflows"
        );
        assert_eq!(by_reason, 0, "a kernel gives the reason or not");
        return;
    }
    assert_cause_lines(
        &out,
        "accept_queue_full",
        &[
            ("reason", json!("TCP_LISTEN_OVERFLOW")),
            ("netns", json!(sc.s.inode())),
            ("dev", json!(AcceptOverflow::DEV_S)),
            ("daddr", json!(AcceptOverflow::SERVER.to_string())),
            ("l4", json!("tcp")),
            ("dport", json!(AcceptOverflow::PORT)),
        ],
    );
    // Each drop carries the listener's accept queue at that moment: full (the
    // backlog was lowered to 0 under a queue of at least one connection).
    for l in out.drops_with_cause("accept_queue_full") {
        let q = &l["accept_queue"];
        assert_eq!(q[1], json!(0), "limit = the backlog, 0: {l}");
        assert!(q[0].as_u64().unwrap() >= 1, "a full queue at the drop: {l}");
    }
}

#[test]
fn rp_filter() {
    let _serial = lock();
    if !require_root("rp_filter") {
        return;
    }
    let sc = RpFilter::setup().expect("setup");
    let nd = Netdrop::start(&[]).expect("starting netdrop");
    let before = sc.b.netstat().unwrap();
    let sent = sc.generate().expect("traffic");
    settle();
    let after = sc.b.netstat().unwrap();
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();

    assert_eq!(sent, RpFilter::SENDS, "datagrams sent");
    let kernel = delta(&before, &after, "TcpExt:IPReversePathFilter");
    assert_eq!(kernel, RpFilter::SENDS as u64, "B's IPReversePathFilter");
    assert_eq!(out.reason("IP_RPFILTER"), kernel, "reasons.IP_RPFILTER");
    assert_eq!(out.cause("rp_filter"), kernel, "causes.rp_filter");
    assert_cause_lines(
        &out,
        "rp_filter",
        &[
            ("reason", json!("IP_RPFILTER")),
            ("netns", json!(sc.b.inode())),
            ("dev", json!(RpFilter::DEV_B)),
            ("ifindex", json!(sc.b.ifindex(RpFilter::DEV_B).unwrap())),
            ("protocol", json!(ETH_P_IP)),
            ("saddr", json!(RpFilter::SPOOFED.to_string())),
            ("daddr", json!(RpFilter::DST.to_string())),
            ("l4", json!("udp")),
            ("dport", json!(RpFilter::PORT)),
        ],
    );
}

#[test]
fn control_traffic_is_not_attributed() {
    let _serial = lock();
    if !require_root("control_traffic_is_not_attributed") {
        return;
    }
    let sc = Control::setup().expect("setup");
    let nd = Netdrop::start(&[]).expect("starting netdrop");
    let run = sc.generate().expect("traffic");
    settle();
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();

    assert_eq!(run.udp_received, Control::DATAGRAMS, "{run:?}");
    assert!(run.pings_ok, "ping failed: {run:?}");
    for cause in REAL_CAUSES {
        assert_eq!(out.cause(cause), 0, "causes.{cause} after ordinary traffic");
    }
    let ours = [json!(sc.x.inode()), json!(sc.y.inode())];
    for line in out.drops() {
        let attributed = REAL_CAUSES.iter().any(|c| line["cause"] == *c);
        assert!(
            !(attributed && ours.contains(&line["netns"])),
            "misattributed: {line}"
        );
    }
}

#[test]
fn cleanup_leaves_nothing_behind() {
    let _serial = lock();
    if !require_root("cleanup_leaves_nothing_behind") {
        return;
    }
    let nd = Netdrop::start(&[]).expect("starting netdrop");
    // Proves the check below can see netdrop's programs at all.
    assert!(
        !netdrop_programs().unwrap().is_empty(),
        "no BPF program named netdrop* while it runs"
    );
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();
    assert_eq!(
        programs_left_after(std::time::Duration::from_secs(5)).unwrap(),
        Vec::<String>::new(),
        "programs left after exit"
    );

    drop(Netns::new().expect("netns"));
    assert_eq!(
        list_netns(&own_prefix()).unwrap(),
        Vec::<String>::new(),
        "namespaces left"
    );
}
