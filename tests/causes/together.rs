//! Field truth: three of the registry's causes in one session, in three
//! namespaces at once — a full conntrack table, a firewall rule and a
//! receive buffer — each counted as itself, equal to its own kernel counter,
//! none leaking into another.

use std::net::{Ipv4Addr, SocketAddrV4};

use netdrop_tests::traffic::{setsockopt_int, udp_send, udp_socket};
use netdrop_tests::{Netdrop, Netns, delta, lock, require_root, settle};
use serde_json::json;

use super::conntrack_full::{OWN_REASON, ct_stat, full_table, new_flows};

const HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 77, 1);
const BLOCKED: u16 = 7000;
const FIREWALLED: usize = 12;
const DATAGRAMS: usize = 200;

/// The packets counter of the rule commented `together` in `ns`.
fn rule_packets(ns: &Netns) -> u64 {
    let out = ns.sh("nft -j list ruleset").expect("nft -j list ruleset");
    let v: serde_json::Value = serde_json::from_str(&out).expect("nft JSON");
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r["comment"] == "together")
        .flat_map(|r| r["expr"].as_array().cloned().unwrap_or_default())
        .find_map(|e| e["counter"]["packets"].as_u64())
        .expect("the rule's counter")
}

#[test]
fn three_causes_in_one_session() {
    let _serial = lock();
    if !require_root("three_causes_in_one_session") {
        return;
    }
    let Some(t) = full_table("three_causes_in_one_session") else {
        return;
    };
    // A second namespace: a firewall rule on one port, a receiver that never
    // reads (with the smallest buffer) on another.
    let f = Netns::new().expect("namespace");
    f.ip(&["link", "set", "lo", "up"]).unwrap();
    f.ip(&["addr", "add", &format!("{HOST}/32"), "dev", "lo"])
        .unwrap();
    f.sh(&format!(
        "nft add table inet ndttg && nft 'add chain inet ndttg input {{ type filter hook input priority filter; policy accept; }}' && nft add rule inet ndttg input udp dport {BLOCKED} counter drop comment '\"together\"'"
    ))
    .expect("nft rule");
    let rx = udp_socket(&f, Some(HOST)).expect("receiver");
    setsockopt_int(&rx, libc::SOL_SOCKET, libc::SO_RCVBUF, 1).expect("SO_RCVBUF");
    let port = rx.local_addr().unwrap().port();

    let nd = Netdrop::start(&[]).expect("starting netdrop");
    let before = (
        ct_stat(&t.server, "drop"),
        rule_packets(&f),
        f.snmp().unwrap(),
    );
    // Interleaved: conntrack, firewall, buffer, conntrack again.
    let flows = new_flows(&t);
    let blocked =
        udp_send(&f, Some(HOST), SocketAddrV4::new(HOST, BLOCKED), FIREWALLED).expect("sending");
    let buffered =
        udp_send(&f, Some(HOST), SocketAddrV4::new(HOST, port), DATAGRAMS).expect("sending");
    let flows2 = new_flows(&t);
    settle();
    let after = (
        ct_stat(&t.server, "drop"),
        rule_packets(&f),
        f.snmp().unwrap(),
    );
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();
    drop(rx);
    drop(t.guard);

    assert_eq!(flows + flows2, 2 * super::conntrack_full::N);
    assert_eq!((blocked, buffered), (FIREWALLED, DATAGRAMS));
    let ct = after.0 - before.0;
    let fw = after.1 - before.1;
    let rcvbuf = delta(&before.2, &after.2, "Udp:RcvbufErrors");
    eprintln!("together: conntrack drop +{ct}, rule +{fw}, RcvbufErrors +{rcvbuf}");
    assert_eq!(ct, 2 * super::conntrack_full::N as u64, "conntrack drops");
    assert_eq!(fw, FIREWALLED as u64, "rule counter");
    assert!(rcvbuf > 0 && rcvbuf < DATAGRAMS as u64, "{rcvbuf}");

    assert_eq!(out.reason(OWN_REASON), ct, "reasons.{OWN_REASON}");
    assert_eq!(out.cause("conntrack_full"), ct, "causes.conntrack_full");
    assert_eq!(out.cause("firewall_rule"), fw, "causes.firewall_rule");
    assert_eq!(out.cause("socket_rcvbuf"), rcvbuf, "causes.socket_rcvbuf");
    out.assert_one_truth();
    let netns_of = |cause: &str| -> Vec<serde_json::Value> {
        let mut v: Vec<_> = out
            .drops_with_cause(cause)
            .iter()
            .map(|l| l["netns"].clone())
            .collect();
        v.dedup();
        v
    };
    assert_eq!(netns_of("conntrack_full"), vec![json!(t.server.inode())]);
    assert_eq!(netns_of("firewall_rule"), vec![json!(f.inode())]);
    assert_eq!(netns_of("socket_rcvbuf"), vec![json!(f.inode())]);

    // Each diagnosed with its own group and counter.
    let d = out.diagnosed("conntrack_full").expect("conntrack_full");
    assert_eq!(d["kernel_counter"]["delta"], json!(ct), "{d}");
    assert_eq!(d["groups"][0]["netns"], json!(t.server.inode()), "{d}");
    let d = out.diagnosed("firewall_rule").expect("firewall_rule");
    assert_eq!(d["groups"][0]["netns"], json!(f.inode()), "{d}");
    let details = d["groups"][0]["details"].to_string();
    assert!(
        details.contains("together") && details.contains(&format!("+{fw}")),
        "{d}"
    );
    let d = out.diagnosed("socket_rcvbuf").expect("socket_rcvbuf");
    assert_eq!(d["groups"][0]["port"], json!(port), "{d}");
    assert_eq!(d["groups"][0]["counter"], json!(rcvbuf), "{d}");
}
