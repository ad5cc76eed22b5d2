//! qdisc_drop (netdrop/src/causes/qdisc_drop.rs).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use netdrop_tests::netdrop::assert_drop_line_shape;
use netdrop_tests::traffic::{setsockopt_int, udp_socket};
use netdrop_tests::{Netdrop, Netns, delta, lock, require_root, settle, skip_loudly, veth_pair};
use serde_json::{Value, json};

use netdrop_tests::kernel_has_reason;

/// `tc -s -j qdisc show dev DEV` in `ns`: the root qdisc's entry.
fn root_qdisc(ns: &Netns, dev: &str) -> Value {
    let out = ns
        .exec_cmd(&["tc", "-s", "-j", "qdisc", "show", "dev", dev])
        .output()
        .expect("tc");
    assert!(out.status.success(), "tc: {out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("tc -j");
    v.as_array()
        .and_then(|a| a.iter().find(|q| q["root"] == true))
        .cloned()
        .unwrap_or_else(|| panic!("no root qdisc in {v}"))
}

/// qdisc_drop: veth ndqda (namespace A) with a root `tbf rate 1mbit burst
/// 1600 limit 5000` → ndqdb (namespace B); 100 datagrams of 1000 bytes sent
/// at once from A. The shaper lets the first few through and holds up to
/// 5000 bytes; what does not fit is freed in __dev_queue_xmit with
/// QDISC_DROP, in A (the qdisc's namespace), and counted in the root
/// qdisc's `dropped` (`tc -s qdisc`) and A's `Udp: SndbufErrors`
/// (/tmp/facts §2: 95 of 100 on this host).
#[test]
fn qdisc_drop() {
    let _serial = lock();
    if !require_root("qdisc_drop") {
        return;
    }
    if !kernel_has_reason("QDISC_DROP") {
        skip_loudly("qdisc_drop: this kernel's BTF has no SKB_DROP_REASON_QDISC_DROP");
        return;
    }
    const TX: Ipv4Addr = Ipv4Addr::new(198, 18, 72, 1);
    const RX: Ipv4Addr = Ipv4Addr::new(198, 18, 72, 2);
    const SENDS: u64 = 100;
    const LIMIT: u64 = 5000;

    let a = Netns::new().expect("namespace A");
    let b = Netns::new().expect("namespace B");
    veth_pair(
        &a,
        "ndqda",
        &format!("{TX}/24"),
        &b,
        "ndqdb",
        &format!("{RX}/24"),
    )
    .unwrap();
    // Static neighbours: no ARP through the shaper (nor back from B).
    let (mac_a, mac_b) = (a.mac("ndqda").unwrap(), b.mac("ndqdb").unwrap());
    a.static_neighbour("ndqda", RX, &mac_b).unwrap();
    b.static_neighbour("ndqdb", TX, &mac_a).unwrap();
    let tbf =
        format!("tc qdisc add dev ndqda root handle 1: tbf rate 1mbit burst 1600 limit {LIMIT}");
    if let Err(e) = a.sh(&tbf) {
        skip_loudly(&format!("qdisc_drop: no tbf qdisc here: {e:#}"));
        return;
    }
    let txqueuelen = {
        let out = a.ip(&["-j", "link", "show", "dev", "ndqda"]).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        v[0]["txqlen"].as_u64().expect("txqlen")
    };
    // A receiver that reads nothing but has room for all: B sends nothing back.
    let rx = udp_socket(&b, Some(RX)).expect("receiver");
    setsockopt_int(&rx, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20).expect("SO_RCVBUFFORCE");
    let port = rx.local_addr().unwrap().port();
    let tx = udp_socket(&a, Some(TX)).expect("sender");

    let nd = Netdrop::start(&["--netns", &a.inode().to_string()]).expect("starting netdrop");
    let before = (root_qdisc(&a, "ndqda"), a.snmp().unwrap());
    let payload = [b'x'; 1000];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    for _ in 0..SENDS {
        assert!(Instant::now() < deadline, "sending took too long");
        // Without IP_RECVERR the drop is hidden: sendto succeeds.
        if tx.send_to(&payload, SocketAddrV4::new(RX, port)).is_ok() {
            sent += 1;
        }
    }
    settle();
    let after = (root_qdisc(&a, "ndqda"), a.snmp().unwrap());
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();
    drop((rx, tx));

    let dropped = |q: &Value| q["drops"].as_u64().unwrap_or_else(|| panic!("drops: {q}"));
    let kernel = dropped(&after.0) - dropped(&before.0);
    let sndbuf = delta(&before.1, &after.1, "Udp:SndbufErrors");
    eprintln!(
        "qdisc_drop: tc dropped +{kernel}, Udp:SndbufErrors +{sndbuf}, netdrop {}",
        out.reason("QDISC_DROP")
    );
    assert_eq!(after.0["kind"], "tbf", "{}", after.0);
    assert_eq!(sent, SENDS, "datagrams sent");
    assert!(kernel > 0, "the shaper dropped nothing");
    assert!(kernel < SENDS, "the shaper let none through: {kernel}");
    assert_eq!(sndbuf, kernel, "Udp:SndbufErrors");
    assert_eq!(out.reason("QDISC_DROP"), kernel, "reasons.QDISC_DROP");
    assert_eq!(out.cause("qdisc_drop"), kernel, "causes.qdisc_drop");
    out.assert_one_truth();
    let lines = out.drops_with_cause("qdisc_drop");
    assert_eq!(lines.len() as u64, kernel, "one line per drop");
    for l in &lines {
        assert_drop_line_shape(l);
        assert_eq!(l["reason"], "QDISC_DROP", "{l}");
        assert_eq!(l["netns"], json!(a.inode()), "{l}");
        assert_eq!(l["dev"], "ndqda", "{l}");
        assert_eq!(l["dport"], json!(port), "{l}");
    }

    // The diagnosis: A's device as the group, the root qdisc's dropped
    // beside netdrop's count, its kind, limit and txqueuelen, and the advice
    // naming them.
    let (d, g) = out.declared_group("qdisc_drop", "qdisc:dropped", Some(kernel), "device");
    assert_eq!(g["dev"], "ndqda", "{g}");
    assert_eq!(g["netns"], json!(a.inode()), "{g}");
    assert_eq!(g["netns_name"], a.name(), "{g}");
    assert_eq!(g["drops"], json!(kernel), "{g}");
    assert_eq!(g["counter"], json!(kernel), "{g}");
    let details: Vec<(String, String)> = serde_json::from_value(g["details"].clone()).unwrap();
    let detail = |k: &str| {
        details
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{k} in {g}"))
    };
    assert_eq!(detail("qdisc"), "tbf", "{g}");
    assert_eq!(detail("limit"), format!("{LIMIT}b"), "{g}");
    assert_eq!(detail("txqueuelen"), txqueuelen.to_string(), "{g}");
    assert_eq!(detail("dropped"), dropped(&after.0).to_string(), "{g}");
    let advice = d["advice"].as_array().expect("advice");
    assert_eq!(advice.len(), 1, "{d}");
    let action = advice[0]["action"].as_str().unwrap();
    assert!(
        action.starts_with(&format!(
            "{kernel} packets were refused by the tbf qdisc of device ndqda (limit {LIMIT} bytes, txqueuelen {txqueuelen}): the tbf shaper"
        )),
        "{action}"
    );
    assert!(
        action.contains(&format!("limit from {LIMIT} to {} bytes", LIMIT * 4)),
        "{action}"
    );
    assert_eq!(
        advice[0]["knobs"][0],
        json!({"name": "qdisc limit", "current": LIMIT, "suggested": LIMIT * 4}),
        "{d}"
    );
    assert_eq!(advice[0]["knobs"][1]["current"], json!(txqueuelen), "{d}");
    assert!(
        advice[0]["subject"]
            .as_str()
            .unwrap()
            .contains(&format!("device ndqda in {}", a.name())),
        "{d}"
    );
}
