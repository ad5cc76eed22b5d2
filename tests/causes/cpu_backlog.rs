//! cpu_backlog (netdrop/src/causes/cpu_backlog.rs).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use netdrop_tests::netdrop::assert_drop_line_shape;
use netdrop_tests::sysctl::{self, SysctlGuard};
use netdrop_tests::traffic::{setsockopt_int, udp_socket};
use netdrop_tests::{
    Netdrop, Netns, kernel_has_reason, lock, require_root, settle, skip_loudly, veth_pair,
};
use serde_json::{Value, json};

/// `/proc/net/softnet_stat` column 2 (dropped), summed over the CPUs: the
/// kernel's count of CPU_BACKLOG drops, global.
fn softnet_dropped() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .expect("softnet_stat")
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .sum()
}

/// `ip -s -j link show dev DEV` in `ns`: stats64 rx dropped.
fn rx_dropped(ns: &Netns, dev: &str) -> u64 {
    let out = ns.ip(&["-s", "-j", "link", "show", "dev", dev]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0]["stats64"]["rx"]["dropped"]
        .as_u64()
        .unwrap_or_else(|| panic!("rx dropped in {v}"))
}

/// cpu_backlog: veth ndcba (namespace A, `gso_max_segs 1`) → ndcbb
/// (namespace B). A UDP GSO super-packet of NSEG segments is segmented in
/// software on A's transmit, and dev_hard_start_xmit hands every segment to
/// veth_xmit → netif_rx → enqueue_to_backlog with bottom halves off: the
/// backlog cannot drain in between, so with net.core.netdev_max_backlog = M
/// the first M+1 segments get in and the rest are freed with CPU_BACKLOG:
/// (NSEG − M − 1) × SENDS drops exactly (/tmp/facts §1).
///
/// The kernel's counter (softnet_stat column 2) and the knob are global.
/// netdrop watches B only (`--netns`), so its count must equal the
/// arithmetic exactly; the softnet delta, which the host's other traffic
/// may also move while netdev_max_backlog is lowered, must be at least it.
/// The device's own rx_dropped (per device: B's end of the pair is new)
/// counts exactly these drops and is the per-namespace check.
#[test]
fn cpu_backlog() {
    let _serial = lock();
    if !require_root("cpu_backlog") {
        return;
    }
    if !kernel_has_reason("CPU_BACKLOG") {
        skip_loudly("cpu_backlog: this kernel's BTF has no SKB_DROP_REASON_CPU_BACKLOG");
        return;
    }
    const TX: Ipv4Addr = Ipv4Addr::new(198, 18, 71, 1);
    const RX: Ipv4Addr = Ipv4Addr::new(198, 18, 71, 2);
    const MAXB: u64 = 5;
    const NSEG: u64 = 20;
    const SEG: usize = 1000;
    const SENDS: u64 = 10;
    const EXPECTED: u64 = (NSEG - MAXB - 1) * SENDS;

    let a = Netns::new().expect("namespace A");
    let b = Netns::new().expect("namespace B");
    veth_pair(
        &a,
        "ndcba",
        &format!("{TX}/24"),
        &b,
        "ndcbb",
        &format!("{RX}/24"),
    )
    .unwrap();
    // Software GSO on A's transmit; a static neighbour (no ARP on the wire).
    a.ip(&["link", "set", "dev", "ndcba", "gso_max_segs", "1"])
        .unwrap();
    let mac = b.mac("ndcbb").unwrap();
    a.static_neighbour("ndcba", RX, &mac).unwrap();
    // A receiver that takes every segment that gets through (no ICMP back,
    // no drop of another cause): a buffer well above what arrives.
    let rx = udp_socket(&b, Some(RX)).expect("receiver");
    setsockopt_int(&rx, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20).expect("SO_RCVBUFFORCE");
    let port = rx.local_addr().unwrap().port();
    let tx = udp_socket(&a, Some(TX)).expect("sender");
    // UDP_SEGMENT (103): the kernel cuts each datagram into SEG-byte segments.
    setsockopt_int(&tx, libc::SOL_UDP, 103, SEG as i32).expect("UDP_SEGMENT");
    let rx_dropped_before = rx_dropped(&b, "ndcbb");

    let nd = Netdrop::start(&["--netns", &b.inode().to_string()]).expect("starting netdrop");
    // Global: lowered only while netdrop watches, restored after it stopped
    // (its last read, at the stop, is the value the drops happened under).
    let guard = SysctlGuard::set("net.core.netdev_max_backlog", &MAXB.to_string()).unwrap();
    let in_force: u64 = sysctl::read("net.core.netdev_max_backlog")
        .unwrap()
        .parse()
        .unwrap();
    let soft_before = softnet_dropped();
    let payload = vec![b'x'; SEG * NSEG as usize];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    for _ in 0..SENDS {
        assert!(Instant::now() < deadline, "sending took too long");
        if tx.send_to(&payload, SocketAddrV4::new(RX, port)).is_ok() {
            sent += 1;
        }
    }
    settle();
    let soft_after = softnet_dropped();
    let out = nd.stop().expect("stopping netdrop");
    guard.restore().expect("restoring netdev_max_backlog");
    out.assert_clean_exit();
    let dev_dropped = rx_dropped(&b, "ndcbb") - rx_dropped_before;
    drop((rx, tx));

    let softnet = soft_after - soft_before;
    eprintln!(
        "cpu_backlog: expected {EXPECTED}, netdrop {}, softnet_stat dropped +{softnet}, ndcbb rx_dropped +{dev_dropped}",
        out.reason("CPU_BACKLOG")
    );
    assert_eq!(in_force, MAXB);
    assert!(
        b.read_sysctl("net.core.netdev_max_backlog").is_err(),
        "netdev_max_backlog is shown in a child namespace: the report's fallback is not what is tested"
    );
    assert_eq!(sent, SENDS, "super-packets sent");
    assert_eq!(out.reason("CPU_BACKLOG"), EXPECTED, "reasons.CPU_BACKLOG");
    assert_eq!(out.cause("cpu_backlog"), EXPECTED, "causes.cpu_backlog");
    assert_eq!(dev_dropped, EXPECTED, "ndcbb rx_dropped");
    assert!(
        softnet >= EXPECTED,
        "softnet_stat dropped +{softnet} < {EXPECTED}"
    );
    out.assert_one_truth();
    let lines = out.drops_with_cause("cpu_backlog");
    assert_eq!(lines.len() as u64, EXPECTED, "one line per drop");
    for l in &lines {
        assert_drop_line_shape(l);
        assert_eq!(l["reason"], "CPU_BACKLOG", "{l}");
        assert_eq!(l["netns"], json!(b.inode()), "{l}");
        assert_eq!(l["dev"], "ndcbb", "{l}");
        assert_eq!(l["dport"], json!(port), "{l}");
    }

    // The diagnosis: B's device as the group, the global counter beside
    // netdrop's count, the initial namespace's netdev_max_backlog (B has
    // none of its own) in the values and the advice.
    let (d, g) = out.declared_group("cpu_backlog", "softnet_stat:dropped", None, "device");
    let delta = d["kernel_counter"]["delta"].as_u64().expect("delta");
    assert!(delta >= EXPECTED, "kernel_counter.delta {delta}: {d}");
    assert_eq!(g["dev"], "ndcbb", "{g}");
    assert_eq!(g["netns"], json!(b.inode()), "{g}");
    assert_eq!(g["netns_name"], b.name(), "{g}");
    assert_eq!(g["drops"], json!(EXPECTED), "{g}");
    assert!(g["counter"].as_u64().unwrap() >= EXPECTED, "{g}");
    assert_eq!(
        g["values"]["net.core.netdev_max_backlog"],
        json!(MAXB),
        "{g}"
    );
    let details: Vec<(String, String)> = serde_json::from_value(g["details"].clone()).unwrap();
    assert!(
        details.contains(&("rx_dropped".into(), dev_dropped.to_string())),
        "{g}"
    );
    let advice = d["advice"].as_array().expect("advice");
    assert_eq!(advice.len(), 1, "{d}");
    let action = advice[0]["action"].as_str().unwrap();
    assert!(
        action.starts_with(&format!(
            "{EXPECTED} packets arrived on device ndcbb while the CPU's input backlog held net.core.netdev_max_backlog = {MAXB} packets: raise it to 4000"
        )),
        "{action}"
    );
    assert_eq!(
        advice[0]["knobs"][0],
        json!({"name": "net.core.netdev_max_backlog", "current": MAXB, "suggested": 4000}),
        "{d}"
    );
    assert!(
        advice[0]["subject"]
            .as_str()
            .unwrap()
            .contains(&format!("device ndcbb in {}", b.name())),
        "{d}"
    );
}
