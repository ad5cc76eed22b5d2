//! firewall_rule (netdrop/src/causes/firewall_rule.rs).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use netdrop_tests::netdrop::assert_drop_line_shape;
use netdrop_tests::netns::veth_pair;
use netdrop_tests::traffic::udp_send;
use netdrop_tests::{Netdrop, Netns, lock, require_root, settle, skip_loudly};

const TX: Ipv4Addr = Ipv4Addr::new(198, 18, 73, 1);
const RX: Ipv4Addr = Ipv4Addr::new(198, 18, 73, 2);

/// The receiver's rules: a `counter drop` with a comment (7000), a plain
/// `drop` (7001), and a chain whose policy drops what is not accepted (7003).
const RULES: &str = r#"nft -f - <<'EOF'
table inet ndtfw {
  chain input {
    type filter hook input priority filter; policy accept;
    udp dport 7000 counter drop comment "block-7000"
    udp dport 7001 drop
  }
}
table ip ndtpol {
  chain input { type filter hook input priority 10; policy drop; udp dport != 7003 accept; }
}
EOF
iptables -A INPUT -p udp --dport 7002 -j DROP"#;

/// The namespace's drop rules with a counter, by `family table chain handle`
/// → packets, and each one's comment, read with `nft -j list ruleset`.
fn drop_rule_counters(ns: &Netns) -> BTreeMap<String, (u64, Option<String>)> {
    let out = ns.sh("nft -j list ruleset").expect("nft -j list ruleset");
    let v: serde_json::Value = serde_json::from_str(&out).expect("nft JSON");
    let mut m = BTreeMap::new();
    for r in v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("rule"))
    {
        let expr = r["expr"].as_array().unwrap();
        let packets = expr
            .iter()
            .find_map(|e| e.get("counter")?.get("packets")?.as_u64());
        if let (Some(p), true) = (packets, expr.iter().any(|e| e.get("drop").is_some())) {
            m.insert(
                format!(
                    "{} {} {} handle {}",
                    r["family"].as_str().unwrap(),
                    r["table"].as_str().unwrap(),
                    r["chain"].as_str().unwrap(),
                    r["handle"]
                ),
                (p, r["comment"].as_str().map(String::from)),
            );
        }
    }
    m
}

/// firewall_rule: UDP to a namespace whose rules drop it: 10 datagrams by an
/// nft `counter drop` rule with a comment, 5 by an iptables-nft rule (its
/// counter is an nft counter), 7 by a plain `drop` (no counter) and 3 by a
/// chain's drop policy. All 25 are NETFILTER_DROP (firewall_rule, never
/// conntrack_full); the two counted rules' counters move by exactly what
/// they dropped and the group names them; the advice says 10 drops moved no
/// rule's counter, which netdrop cannot name.
#[test]
fn firewall_rule() {
    let _serial = lock();
    if !require_root("firewall_rule") {
        return;
    }
    let nft_ok = std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let iptables_nft = std::process::Command::new("iptables")
        .arg("-V")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("nf_tables"));
    if !nft_ok || !iptables_nft {
        skip_loudly("firewall_rule: needs nft and iptables-nft (iptables -V: nf_tables)");
        return;
    }
    let tx = Netns::new().expect("sender namespace");
    let rx = Netns::new().expect("receiver namespace");
    veth_pair(
        &tx,
        "ndfwa",
        &format!("{TX}/24"),
        &rx,
        "ndfwb",
        &format!("{RX}/24"),
    )
    .expect("veth pair");
    rx.sh(RULES).expect("rules");

    let nd = Netdrop::start(&["--netns", &rx.inode().to_string()]).expect("netdrop");
    let before = drop_rule_counters(&rx);
    let mut sent = 0;
    for (port, n) in [(7000u16, 10usize), (7002, 5), (7001, 7), (7003, 3)] {
        sent += udp_send(&tx, Some(TX), SocketAddrV4::new(RX, port), n).expect("sending");
    }
    settle();
    let after = drop_rule_counters(&rx);
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();
    if out.without_reasons() {
        skip_loudly("firewall_rule: this kernel gives no drop reasons");
        return;
    }

    assert_eq!(sent, 25, "datagrams sent");
    // The kernel's counters: the two rules with one, by what they dropped.
    let moved: BTreeMap<&String, u64> = after
        .iter()
        .map(|(k, (p, _))| (k, p - before.get(k).map_or(0, |b| b.0)))
        .filter(|(_, d)| *d > 0)
        .collect();
    let counted: u64 = moved.values().sum();
    assert_eq!(
        moved.values().copied().collect::<Vec<_>>().len(),
        2,
        "{moved:?}"
    );
    assert_eq!(counted, 15, "{moved:?}");
    let uncounted = 7 + 3;
    assert_eq!(out.reason("NETFILTER_DROP"), counted + uncounted);
    assert_eq!(out.cause("firewall_rule"), counted + uncounted);
    assert_eq!(out.cause("conntrack_full"), 0);
    out.assert_one_truth();
    let lines = out.drops_with_cause("firewall_rule");
    assert_eq!(lines.len() as u64, counted + uncounted, "one line per drop");
    for l in &lines {
        assert_drop_line_shape(l);
        assert_eq!(l["netns"], serde_json::json!(rx.inode()), "{l}");
        assert_eq!(l["reason"], "NETFILTER_DROP", "{l}");
    }

    let (d, g) = out.declared_group(
        "firewall_rule",
        "nft drop rules' counters",
        Some(counted),
        "netns",
    );
    assert_eq!(g["netns"], serde_json::json!(rx.inode()), "{g}");
    assert_eq!(g["drops"], serde_json::json!(counted + uncounted), "{g}");
    assert_eq!(g["counter"], serde_json::json!(counted), "{g}");
    // Each rule whose counter moved, named with its comment, and its delta.
    let details = g["details"].as_array().expect("details");
    assert_eq!(details.len(), 2, "{g}");
    let action = d["advice"][0]["action"].as_str().expect("advice");
    for (rule, delta) in &moved {
        let comment = &after[*rule].1;
        let name = match comment {
            Some(c) => format!("{rule} comment {c:?}"),
            None => rule.to_string(),
        };
        assert!(
            details
                .iter()
                .any(|x| x[0] == name.as_str() && x[1] == format!("+{delta}")),
            "{name} +{delta} in {g}"
        );
        assert!(action.contains(&format!("{name} (+{delta})")), "{action}");
    }
    assert!(
        moved
            .keys()
            .any(|k| after[*k].1.as_deref() == Some("block-7000")),
        "{moved:?}"
    );
    assert!(
        action.contains(&format!("{uncounted} drops moved no rule's counter"))
            && action.contains("cannot name that rule"),
        "{action}"
    );
}
