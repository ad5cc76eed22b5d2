//! no_listener (netdrop/src/causes/no_listener.rs): a TCP port whose
//! listener went away during the session, and a UDP port nobody had.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::time::Duration;

use netdrop_tests::netdrop::assert_drop_line_shape;
use netdrop_tests::traffic::udp_send;
use netdrop_tests::{Netdrop, Netns, delta, in_netns, lock, require_root, settle};

/// A listener seen by netdrop's first snapshot is closed; then 7 connects to
/// its port (each SYN freed with NO_SOCKET, the client refused) and 11
/// datagrams to a UDP port nobody has (`Udp: NoPorts` += 11). The diagnosis
/// groups them by port, says the TCP port had a listener earlier (it
/// stopped), and puts the kernel's UDP counter beside netdrop's count.
#[test]
fn no_listener() {
    let _serial = lock();
    if !require_root("no_listener") {
        return;
    }
    const HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 71, 1);
    const CONNECTS: u64 = 7;
    const DATAGRAMS: usize = 11;
    const UDP_PORT: u16 = 9;
    let ns = Netns::new().expect("namespace");
    ns.ip(&["link", "set", "lo", "up"]).unwrap();
    ns.ip(&["addr", "add", &format!("{HOST}/32"), "dev", "lo"])
        .unwrap();
    let listener = in_netns(&ns, || TcpListener::bind((HOST, 0)))
        .unwrap()
        .expect("listener");
    let port = listener.local_addr().unwrap().port();

    let nd = Netdrop::start(&["--netns", &ns.inode().to_string()]).expect("starting netdrop");
    // The first snapshot (taken before netdrop says it is watching) saw it.
    drop(listener);
    let before = ns.snmp().unwrap();
    let refused = in_netns(&ns, || {
        (0..CONNECTS)
            .filter(|_| {
                let to = SocketAddrV4::new(HOST, port).into();
                TcpStream::connect_timeout(&to, Duration::from_secs(2))
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
            })
            .count() as u64
    })
    .unwrap();
    let sent = udp_send(
        &ns,
        Some(HOST),
        SocketAddrV4::new(HOST, UDP_PORT),
        DATAGRAMS,
    )
    .expect("sending");
    settle();
    let after = ns.snmp().unwrap();
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();

    assert_eq!(refused, CONNECTS, "every connect refused");
    assert_eq!(sent, DATAGRAMS);
    let no_ports = delta(&before, &after, "Udp:NoPorts");
    assert_eq!(no_ports, DATAGRAMS as u64, "Udp:NoPorts");
    if out.without_reasons() {
        netdrop_tests::skip_loudly(
            "no_listener: this kernel gives no drop reasons (NO_SOCKET is UNKNOWN): nothing to classify",
        );
        return;
    }
    let total = CONNECTS + no_ports;
    assert_eq!(out.reason("NO_SOCKET"), total, "reasons.NO_SOCKET");
    assert_eq!(out.cause("no_listener"), total, "causes.no_listener");
    out.assert_one_truth();
    let lines = out.drops_with_cause("no_listener");
    assert_eq!(lines.len() as u64, total, "one line per drop");
    for l in &lines {
        assert_drop_line_shape(l);
        assert_eq!(l["netns"], serde_json::json!(ns.inode()), "{l}");
    }

    let d = out.diagnosed("no_listener").expect("no_listener diagnosed");
    assert_eq!(
        d["kernel_counter"]["delta"],
        serde_json::json!(no_ports),
        "{d}"
    );
    let groups = d["groups"].as_array().expect("groups");
    let group = |proto: &str, p: u16| {
        groups
            .iter()
            .find(|g| {
                g["proto"] == serde_json::json!(if proto == "tcp" { 6 } else { 17 })
                    && g["port"] == serde_json::json!(p)
            })
            .unwrap_or_else(|| panic!("no {proto} group for port {p}: {d}"))
    };
    let tcp = group("tcp", port);
    assert_eq!(tcp["by"], "socket", "{tcp}");
    assert_eq!(tcp["addr"], HOST.to_string(), "{tcp}");
    assert_eq!(tcp["drops"], serde_json::json!(CONNECTS), "{tcp}");
    let details = tcp["details"].as_array().unwrap();
    assert!(
        details.iter().any(|kv| kv[0] == "listener seen until"),
        "the listener it had: {tcp}"
    );
    assert!(
        !details.iter().any(|kv| kv[0] == "listening again"),
        "{tcp}"
    );
    let udp = group("udp", UDP_PORT);
    assert_eq!(udp["drops"], serde_json::json!(no_ports), "{udp}");
    assert!(udp["details"].as_array().unwrap().is_empty(), "{udp}");

    let advice = d["advice"].as_array().expect("advice");
    let tcp_advice = advice
        .iter()
        .find(|a| {
            a["subject"]
                .as_str()
                .unwrap()
                .contains(&format!("{HOST}:{port}"))
        })
        .unwrap_or_else(|| panic!("advice for the TCP port: {d}"));
    let action = tcp_advice["action"].as_str().unwrap();
    assert!(
        action.contains("stopped or crashed") && action.contains("nothing listens"),
        "{action}"
    );
}
