//! The counters and knobs the causes declare (causes/), read in the calling
//! thread's namespace: what a snapshot keeps for the causes the diagnosis
//! handles from their declarations alone.

use std::collections::BTreeMap;
use std::path::Path;

use super::procnet::{read_netstat, read_snmp, read_sysctl_int};
use crate::causes::{REGISTRY, Read, Source};

/// `/proc/net/snmp6` lines `Udp6RcvbufErrors 12` as `Udp6:RcvbufErrors`
/// (the prefix ends at the first `6` followed by a capital letter).
pub fn parse_snmp6(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(name), Some(value)) = (it.next(), it.next()) else {
            continue;
        };
        let Ok(v) = value.parse::<u64>() else {
            continue;
        };
        let b = name.as_bytes();
        if let Some(i) =
            (0..b.len().saturating_sub(1)).find(|&i| b[i] == b'6' && b[i + 1].is_ascii_uppercase())
        {
            out.insert(format!("{}:{}", &name[..=i], &name[i + 1..]), v);
        }
    }
    out
}

/// `/proc/net/stat/<file>` (a header of column names, then one row of hex
/// values per CPU): each column summed over the rows.
pub fn parse_proc_stat(text: &str) -> BTreeMap<String, u64> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return BTreeMap::new();
    };
    let names: Vec<&str> = header.split_whitespace().collect();
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for row in lines {
        for (name, v) in names.iter().zip(row.split_whitespace()) {
            if let Ok(v) = u64::from_str_radix(v, 16) {
                let e = out.entry((*name).to_string()).or_default();
                *e = e.saturating_add(v);
            }
        }
    }
    out
}

/// `/proc/net/softnet_stat`: one row of hex columns per CPU; column `c`
/// summed (None: no row has it).
pub fn parse_softnet(text: &str, c: usize) -> Option<u64> {
    let vals: Vec<u64> = text
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(c)?, 16).ok())
        .collect();
    (!vals.is_empty()).then(|| vals.iter().fold(0u64, |a, v| a.saturating_add(*v)))
}

fn read_opt(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The declared per-namespace counters of the calling thread's namespace,
/// by counter name (absent: not readable there), read because of `why`
/// (nftables rules are not read at every read: context/nft.rs); `qdisc_drops`
/// as `qdisc::read` found them. Per-item counters of a source (each nftables
/// drop rule's) come beside the declared sum, named with the source's prefix
/// (`Source::item_prefix`).
pub fn ns_counters(why: super::nft::Why, qdisc_drops: Option<u64>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut netstat: Option<BTreeMap<String, u64>> = None;
    let mut stat_files: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for c in REGISTRY.iter().flat_map(|s| s.counters) {
        let v = match c.source {
            Source::Netstat(key) => {
                let all = netstat.get_or_insert_with(|| {
                    let mut m = read_netstat().unwrap_or_default();
                    m.extend(read_snmp().unwrap_or_default());
                    if let Some(t) = read_opt(Path::new("/proc/thread-self/net/snmp6")) {
                        m.extend(parse_snmp6(&t));
                    }
                    m
                });
                all.get(key).copied()
            }
            Source::ProcStat { file, column } => {
                if file.contains('/') {
                    continue;
                }
                stat_files
                    .entry(file)
                    .or_insert_with(|| {
                        read_opt(&Path::new("/proc/thread-self/net/stat").join(file))
                            .map(|t| parse_proc_stat(&t))
                            .unwrap_or_default()
                    })
                    .get(column)
                    .copied()
            }
            Source::QdiscDrops => qdisc_drops,
            Source::NftDropRules => {
                let mut rules = super::nft::drop_rule_counters(c.name, why);
                let sum = rules.remove(c.name);
                out.extend(rules);
                sum
            }
            Source::Bespoke | Source::Softnet { .. } => continue,
        };
        if let Some(v) = v {
            out.insert(c.name.to_string(), v);
        }
    }
    out
}

/// The declared global counters (read anywhere: they are the same in every
/// namespace).
pub fn global_counters() -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let softnet = read_opt(Path::new("/proc/net/softnet_stat"));
    for c in REGISTRY.iter().flat_map(|s| s.counters) {
        if let (Source::Softnet { column }, Some(t)) = (c.source, &softnet)
            && let Some(v) = parse_softnet(t, column)
        {
            out.insert(c.name.to_string(), v);
        }
    }
    out
}

/// The declared sysctl knobs of the calling thread's namespace, and the
/// per-device ones for each of `devs`, by name (absent: not shown there).
pub fn ns_knobs(devs: &[String]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for k in REGISTRY.iter().flat_map(|s| s.knobs) {
        match k.read {
            Read::Sysctl => {
                if let Some(v) = k.sysctl_path(None).and_then(|p| read_sysctl_int(&p).ok()) {
                    out.insert(k.name.to_string(), v);
                }
            }
            Read::DevSysctl => {
                for dev in devs {
                    if let Some(v) = k
                        .sysctl_path(Some(dev))
                        .and_then(|p| read_sysctl_int(&p).ok())
                    {
                        out.insert(k.name_for(Some(dev)), v);
                    }
                }
            }
            Read::Bespoke | Read::Setting => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp6_names() {
        let m = parse_snmp6(
            "Ip6InReceives                   \t12\nUdp6RcvbufErrors 3\nUdpLite6InDatagrams 0\nIcmp6OutMsgs x\n",
        );
        assert_eq!(m.get("Udp6:RcvbufErrors"), Some(&3));
        assert_eq!(m.get("Ip6:InReceives"), Some(&12));
        assert_eq!(m.get("UdpLite6:InDatagrams"), Some(&0));
        assert_eq!(m.len(), 3);
    }

    /// /proc/net/stat/nf_conntrack of this machine (6.18), two CPUs.
    #[test]
    fn proc_stat_columns_summed_over_cpus() {
        let t = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
                 00000003  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 0000000a 00000001 00000000  00000000 00000000 00000000 00000000\n\
                 00000003  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000010 00000000 00000000  00000000 00000000 00000000 00000000\n";
        let m = parse_proc_stat(t);
        assert_eq!(m["drop"], 0x1a);
        assert_eq!(m["early_drop"], 1);
        assert_eq!(m["entries"], 6);
        assert!(parse_proc_stat("").is_empty());
    }

    #[test]
    fn softnet_column() {
        let t = "0000a000 00000002 00000000\n0000b000 00000003 00000001\n";
        assert_eq!(parse_softnet(t, 1), Some(5));
        assert_eq!(parse_softnet(t, 9), None);
        assert_eq!(parse_softnet("", 1), None);
    }
}
