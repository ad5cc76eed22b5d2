//! Queueing disciplines of the calling thread's namespace through rtnetlink
//! (RTM_GETQDISC): kind, limit and drop statistics per device, with the
//! device's name, txqueuelen and rx_dropped from an RTM_GETLINK dump.
//!
//! Only a device's root qdisc (parent `TC_H_ROOT`) counts: a child's drops
//! are already in its root's (tbf, htb, prio, mq count what their children
//! drop), so summing every qdisc would count them twice.

use std::collections::BTreeMap;
use std::io;

use super::nl::{self, u32_at};

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWQDISC: u16 = 36;
const RTM_GETQDISC: u16 = 38;
/// `struct tcmsg`: family, pads, ifindex, handle, parent, info.
const TCMSG_LEN: usize = 20;
/// `struct ifinfomsg`: family, pad, type, index, flags, change.
const IFINFOMSG_LEN: usize = 16;
/// The parent of a device's root qdisc.
pub const TC_H_ROOT: u32 = 0xFFFF_FFFF;

const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
/// `struct tc_stats` (the old statistics, still dumped).
const TCA_STATS: u16 = 3;
/// Nested `TCA_STATS_*`; `TCA_STATS_QUEUE` is a `struct gnet_stats_queue`.
const TCA_STATS2: u16 = 7;
const TCA_STATS_QUEUE: u16 = 3;

const IFLA_IFNAME: u16 = 3;
const IFLA_TXQLEN: u16 = 13;
/// `struct rtnl_link_stats` (u32 fields).
const IFLA_STATS: u16 = 7;
/// `struct rtnl_link_stats64` (u64 fields).
const IFLA_STATS64: u16 = 23;

/// Devices described per namespace (a node with thousands of interfaces
/// keeps the first ones by ifindex).
pub const MAX_DEVICES: usize = 256;

/// A qdisc's queue limit, in the unit its kind counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Packets(u32),
    Bytes(u32),
}

impl Limit {
    /// As shown in a group's details: `5` (packets) or `5000b` (bytes).
    pub fn detail(self) -> String {
        match self {
            Limit::Packets(n) => n.to_string(),
            Limit::Bytes(n) => format!("{n}b"),
        }
    }
}

/// One qdisc of an RTM_NEWQDISC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    pub ifindex: u32,
    pub handle: u32,
    pub parent: u32,
    pub kind: String,
    pub drops: Option<u32>,
    pub qlen: Option<u32>,
    pub backlog: Option<u32>,
    pub limit: Option<Limit>,
}

impl Qdisc {
    pub fn is_root(&self) -> bool {
        self.parent == TC_H_ROOT
    }
}

/// One device of an RTM_NEWLINK message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    pub txqueuelen: Option<u32>,
    /// What the device's statistics count as received and dropped (the
    /// core's rx_dropped included: a full CPU backlog counts there).
    pub rx_dropped: Option<u64>,
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn attr(attrs: &[u8], kind: u16) -> Option<&[u8]> {
    nl::attributes(attrs)
        .find(|(k, _)| *k == kind)
        .map(|(_, d)| d)
}

/// A NUL-terminated attribute string (up to its first NUL).
fn attr_str(data: &[u8]) -> String {
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// The queue limit a qdisc of `kind` gives in its `TCA_OPTIONS`: tbf
/// (`tc_tbf_qopt.limit`, bytes), bfifo (bytes), pfifo and pfifo_head_drop
/// (`tc_fifo_qopt.limit`, packets), fq_codel, codel and fq (their packet
/// limit attribute), sfq and netem (their `qopt.limit`, packets). Others
/// (pfifo_fast: txqueuelen is its limit; noqueue, mq, htb, prio…): none.
pub fn limit_of(kind: &str, options: &[u8]) -> Option<Limit> {
    let nested_u32 = |attr_type| attr(options, attr_type).and_then(|d| u32_at(d, 0));
    match kind {
        // TCA_TBF_PARMS: struct tc_tbf_qopt { rate, peakrate (12 bytes each), limit, ... }.
        "tbf" => attr(options, 1)
            .and_then(|p| u32_at(p, 24))
            .map(Limit::Bytes),
        "bfifo" => u32_at(options, 0).map(Limit::Bytes),
        "pfifo" | "pfifo_head_drop" => u32_at(options, 0).map(Limit::Packets),
        // TCA_FQ_CODEL_LIMIT, TCA_CODEL_LIMIT.
        "fq_codel" | "codel" => nested_u32(2).map(Limit::Packets),
        // TCA_FQ_PLIMIT.
        "fq" => nested_u32(1).map(Limit::Packets),
        // struct tc_sfq_qopt { quantum, perturb_period, limit, ... }.
        "sfq" => u32_at(options, 8).map(Limit::Packets),
        // struct tc_netem_qopt { latency, limit, ... }.
        "netem" => u32_at(options, 4).map(Limit::Packets),
        _ => None,
    }
}

/// Parses one RTM_NEWQDISC payload (`tcmsg` + attributes). None without a
/// kind.
pub fn parse_qdisc(payload: &[u8]) -> Option<Qdisc> {
    let ifindex = u32_at(payload, 4)?;
    let handle = u32_at(payload, 8)?;
    let parent = u32_at(payload, 12)?;
    let attrs = payload.get(nl::align4(TCMSG_LEN)..)?;
    let kind = attr_str(attr(attrs, TCA_KIND)?);
    // gnet_stats_queue { qlen, backlog, drops, requeues, overlimits }, else
    // tc_stats { bytes (u64), packets, drops, overlimits, bps, pps, qlen, backlog }.
    let (qlen, backlog, drops) =
        match attr(attrs, TCA_STATS2).and_then(|s| attr(s, TCA_STATS_QUEUE)) {
            Some(q) => (u32_at(q, 0), u32_at(q, 4), u32_at(q, 8)),
            None => match attr(attrs, TCA_STATS) {
                Some(s) => (u32_at(s, 28), u32_at(s, 32), u32_at(s, 12)),
                None => (None, None, None),
            },
        };
    let limit = attr(attrs, TCA_OPTIONS).and_then(|o| limit_of(&kind, o));
    Some(Qdisc {
        ifindex,
        handle,
        parent,
        kind,
        drops,
        qlen,
        backlog,
        limit,
    })
}

/// Parses one RTM_NEWLINK payload (`ifinfomsg` + attributes). None without
/// a name.
pub fn parse_link(payload: &[u8]) -> Option<Link> {
    let ifindex = u32_at(payload, 4)?;
    let attrs = payload.get(nl::align4(IFINFOMSG_LEN)..)?;
    let name = attr_str(attr(attrs, IFLA_IFNAME)?);
    // rx_dropped: the 7th counter of rtnl_link_stats64 (u64) / rtnl_link_stats (u32).
    let rx_dropped = attr(attrs, IFLA_STATS64)
        .and_then(|s| u64_at(s, 6 * 8))
        .or_else(|| attr(attrs, IFLA_STATS).and_then(|s| u32_at(s, 6 * 4).map(u64::from)));
    Some(Link {
        ifindex,
        name,
        txqueuelen: attr(attrs, IFLA_TXQLEN).and_then(|d| u32_at(d, 0)),
        rx_dropped,
    })
}

/// The root qdiscs of a dump, by ifindex (a device has one root).
pub fn roots(messages: &[(u16, Vec<u8>)]) -> BTreeMap<u32, Qdisc> {
    messages
        .iter()
        .filter(|(kind, _)| *kind == RTM_NEWQDISC)
        .filter_map(|(_, p)| parse_qdisc(p))
        .filter(Qdisc::is_root)
        .map(|q| (q.ifindex, q))
        .collect()
}

/// The devices of a link dump, by ifindex, the first [`MAX_DEVICES`].
pub fn links(messages: &[(u16, Vec<u8>)]) -> BTreeMap<u32, Link> {
    let mut out: BTreeMap<u32, Link> = messages
        .iter()
        .filter(|(kind, _)| *kind == RTM_NEWLINK)
        .filter_map(|(_, p)| parse_link(p))
        .map(|l| (l.ifindex, l))
        .collect();
    while out.len() > MAX_DEVICES {
        out.pop_last();
    }
    out
}

/// Sum of the root qdiscs' drops.
pub fn sum_root_drops(roots: &BTreeMap<u32, Qdisc>) -> u64 {
    roots
        .values()
        .filter_map(|q| q.drops)
        .fold(0u64, |a, d| a.saturating_add(u64::from(d)))
}

/// Per device name: its root qdisc's kind, limit (`5` packets, `5000b`
/// bytes) and drops, and the device's txqueuelen and rx_dropped. Devices
/// without a root qdisc (down: none dumped) keep the device's own.
pub fn details(
    links: &BTreeMap<u32, Link>,
    roots: &BTreeMap<u32, Qdisc>,
) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out = BTreeMap::new();
    for l in links.values() {
        let mut d: Vec<(String, String)> = Vec::new();
        let root = roots.get(&l.ifindex);
        if let Some(q) = root {
            d.push(("qdisc".into(), q.kind.clone()));
            if let Some(limit) = q.limit {
                d.push(("limit".into(), limit.detail()));
            }
        }
        if let Some(t) = l.txqueuelen {
            d.push(("txqueuelen".into(), t.to_string()));
        }
        if let Some(drops) = root.and_then(|q| q.drops) {
            d.push(("dropped".into(), drops.to_string()));
        }
        if let Some(r) = l.rx_dropped {
            d.push(("rx_dropped".into(), r.to_string()));
        }
        out.insert(l.name.clone(), d);
    }
    out
}

fn dump_roots() -> io::Result<BTreeMap<u32, Qdisc>> {
    let req = [0u8; TCMSG_LEN]; // AF_UNSPEC, every device
    Ok(roots(&nl::dump(libc::NETLINK_ROUTE, RTM_GETQDISC, &req)?))
}

fn dump_links() -> io::Result<BTreeMap<u32, Link>> {
    let req = [0u8; IFINFOMSG_LEN]; // AF_UNSPEC, every device
    Ok(links(&nl::dump(libc::NETLINK_ROUTE, RTM_GETLINK, &req)?))
}

/// Per device name, what is known of it, as (name, value) pairs.
pub type DevDetails = BTreeMap<String, Vec<(String, String)>>;

/// What one read of the calling thread's namespace found: its root qdiscs'
/// `dropped` summed (None: not readable), and per device (the first
/// [`MAX_DEVICES`]) what its root qdisc shows (kind, limit, drops) with the
/// device's txqueuelen and rx_dropped. One dump of each kind.
pub fn read() -> (Option<u64>, DevDetails) {
    let roots = dump_roots().ok();
    let drops = roots.as_ref().map(sum_root_drops);
    let details = match dump_links() {
        Ok(links) => details(&links, &roots.unwrap_or_default()),
        Err(_) => BTreeMap::new(),
    };
    (drops, details)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real dump (kernel 6.18): see the fixture's header.
    fn fixture() -> Vec<(u16, Vec<u8>)> {
        include_str!("../../tests/fixtures/rtnetlink/qdisc_link_dump.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (t, hex) = l.split_once(' ').unwrap();
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect();
                (t.parse().unwrap(), bytes)
            })
            .collect()
    }

    fn nla(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = ((4 + data.len()) as u16).to_ne_bytes().to_vec();
        a.extend(kind.to_ne_bytes());
        a.extend(data);
        a.resize(nl::align4(a.len()), 0);
        a
    }

    fn tcmsg(ifindex: u32, parent: u32, attrs: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; 4];
        m.extend(ifindex.to_ne_bytes());
        m.extend(0x1_0000u32.to_ne_bytes());
        m.extend(parent.to_ne_bytes());
        m.extend(1u32.to_ne_bytes());
        m.extend(attrs);
        m
    }

    #[test]
    fn real_dump_roots_and_children() {
        let msgs = fixture();
        let all: Vec<Qdisc> = msgs
            .iter()
            .filter(|(t, _)| *t == RTM_NEWQDISC)
            .filter_map(|(_, p)| parse_qdisc(p))
            .collect();
        let kinds: Vec<(&str, u32, bool)> = all
            .iter()
            .map(|q| (q.kind.as_str(), q.ifindex, q.is_root()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("noqueue", 1, true),
                ("pfifo", 2, true),
                ("clsact", 2, false),
                ("tbf", 3, true),
                ("pfifo", 3, false),
                ("bfifo", 5, true),
            ]
        );
        let child = &all[4];
        assert_eq!((child.parent, child.handle), (0x0001_0001, 0x0010_0000));
        assert_eq!(child.limit, Some(Limit::Packets(5)));
        let r = roots(&msgs);
        assert_eq!(r.len(), 4);
        assert_eq!(r[&3].kind, "tbf");
        assert_eq!(r[&3].limit, Some(Limit::Bytes(5000)));
        assert_eq!(r[&2].limit, Some(Limit::Packets(7)));
        assert_eq!(r[&5].limit, Some(Limit::Bytes(3000)));
        assert_eq!(r[&1].limit, None);
        assert_eq!(
            (r[&3].drops, r[&3].qlen, r[&3].backlog),
            (Some(0), Some(0), Some(0))
        );
        assert_eq!(sum_root_drops(&r), 0);
    }

    #[test]
    fn real_dump_details() {
        let msgs = fixture();
        let l = links(&msgs);
        let names: Vec<&str> = l.values().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lo", "qb", "qa", "qd", "qc"]);
        assert_eq!(l[&5].txqueuelen, Some(77));
        assert_eq!(l[&3].txqueuelen, Some(1000));
        assert_eq!(l[&3].rx_dropped, Some(0));
        let d = details(&l, &roots(&msgs));
        let kv = |dev: &str| -> Vec<(&str, &str)> {
            d[dev]
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        };
        assert_eq!(
            kv("qa"),
            [
                ("qdisc", "tbf"),
                ("limit", "5000b"),
                ("txqueuelen", "1000"),
                ("dropped", "0"),
                ("rx_dropped", "0")
            ]
        );
        assert_eq!(kv("qb")[..2], [("qdisc", "pfifo"), ("limit", "7")]);
        assert_eq!(
            kv("qc")[..3],
            [("qdisc", "bfifo"), ("limit", "3000b"), ("txqueuelen", "77")]
        );
        assert_eq!(kv("lo")[0], ("qdisc", "noqueue"));
        assert_eq!(kv("lo")[1].0, "txqueuelen");
        // Down: no qdisc dumped, the device's own values only.
        assert_eq!(kv("qd"), [("txqueuelen", "1000"), ("rx_dropped", "0")]);
    }

    #[test]
    fn stats2_preferred_and_tc_stats_fallback() {
        let mut queue = Vec::new();
        for v in [3u32, 4500, 95, 0, 7] {
            queue.extend(v.to_ne_bytes());
        }
        let stats2 = nla(TCA_STATS2, &nla(TCA_STATS_QUEUE, &queue));
        let mut old = vec![0u8; 40];
        old[12..16].copy_from_slice(&11u32.to_ne_bytes());
        old[28..32].copy_from_slice(&2u32.to_ne_bytes());
        old[32..36].copy_from_slice(&300u32.to_ne_bytes());
        let old = nla(TCA_STATS, &old);
        let kind = nla(TCA_KIND, b"pfifo_fast\0");
        let both = tcmsg(4, TC_H_ROOT, &[kind.clone(), old.clone(), stats2].concat());
        let q = parse_qdisc(&both).unwrap();
        assert_eq!(
            (q.qlen, q.backlog, q.drops),
            (Some(3), Some(4500), Some(95))
        );
        assert_eq!(q.limit, None);
        let only_old = tcmsg(4, TC_H_ROOT, &[kind.clone(), old].concat());
        let q = parse_qdisc(&only_old).unwrap();
        assert_eq!((q.qlen, q.backlog, q.drops), (Some(2), Some(300), Some(11)));
        let none = parse_qdisc(&tcmsg(4, TC_H_ROOT, &kind)).unwrap();
        assert_eq!(none.drops, None);
        // No kind, or cut short: nothing.
        assert_eq!(parse_qdisc(&tcmsg(4, TC_H_ROOT, &[])), None);
        assert_eq!(parse_qdisc(&both[..10]), None);
    }

    #[test]
    fn roots_summed_children_not() {
        let q = |ifindex, parent, drops: u32| {
            let mut queue = vec![0u8; 8];
            queue.extend(drops.to_ne_bytes());
            queue.extend([0u8; 8]);
            let attrs = [
                nla(TCA_KIND, b"tbf\0"),
                nla(TCA_STATS2, &nla(TCA_STATS_QUEUE, &queue)),
            ]
            .concat();
            (RTM_NEWQDISC, tcmsg(ifindex, parent, &attrs))
        };
        // tbf root (95, its child's 93 included), the child, another root, ingress.
        let msgs = [
            q(3, TC_H_ROOT, 95),
            q(3, 0x0001_0001, 93),
            q(4, TC_H_ROOT, 5),
            q(4, 0xFFFF_FFF1, 40),
            (RTM_NEWLINK, vec![1, 2, 3]),
        ];
        assert_eq!(sum_root_drops(&roots(&msgs)), 100);
    }

    #[test]
    fn limits_by_kind() {
        let fifo = 42u32.to_ne_bytes();
        assert_eq!(limit_of("pfifo", &fifo), Some(Limit::Packets(42)));
        assert_eq!(limit_of("pfifo_head_drop", &fifo), Some(Limit::Packets(42)));
        assert_eq!(limit_of("bfifo", &fifo), Some(Limit::Bytes(42)));
        assert_eq!(limit_of("pfifo", &[1, 2]), None);
        let fq_codel = [
            nla(1, &5000u32.to_ne_bytes()),
            nla(2, &10240u32.to_ne_bytes()),
        ]
        .concat();
        assert_eq!(limit_of("fq_codel", &fq_codel), Some(Limit::Packets(10240)));
        assert_eq!(
            limit_of("fq", &nla(1, &10000u32.to_ne_bytes())),
            Some(Limit::Packets(10000))
        );
        let mut sfq = vec![0u8; 20];
        sfq[8..12].copy_from_slice(&127u32.to_ne_bytes());
        assert_eq!(limit_of("sfq", &sfq), Some(Limit::Packets(127)));
        let mut netem = vec![0u8; 24];
        netem[4..8].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(limit_of("netem", &netem), Some(Limit::Packets(1000)));
        // tbf without TCA_TBF_PARMS, or a short one.
        assert_eq!(limit_of("tbf", &nla(2, &[0; 8])), None);
        assert_eq!(limit_of("tbf", &nla(1, &[0; 20])), None);
        for kind in ["pfifo_fast", "noqueue", "htb", "mq", "prio", "clsact"] {
            assert_eq!(limit_of(kind, &fifo), None, "{kind}");
        }
        assert_eq!(Limit::Bytes(5000).detail(), "5000b");
        assert_eq!(Limit::Packets(5).detail(), "5");
    }

    #[test]
    fn devices_capped() {
        let link = |i: u32| {
            let mut m = vec![0u8; 4];
            m.extend(i.to_ne_bytes());
            m.extend([0u8; 8]);
            m.extend(nla(IFLA_IFNAME, format!("d{i}\0").as_bytes()));
            (RTM_NEWLINK, m)
        };
        let msgs: Vec<_> = (1..=(MAX_DEVICES as u32 + 50)).rev().map(link).collect();
        let l = links(&msgs);
        assert_eq!(l.len(), MAX_DEVICES);
        assert_eq!(l.keys().next_back(), Some(&(MAX_DEVICES as u32)));
        assert_eq!(l[&1].txqueuelen, None);
        // A link without a name is skipped.
        assert_eq!(parse_link(&[0u8; 16]), None);
    }

    /// Read in a fresh namespace: a veth pair whose one end has tbf, the
    /// other (down) none.
    #[test]
    fn live_in_created_netns() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP: creating a network namespace needs root");
            return;
        }
        let name = format!("ndq-{}", std::process::id());
        let ip = |args: &[&str]| {
            std::process::Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ip(&["netns", "add", &name]) {
            eprintln!("SKIP: ip netns add failed");
            return;
        }
        struct Del(String);
        impl Drop for Del {
            fn drop(&mut self) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", &self.0])
                    .status();
            }
        }
        let _del = Del(name.clone());
        assert!(ip(&[
            "-n", &name, "link", "add", "ndqa", "type", "veth", "peer", "name", "ndqb"
        ]));
        assert!(ip(&["-n", &name, "link", "set", "ndqa", "up"]));
        assert!(ip(&[
            "-n",
            &name,
            "link",
            "set",
            "ndqa",
            "txqueuelen",
            "321"
        ]));
        let tc = std::process::Command::new("tc")
            .args(["-n", &name, "qdisc", "add", "dev", "ndqa", "root", "tbf"])
            .args(["rate", "1mbit", "burst", "1600", "limit", "4321"])
            .status();
        if !tc.is_ok_and(|s| s.success()) {
            eprintln!("SKIP: tc qdisc add tbf failed");
            return;
        }
        let path = std::path::Path::new(super::super::netns::NAMED_NETNS_DIR).join(&name);
        let (drops, d) = super::super::in_netns(&path, read).unwrap();
        assert_eq!(drops, Some(0));
        let get = |dev: &str, k: &str| {
            d.get(dev)
                .and_then(|v| v.iter().find(|(n, _)| n == k))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("ndqa", "qdisc"), Some("tbf"), "{d:?}");
        assert_eq!(get("ndqa", "limit"), Some("4321b"), "{d:?}");
        assert_eq!(get("ndqa", "txqueuelen"), Some("321"), "{d:?}");
        assert_eq!(get("ndqb", "qdisc"), None, "{d:?}");
        assert!(d.contains_key("lo"), "{d:?}");
        // The caller's namespace has no such device.
        assert!(!read().1.contains_key("ndqa"));
    }
}
