//! The calling thread's namespace's nftables drop rules that have a counter
//! (iptables-nft rules too: they always have one), from `nft -j list
//! ruleset` run in that namespace (a process spawned from a thread joined
//! to a namespace is born in it), for firewall_rule's counter
//! (`Source::NftDropRules`).
//!
//! Cost: a process per read, so not every read runs it. Per namespace
//! (cached by inode and cookie):
//! - its first read (the baseline every later count starts from);
//! - every read made because of its drops ([`Why::Drops`]; those are at
//!   most every 250 ms per namespace, within reads.rs's budget);
//! - full snapshots within [`HOT`] of a firewall_rule drop there
//!   ([`note_drop`], from the diagnosis), so the last snapshot catches
//!   every drop;
//!
//! and otherwise the values of its last run are reused: a full snapshot of
//! 512 namespaces runs `nft` only in those that dropped lately (plus each
//! namespace once). Nothing without an `nft` binary.

use std::{
    collections::{BTreeMap, HashMap},
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use serde_json::Value;

/// Why a namespace is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// A periodic full snapshot (every namespace).
    Snapshot,
    /// Its drops.
    Drops,
}

/// Drop rules kept per namespace (the rest are left out, their sum too).
pub const MAX_RULES: usize = 128;
/// Bytes of a comment kept.
pub const MAX_COMMENT: usize = 64;
/// Bytes of a table's or chain's name kept.
const MAX_NAME: usize = 64;
/// `nft` output read at most (a bigger ruleset is not read).
const MAX_OUTPUT: u64 = 8 << 20;
const TIMEOUT: Duration = Duration::from_secs(2);
/// Namespaces remembered, at most.
const MAX_CACHED: usize = 4096;
/// Prefix of each rule's counter name.
pub const PREFIX: &str = "nft:";

/// How long after a read because of drops full snapshots run `nft` again.
pub const HOT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default)]
struct Cached {
    /// The namespace's cookie (0: unknown), so a namespace that reuses an
    /// inode is not given another's counters.
    cookie: u64,
    counters: BTreeMap<String, u64>,
    /// Until when full snapshots run `nft` again (drops there).
    hot_until: Option<Instant>,
}

/// By namespace inode.
fn cache() -> &'static Mutex<HashMap<u64, Cached>> {
    static CACHE: OnceLock<Mutex<HashMap<u64, Cached>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<u64, Cached>> {
    cache().lock().unwrap_or_else(|e| e.into_inner())
}

/// A firewall_rule drop in the namespace of inode `inode`: full snapshots
/// read its rules again for the next [`HOT`].
pub fn note_drop(inode: u64) {
    if let Some(e) = lock().get_mut(&inode) {
        e.hot_until = Some(Instant::now() + HOT);
    }
}

fn nft_binary() -> Option<&'static Path> {
    static NFT: OnceLock<Option<PathBuf>> = OnceLock::new();
    NFT.get_or_init(|| {
        ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    })
    .as_deref()
}

/// The per-rule counters (`nft:<family> <table> <chain> handle <h>`, with
/// the rule's comment if it has one) and their sum under `sum_name`, of the
/// calling thread's namespace; empty without nft or nftables.
pub fn drop_rule_counters(sum_name: &str, why: Why) -> BTreeMap<String, u64> {
    let Some(nft) = nft_binary() else {
        return BTreeMap::new();
    };
    let inode = super::netns::netns_inode(Path::new("/proc/thread-self/ns/net")).unwrap_or(0);
    let cookie = crate::netns_id::current_cookie().unwrap_or(0);
    let same = |e: &Cached| e.cookie == cookie || e.cookie == 0 || cookie == 0;
    if let Some(e) = lock().get(&inode)
        && same(e)
        && why == Why::Snapshot
        && e.hot_until.is_none_or(|t| t < Instant::now())
    {
        return e.counters.clone();
    }
    let mut counters = if has_tables() {
        run_nft(nft).map(|t| parse_ruleset(&t)).unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    if !counters.is_empty() {
        let sum = counters.values().fold(0u64, |a, v| a.saturating_add(*v));
        counters.insert(sum_name.to_string(), sum);
    }
    let mut c = lock();
    if c.len() >= MAX_CACHED && !c.contains_key(&inode) {
        c.clear();
    }
    let e = c.entry(inode).or_default();
    if !same(e) {
        *e = Cached::default();
    }
    e.cookie = cookie;
    e.counters = counters.clone();
    if why == Why::Drops {
        e.hot_until = Some(Instant::now() + HOT);
    }
    counters
}

/// Whether the calling thread's namespace has an nftables table (iptables-nft
/// rules live in one too): one NFT_MSG_GETTABLE dump over NETLINK_NETFILTER,
/// no process, so the namespaces without rules (most of a node's) never run
/// `nft`. True when netlink refuses (then `nft` decides).
fn has_tables() -> bool {
    // NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETTABLE.
    const GETTABLE: u16 = (10 << 8) | 1;
    // struct nfgenmsg: AF_UNSPEC (every family), NFNETLINK_V0, res_id 0.
    let nfgenmsg = [0u8; 4];
    super::nl::dump(libc::NETLINK_NETFILTER, GETTABLE, &nfgenmsg).map_or(true, |m| !m.is_empty())
}

/// `nft -j list ruleset`'s output, within the time and size limits.
fn run_nft(nft: &Path) -> Option<String> {
    let mut child = Command::new(nft)
        .args(["-j", "list", "ruleset"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let out = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.take(MAX_OUTPUT).read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let buf = reader.join().ok()?;
    (status?.success() && (buf.len() as u64) < MAX_OUTPUT)
        .then(|| String::from_utf8_lossy(&buf).into_owned())
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn bounded(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The drop rules with a counter of a `nft -j list ruleset` output, each
/// under its name (see [`drop_rule_counters`]), at most [`MAX_RULES`].
pub fn parse_ruleset(json: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(v) = serde_json::from_str::<Value>(json) else {
        return out;
    };
    let Some(items) = v["nftables"].as_array() else {
        return out;
    };
    for rule in items.iter().filter_map(|i| i.get("rule")) {
        if out.len() >= MAX_RULES {
            break;
        }
        let Some(expr) = rule["expr"].as_array() else {
            continue;
        };
        let packets = expr
            .iter()
            .find_map(|e| e.get("counter")?.get("packets")?.as_u64());
        let drops = expr.iter().any(|e| e.get("drop").is_some());
        let (Some(packets), true) = (packets, drops) else {
            continue;
        };
        let s = |k: &str| bounded(rule[k].as_str().unwrap_or("?"), MAX_NAME).to_string();
        let mut name = format!(
            "{PREFIX}{} {} {} handle {}",
            s("family"),
            s("table"),
            s("chain"),
            rule["handle"].as_u64().unwrap_or(0)
        );
        if let Some(c) = rule["comment"].as_str() {
            name.push_str(&format!(" comment {:?}", bounded(c, MAX_COMMENT)));
        }
        out.insert(name, packets);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A namespace without tables is told apart without running `nft`; one
    /// with a table is not (root: creates a namespace, deleted after).
    #[test]
    fn has_tables_in_created_netns() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 || nft_binary().is_none() {
            eprintln!("SKIP: has_tables_in_created_netns needs root and nft");
            return;
        }
        let name = format!("ndnft-{}", std::process::id());
        let run = |prog: &str, args: &[&str]| {
            Command::new(prog)
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        assert!(run("ip", &["netns", "add", &name]));
        struct Del(String);
        impl Drop for Del {
            fn drop(&mut self) {
                let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
            }
        }
        let _del = Del(name.clone());
        let path = PathBuf::from(format!("/run/netns/{name}"));
        let in_ns = || super::super::in_netns(&path, has_tables).unwrap();
        assert!(!in_ns(), "a new namespace has no table");
        assert!(run(
            "ip",
            &["netns", "exec", &name, "nft", "add", "table", "inet", "ndt"]
        ));
        assert!(in_ns(), "the table just added");
    }

    /// `nft -j list ruleset` (nft 1.0.6) of the firewall_rule reproduction:
    /// a `counter drop` with a comment, a plain `drop`, an iptables-nft rule,
    /// a chain whose policy is drop.
    const RULESET: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "fw", "handle": 1}},
{"chain": {"family": "inet", "table": "fw", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
{"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 2, "comment": "block-7000\u001b[31m", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 7000}}, {"counter": {"packets": 10, "bytes": 10280}}, {"drop": null}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 3, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 7001}}, {"drop": null}]}},
{"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 4, "expr": [{"counter": {"packets": 99, "bytes": 1}}, {"accept": null}]}},
{"table": {"family": "ip", "name": "pol", "handle": 2}},
{"chain": {"family": "ip", "table": "pol", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 10, "policy": "drop"}},
{"table": {"family": "ip", "name": "filter", "handle": 3}},
{"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 7002}}, {"counter": {"packets": 5, "bytes": 5140}}, {"drop": null}]}}]}"#;

    #[test]
    fn prefix_is_the_sources() {
        assert_eq!(
            crate::causes::Source::NftDropRules.item_prefix(),
            Some(PREFIX)
        );
    }

    #[test]
    fn drop_rules_with_a_counter() {
        let m = parse_ruleset(RULESET);
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            [
                (
                    "nft:inet fw input handle 2 comment \"block-7000\\u{1b}[31m\"".to_string(),
                    10
                ),
                ("nft:ip filter INPUT handle 2".to_string(), 5),
            ]
        );
        assert!(parse_ruleset("").is_empty());
        assert!(parse_ruleset("{\"nftables\": 3}").is_empty());
    }

    #[test]
    fn names_and_comments_are_bounded_and_rules_capped() {
        let long = "é".repeat(200);
        let rules: Vec<String> = (0..MAX_RULES + 10)
            .map(|h| {
                format!(
                    r#"{{"rule": {{"family": "ip", "table": "{long}", "chain": "c", "handle": {h}, "comment": "{long}", "expr": [{{"counter": {{"packets": 1, "bytes": 1}}}}, {{"drop": null}}]}}}}"#
                )
            })
            .collect();
        let m = parse_ruleset(&format!("{{\"nftables\": [{}]}}", rules.join(",")));
        assert_eq!(m.len(), MAX_RULES);
        for k in m.keys() {
            assert!(k.len() < 200, "{k}");
        }
        assert_eq!(bounded("aé", 2), "a");
    }
}
