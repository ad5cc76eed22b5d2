//! Kernel counters: /proc/net/netstat (per namespace) and
//! /proc/net/stat/arp_cache (the global ARP table, root namespace only).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

/// Counter name -> value.
pub type Counters = BTreeMap<String, u64>;

/// Parses /proc/net/netstat (or /proc/net/snmp): pairs of lines
/// `TcpExt: Name1 Name2 ...` / `TcpExt: 1 2 ...` into "TcpExt:Name1" -> 1.
pub fn parse_netstat(text: &str) -> Counters {
    let mut out = Counters::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [header, values] = pair else { break };
        let (Some((hp, names)), Some((vp, nums))) =
            (header.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        if hp != vp {
            continue;
        }
        for (name, num) in names.split_whitespace().zip(nums.split_whitespace()) {
            if let Ok(v) = num.parse::<u64>() {
                out.insert(format!("{hp}:{name}"), v);
            }
        }
    }
    out
}

/// Parses /proc/net/stat/arp_cache: a header line, then one line of hex
/// values per CPU. Columns are summed over CPUs, except `entries`, which the
/// kernel prints as the same table-wide count on every line (taken once).
pub fn parse_arp_cache(text: &str) -> Result<Counters> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .context("arp_cache: empty")?
        .split_whitespace()
        .collect();
    let mut out: Counters = header.iter().map(|h| ((*h).to_owned(), 0)).collect();
    let mut rows = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let values: Vec<&str> = line.split_whitespace().collect();
        if values.len() != header.len() {
            bail!(
                "arp_cache: {} columns in {line:?}, header has {}",
                values.len(),
                header.len()
            );
        }
        for (name, v) in header.iter().zip(values) {
            let v = u64::from_str_radix(v, 16).with_context(|| format!("arp_cache: {v:?}"))?;
            let slot = out.get_mut(*name).expect("from header");
            if *name == "entries" {
                if rows == 0 {
                    *slot = v;
                }
            } else {
                *slot += v;
            }
        }
        rows += 1;
    }
    if rows == 0 {
        bail!("arp_cache: no per-CPU lines");
    }
    Ok(out)
}

/// The ARP table statistics ("table_fulls", "unresolved_discards", ...).
/// Call from the root namespace (the test's main thread): the file does not
/// exist elsewhere.
pub fn arp_cache() -> Result<Counters> {
    let text = std::fs::read_to_string("/proc/net/stat/arp_cache")
        .context("reading /proc/net/stat/arp_cache")?;
    parse_arp_cache(&text)
}

/// `after[key] - before[key]`; panics if the key is missing or went backwards.
pub fn delta(before: &Counters, after: &Counters, key: &str) -> u64 {
    let b = before
        .get(key)
        .unwrap_or_else(|| panic!("counter {key} missing (before)"));
    let a = after
        .get(key)
        .unwrap_or_else(|| panic!("counter {key} missing (after)"));
    a.checked_sub(*b)
        .unwrap_or_else(|| panic!("counter {key} went backwards: {b} -> {a}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstat() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                    TcpExt: 0 7 9\n\
                    IpExt: InNoRoutes InTruncatedPkts\n\
                    IpExt: 3 0\n";
        let c = parse_netstat(text);
        assert_eq!(c["TcpExt:ListenOverflows"], 7);
        assert_eq!(c["TcpExt:ListenDrops"], 9);
        assert_eq!(c["IpExt:InNoRoutes"], 3);
        assert_eq!(c.len(), 5);
    }

    #[test]
    fn arp_cache_sums_cpus() {
        let text = "entries  allocs   unresolved_discards table_fulls\n\
                    00000012 00000013 0000000f 00000019\n\
                    00000012 00000001 00000001 00000000\n";
        let c = parse_arp_cache(text).unwrap();
        assert_eq!(c["entries"], 0x12);
        assert_eq!(c["allocs"], 0x14);
        assert_eq!(c["unresolved_discards"], 16);
        assert_eq!(c["table_fulls"], 25);
    }

    #[test]
    fn delta_of_counters() {
        let b: Counters = [("x".to_owned(), 3)].into();
        let a: Counters = [("x".to_owned(), 10)].into();
        assert_eq!(delta(&b, &a, "x"), 7);
    }
}
