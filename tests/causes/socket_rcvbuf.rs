//! socket_rcvbuf (netdrop/src/causes/socket_rcvbuf.rs).

use std::net::{Ipv4Addr, SocketAddrV4};

use netdrop_tests::netdrop::assert_drop_line_shape;
use netdrop_tests::traffic::{setsockopt_int, udp_send, udp_socket};
use netdrop_tests::{Netdrop, Netns, delta, lock, require_root, settle};

/// socket_rcvbuf: a UDP receiver that never reads, with the smallest receive
/// buffer the kernel allows; 200 datagrams of 1 byte to it over the
/// namespace's loopback. What does not fit is freed with SOCKET_RCVBUFF and
/// counted in the namespace's `Udp: RcvbufErrors`.
#[test]
fn socket_rcvbuf() {
    let _serial = lock();
    if !require_root("socket_rcvbuf") {
        return;
    }
    const RX: Ipv4Addr = Ipv4Addr::new(198, 18, 70, 1);
    const SENDS: usize = 200;
    let ns = Netns::new().expect("namespace");
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    ns.ip(&["addr", "add", &format!("{RX}/32"), "dev", "lo"])
        .unwrap();
    let rx = udp_socket(&ns, Some(RX)).expect("receiver");
    setsockopt_int(&rx, libc::SOL_SOCKET, libc::SO_RCVBUF, 1).expect("SO_RCVBUF");
    let port = rx.local_addr().unwrap().port();

    let nd = Netdrop::start(&["--netns", &ns.inode().to_string()]).expect("starting netdrop");
    let before = ns.snmp().unwrap();
    let sent = udp_send(&ns, Some(RX), SocketAddrV4::new(RX, port), SENDS).expect("sending");
    settle();
    let after = ns.snmp().unwrap();
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();
    drop(rx);

    assert_eq!(sent, SENDS, "datagrams sent");
    let kernel = delta(&before, &after, "Udp:RcvbufErrors");
    assert!(kernel > 0, "no receive buffer overflow provoked");
    assert!(kernel < SENDS as u64, "the buffer took none: {kernel}");
    assert_eq!(
        out.reason("SOCKET_RCVBUFF"),
        kernel,
        "reasons.SOCKET_RCVBUFF"
    );
    assert_eq!(out.cause("socket_rcvbuf"), kernel, "causes.socket_rcvbuf");
    out.assert_one_truth();
    let lines = out.drops_with_cause("socket_rcvbuf");
    assert_eq!(lines.len() as u64, kernel, "one line per drop");
    for l in &lines {
        assert_drop_line_shape(l);
        assert_eq!(l["netns"], serde_json::json!(ns.inode()), "{l}");
        assert_eq!(l["dport"], serde_json::json!(port), "{l}");
    }
    // The diagnosis: the socket as its group, the kernel's counter beside
    // netdrop's count, the advice with the values in force.
    let (d, g) = out.declared_group(
        "socket_rcvbuf",
        "Udp:RcvbufErrors + Udp6:RcvbufErrors",
        Some(kernel),
        "socket",
    );
    assert_eq!(g["port"], serde_json::json!(port), "{g}");
    assert_eq!(g["addr"], RX.to_string(), "{g}");
    assert_eq!(g["netns"], serde_json::json!(ns.inode()), "{g}");
    assert_eq!(g["drops"], serde_json::json!(kernel), "{g}");
    assert_eq!(g["counter"], serde_json::json!(kernel), "{g}");
    let rmem_max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap();
    assert_eq!(
        g["values"]["net.core.rmem_max"],
        serde_json::json!(rmem_max),
        "{g}"
    );
    let advice = d["advice"].as_array().expect("advice");
    assert_eq!(advice.len(), 1, "{d}");
    let action = advice[0]["action"].as_str().unwrap();
    assert!(
        action.contains("SO_RCVBUF") && action.contains(&format!("rmem_max = {rmem_max}")),
        "{action}"
    );
    assert!(
        advice[0]["subject"]
            .as_str()
            .unwrap()
            .contains(&format!("{RX}:{port}")),
        "{d}"
    );
}
