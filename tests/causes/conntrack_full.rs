//! conntrack_full (netdrop/src/causes/conntrack_full.rs).

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};

use netdrop_tests::netdrop::assert_drop_line_shape;
use netdrop_tests::netns::{in_netns, veth_pair};
use netdrop_tests::traffic::udp_send_each;
use netdrop_tests::{Netdrop, Netns, SysctlGuard, lock, require_root, settle, skip_loudly};

pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 72, 1);
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 72, 2);
/// The table's size in the test (global: restored by its guard).
pub const K: usize = 8;
/// New UDP flows sent at the full table.
pub const N: usize = 20;
pub const OWN_REASON: &str = "NETFILTER_DROP(conntrack full)";

/// `/proc/net/stat/nf_conntrack` of `ns` (the thread's: /proc/net is the
/// process's): column `name` summed over the
/// per-CPU rows (hex).
pub fn ct_stat(ns: &Netns, name: &str) -> u64 {
    let text = in_netns(ns, || {
        std::fs::read_to_string("/proc/thread-self/net/stat/nf_conntrack")
    })
    .unwrap()
    .expect("/proc/net/stat/nf_conntrack");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let col = header
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("no column {name}: {header:?}"));
    lines
        .map(|row| u64::from_str_radix(row.split_whitespace().nth(col).unwrap(), 16).unwrap())
        .sum()
}

/// A server namespace whose conntrack table is full of K assured TCP
/// connections (held by the returned sockets) with `nf_conntrack_max` = K,
/// and a client namespace joined to it by a veth pair.
pub struct FullTable {
    pub client: Netns,
    pub server: Netns,
    pub guard: SysctlGuard,
    _held: Vec<TcpStream>,
}

/// Sets up [`FullTable`]; None (after a loud skip) where the kernel has no
/// conntrack.
pub fn full_table(test: &str) -> Option<FullTable> {
    if !std::path::Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists() {
        skip_loudly(&format!("{test}: no nf_conntrack in this kernel"));
        return None;
    }
    let client = Netns::new().expect("client namespace");
    let server = Netns::new().expect("server namespace");
    for ns in [&client, &server] {
        ns.ip(&["link", "set", "lo", "up"]).unwrap();
    }
    veth_pair(
        &client,
        "ndctc",
        &format!("{CLIENT}/24"),
        &server,
        "ndcts",
        &format!("{SERVER}/24"),
    )
    .expect("veth pair");
    // Any ct expression turns conntrack on in the namespace.
    server
        .sh("nft add table ip ndtct && nft 'add chain ip ndtct pre { type filter hook prerouting priority 0; policy accept; }' && nft add rule ip ndtct pre ct state invalid counter")
        .expect("nft ct rule");
    let guard = SysctlGuard::set("net.netfilter.nf_conntrack_max", &K.to_string())
        .expect("nf_conntrack_max");
    let listener = in_netns(&server, || {
        TcpListener::bind(SocketAddrV4::new(SERVER, 5000))
    })
    .unwrap()
    .expect("listener");
    let mut held = Vec::new();
    for _ in 0..K {
        let c = in_netns(&client, || {
            TcpStream::connect_timeout(
                &SocketAddrV4::new(SERVER, 5000).into(),
                std::time::Duration::from_secs(2),
            )
        })
        .unwrap()
        .expect("connect");
        held.push(c);
        held.push(listener.accept().expect("accept").0);
    }
    settle();
    let count = server
        .read_sysctl("net.netfilter.nf_conntrack_count")
        .unwrap();
    assert_eq!(count, K.to_string(), "the table holds the K connections");
    Some(FullTable {
        client,
        server,
        guard,
        _held: held,
    })
}

/// N new UDP flows (distinct destination ports) from the client.
pub fn new_flows(t: &FullTable) -> usize {
    let dsts: Vec<SocketAddrV4> = (0..N as u16)
        .map(|i| SocketAddrV4::new(SERVER, 9000 + i))
        .collect();
    udp_send_each(&t.client, Some(CLIENT), &dsts).expect("sending")
}

/// conntrack_full: the server's table is full of K assured TCP connections
/// (nf_conntrack_max = K, global, restored); N new UDP flows find no room
/// and no entry to evict: conntrack refuses each (NETFILTER_DROP in
/// nf_hook_slow, no conntrack entry), counted in the namespace's
/// `/proc/net/stat/nf_conntrack` `drop`. netdrop counts them in its own slot,
/// as conntrack_full, not firewall_rule.
#[test]
fn conntrack_full() {
    let _serial = lock();
    if !require_root("conntrack_full") {
        return;
    }
    let Some(t) = full_table("conntrack_full") else {
        return;
    };
    let nd = Netdrop::start(&["--netns", &t.server.inode().to_string()]).expect("netdrop");
    let before = ct_stat(&t.server, "drop");
    let sent = new_flows(&t);
    settle();
    let after = ct_stat(&t.server, "drop");
    let max = t
        .server
        .read_sysctl("net.netfilter.nf_conntrack_max")
        .unwrap();
    let out = nd.stop().expect("stopping netdrop");
    t.guard.restore().expect("restoring nf_conntrack_max");
    out.assert_clean_exit();
    if out.without_reasons() {
        skip_loudly("conntrack_full: this kernel gives no drop reasons");
        return;
    }
    if out
        .stderr
        .contains("at a full conntrack table are counted as firewall_rule")
    {
        skip_loudly(&format!(
            "conntrack_full: the probe cannot tell a full table on this kernel: {}",
            out.stderr
        ));
        return;
    }

    assert_eq!(sent, N, "datagrams sent");
    let kernel = after - before;
    assert_eq!(kernel, N as u64, "nf_conntrack drop delta");
    assert_eq!(out.reason(OWN_REASON), kernel, "reasons.{OWN_REASON}");
    assert_eq!(out.cause("conntrack_full"), kernel, "causes.conntrack_full");
    assert_eq!(out.cause("firewall_rule"), 0, "causes.firewall_rule");
    out.assert_one_truth();
    let lines = out.drops_with_cause("conntrack_full");
    assert_eq!(lines.len() as u64, kernel, "one line per drop");
    for l in &lines {
        assert_drop_line_shape(l);
        assert_eq!(l["netns"], serde_json::json!(t.server.inode()), "{l}");
        assert_eq!(l["reason"], OWN_REASON, "{l}");
    }
    let (d, g) = out.declared_group("conntrack_full", "nf_conntrack:drop", Some(kernel), "netns");
    assert_eq!(g["netns"], serde_json::json!(t.server.inode()), "{g}");
    assert_eq!(g["drops"], serde_json::json!(kernel), "{g}");
    assert_eq!(g["counter"], serde_json::json!(kernel), "{g}");
    assert_eq!(max, K.to_string());
    assert_eq!(
        g["values"]["net.netfilter.nf_conntrack_max"],
        serde_json::json!(K),
        "{g}"
    );
    let advice = d["advice"].as_array().expect("advice");
    assert_eq!(advice.len(), 1, "{d}");
    let action = advice[0]["action"].as_str().unwrap();
    assert!(
        action.contains(&format!("nf_conntrack_max {max}"))
            && action.contains("raise net.netfilter.nf_conntrack_max"),
        "{action}"
    );
}

/// The packets of the counter of the (one) rule of nft table `ip table` in `ns`.
fn nft_rule_counter(ns: &Netns, table: &str) -> u64 {
    let out = ns
        .sh(&format!("nft -j list table ip {table}"))
        .expect("nft list table");
    let v: serde_json::Value = serde_json::from_str(&out).expect("nft JSON");
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("rule")?.get("expr")?.as_array())
        .flatten()
        .find_map(|e| e.get("counter")?.get("packets")?.as_u64())
        .unwrap_or_else(|| panic!("no rule counter in {table}: {out}"))
}

/// A rule's drop in a namespace whose table is full is still the rule's:
/// a raw-priority `drop` (before conntrack: no entry on the packet, like a
/// packet conntrack refused) drops the N new flows at the full table. They
/// are freed in the rule's chain (nft_do_chain), not where conntrack's
/// verdict is (nf_hook_slow): netdrop counts them as firewall_rule, equal to
/// the rule's counter, and none as conntrack_full (whose kernel counter,
/// nf_conntrack `drop`, stays still).
#[test]
fn raw_rule_drop_at_a_full_table_is_the_rule() {
    let _serial = lock();
    if !require_root("raw_rule_drop_at_a_full_table_is_the_rule") {
        return;
    }
    let Some(t) = full_table("raw_rule_drop_at_a_full_table_is_the_rule") else {
        return;
    };
    t.server
        .sh("nft add table ip ndtraw && nft 'add chain ip ndtraw pre { type filter hook prerouting priority raw; policy accept; }' && nft add rule ip ndtraw pre udp dport 9000-9099 counter drop")
        .expect("nft raw drop rule");
    let nd = Netdrop::start(&["--netns", &t.server.inode().to_string()]).expect("netdrop");
    let ct_before = ct_stat(&t.server, "drop");
    let rule_before = nft_rule_counter(&t.server, "ndtraw");
    let sent = new_flows(&t);
    settle();
    let ct_after = ct_stat(&t.server, "drop");
    let rule_after = nft_rule_counter(&t.server, "ndtraw");
    let out = nd.stop().expect("stopping netdrop");
    t.guard.restore().expect("restoring nf_conntrack_max");
    out.assert_clean_exit();
    if out.without_reasons() {
        skip_loudly("raw_rule_drop_at_a_full_table_is_the_rule: this kernel gives no drop reasons");
        return;
    }
    assert_eq!(sent, N, "datagrams sent");
    assert_eq!(ct_after - ct_before, 0, "conntrack refused none");
    let kernel = rule_after - rule_before;
    assert_eq!(kernel, N as u64, "the raw rule's counter");
    // Before nftables freed its drops itself (6.1: nf_hook_slow frees every
    // NF_DROP verdict, a rule's too), where a drop is freed cannot tell.
    let at_hook: Vec<&str> = out
        .drops()
        .iter()
        .filter_map(|l| l["location"].as_str())
        .filter(|at| at.starts_with("nf_hook_slow+"))
        .collect();
    if out.reason(OWN_REASON) == kernel && at_hook.len() as u64 == kernel {
        skip_loudly(
            "raw_rule_drop_at_a_full_table_is_the_rule: this kernel frees nftables rules' drops in \
             nf_hook_slow, where conntrack's are freed: a raw-priority rule's drop at a full table \
             is counted as conntrack_full",
        );
        return;
    }
    assert_eq!(
        out.reason("NETFILTER_DROP"),
        kernel,
        "reasons.NETFILTER_DROP"
    );
    assert_eq!(out.reason(OWN_REASON), 0, "reasons.{OWN_REASON}");
    assert_eq!(out.cause("firewall_rule"), kernel, "causes.firewall_rule");
    assert_eq!(out.cause("conntrack_full"), 0, "causes.conntrack_full");
    out.assert_one_truth();
    let lines = out.drops_with_cause("firewall_rule");
    assert_eq!(lines.len() as u64, kernel, "one line per drop");
    for l in &lines {
        assert_drop_line_shape(l);
        assert_eq!(l["reason"], "NETFILTER_DROP", "{l}");
    }
}
