//! The kernel's counters and settings as procfs shows them to the calling thread:
//! SNMP-style counters (`netstat`, `snmp`), neighbour-table statistics
//! (`stat/arp_cache`, `stat/ndisc_cache`) and sysctls.
//!
//! Readers use `/proc/thread-self/net/...` so that, called inside
//! [`super::netns::in_netns`], they see the target namespace (`/proc/net` would show
//! the thread-group leader's). `/proc/sys/net` follows the calling thread already.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Parses `/proc/net/netstat` or `/proc/net/snmp`: pairs of lines `Prefix: A B C`
/// (names) then `Prefix: 1 2 3` (values), into keys `Prefix:A` → value.
/// A header without its value line is dropped; extra names or values are ignored;
/// values that are not u64 (`Tcp:MaxConn` is -1) are left out.
pub fn parse_netstat(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut header: Option<(&str, Vec<&str>)> = None;
    for line in text.lines() {
        let Some((prefix, rest)) = line.split_once(':') else {
            header = None;
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let is_values = fields.first().is_some_and(|f| f.parse::<i64>().is_ok());
        match header.take() {
            Some((h, names)) if h == prefix && is_values => {
                for (name, value) in names.iter().zip(&fields) {
                    if let Ok(v) = value.parse::<u64>() {
                        out.insert(format!("{prefix}:{name}"), v);
                    }
                }
            }
            _ if !is_values => header = Some((prefix, fields)),
            _ => {}
        }
    }
    out
}

fn proc_net(rel: &str) -> PathBuf {
    Path::new("/proc/thread-self/net").join(rel)
}

/// `/proc/thread-self/net/netstat` (TcpExt, IpExt, MPTcpExt) of the calling thread's
/// namespace.
pub fn read_netstat() -> io::Result<BTreeMap<String, u64>> {
    Ok(parse_netstat(&std::fs::read_to_string(proc_net(
        "netstat",
    ))?))
}

/// `/proc/thread-self/net/snmp` (Ip, Icmp, Tcp, Udp, ...) of the calling thread's
/// namespace.
pub fn read_snmp() -> io::Result<BTreeMap<String, u64>> {
    Ok(parse_netstat(&std::fs::read_to_string(proc_net("snmp"))?))
}

/// Neighbour-table statistics (`/proc/net/stat/arp_cache` or `ndisc_cache`).
/// The tables are global: the numbers cover all namespaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArpCacheStats {
    /// Entries in the table now (the same on every per-CPU line: taken once).
    pub entries: u64,
    /// Allocations refused because the table was at gc_thresh3 (sum over CPUs).
    pub table_fulls: u64,
    /// Packets dropped because the unresolved queue was full (sum over CPUs).
    pub unresolved_discards: u64,
    /// Synchronous garbage collections forced by a full table (sum over CPUs).
    pub forced_gc_runs: u64,
    /// Number of per-CPU lines summed.
    pub cpus: usize,
    /// Every column: `entries` as is, the others summed over CPUs.
    pub columns: BTreeMap<String, u64>,
}

/// Parses `/proc/net/stat/arp_cache`-format text: a header line of names, then one line
/// of hex values per CPU. Lines that do not parse are skipped; `None` without a header or
/// without any valid value line.
pub fn parse_arp_cache(text: &str) -> Option<ArpCacheStats> {
    let mut lines = text.lines();
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    if names.is_empty() {
        return None;
    }
    let mut stats = ArpCacheStats::default();
    for line in lines {
        let values: Option<Vec<u64>> = line
            .split_whitespace()
            .map(|v| u64::from_str_radix(v, 16).ok())
            .collect();
        let Some(values) = values.filter(|v| v.len() == names.len()) else {
            continue;
        };
        for (i, (name, value)) in names.iter().zip(values).enumerate() {
            let slot = stats.columns.entry((*name).to_string()).or_insert(0);
            if i == 0 && *name == "entries" {
                if stats.cpus == 0 {
                    *slot = value;
                }
            } else {
                *slot = slot.saturating_add(value);
            }
        }
        stats.cpus += 1;
    }
    if stats.cpus == 0 {
        return None;
    }
    let col = |name: &str| stats.columns.get(name).copied().unwrap_or(0);
    stats.entries = col("entries");
    stats.table_fulls = col("table_fulls");
    stats.unresolved_discards = col("unresolved_discards");
    stats.forced_gc_runs = col("forced_gc_runs");
    Some(stats)
}

fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_neigh_stat(file: &str) -> io::Result<Option<ArpCacheStats>> {
    let Some(text) = read_optional(&proc_net(file))? else {
        return Ok(None);
    };
    parse_arp_cache(&text)
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("unparsable {file}")))
}

/// The ARP table's statistics. The kernel only shows them in the initial namespace:
/// `Ok(None)` elsewhere.
pub fn read_arp_cache() -> io::Result<Option<ArpCacheStats>> {
    read_neigh_stat("stat/arp_cache")
}

/// The IPv6 neighbour table's statistics; like [`read_arp_cache`].
pub fn read_ndisc_cache() -> io::Result<Option<ArpCacheStats>> {
    read_neigh_stat("stat/ndisc_cache")
}

/// Reads `/proc/sys/<path>` (e.g. `net/core/somaxconn`), trimmed. `/proc/sys/net`
/// shows the calling thread's namespace. Paths with `..`, `.` or a leading `/` are
/// refused.
pub fn read_sysctl(path: &str) -> io::Result<String> {
    let rel = Path::new(path);
    let clean = !path.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !clean || path.contains("//") || path.ends_with('/') {
        let msg = format!("bad sysctl path {path:?}");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    Ok(std::fs::read_to_string(Path::new("/proc/sys").join(rel))?
        .trim()
        .to_string())
}

/// [`read_sysctl`] parsed as an integer (sysctls here are C `int`s).
pub fn read_sysctl_int(path: &str) -> io::Result<i64> {
    let text = read_sysctl(path)?;
    text.parse().map_err(|_| {
        let msg = format!("sysctl {path} is not an integer: {text:?}");
        io::Error::new(io::ErrorKind::InvalidData, msg)
    })
}

fn opt(path: &str) -> Option<i64> {
    read_sysctl_int(path).ok()
}

/// Per-interface settings; `None` where the file is absent (no such interface here,
/// or no IPv4 on it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevSysctls {
    /// `net/ipv4/conf/<dev>/rp_filter`.
    pub rp_filter: Option<i64>,
    /// `net/ipv4/neigh/<dev>/unres_qlen_bytes`: per-neighbour queue while resolving.
    pub unres_qlen_bytes: Option<i64>,
    /// `net/ipv4/neigh/<dev>/unres_qlen` (derived from the bytes value by the kernel).
    pub unres_qlen: Option<i64>,
}

/// Drop-relevant sysctls of one namespace, read in one go by [`read_netns_sysctls`].
/// Each is `None` when absent or unreadable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsSysctls {
    /// Namespace the values were read in.
    pub netns_inode: Option<u64>,
    pub somaxconn: Option<i64>,
    pub tcp_syncookies: Option<i64>,
    pub tcp_max_syn_backlog: Option<i64>,
    /// `net/ipv4/conf/all/rp_filter`.
    pub rp_filter_all: Option<i64>,
    /// `net/ipv4/conf/default/rp_filter` (inherited by interfaces created later).
    pub rp_filter_default: Option<i64>,
    /// `net/ipv4/neigh/default/gc_thresh1..3`: global to the ARP table; the kernel
    /// only shows them in the initial namespace.
    pub gc_thresh1: Option<i64>,
    pub gc_thresh2: Option<i64>,
    pub gc_thresh3: Option<i64>,
    pub devs: BTreeMap<String, DevSysctls>,
}

impl NetnsSysctls {
    /// The rp_filter mode the kernel applies on `dev`: max(all, dev). `None` if either
    /// is unknown.
    pub fn effective_rp_filter(&self, dev: &str) -> Option<i64> {
        let dev = self.devs.get(dev)?.rp_filter?;
        Some(self.rp_filter_all?.max(dev))
    }
}

/// Reads the drop-relevant sysctls of the calling thread's namespace, and the
/// per-interface ones for each of `devs`.
pub fn read_netns_sysctls(devs: &[String]) -> NetnsSysctls {
    let mut s = NetnsSysctls {
        netns_inode: super::netns::current_netns_inode().ok(),
        somaxconn: opt("net/core/somaxconn"),
        tcp_syncookies: opt("net/ipv4/tcp_syncookies"),
        tcp_max_syn_backlog: opt("net/ipv4/tcp_max_syn_backlog"),
        rp_filter_all: opt("net/ipv4/conf/all/rp_filter"),
        rp_filter_default: opt("net/ipv4/conf/default/rp_filter"),
        gc_thresh1: opt("net/ipv4/neigh/default/gc_thresh1"),
        gc_thresh2: opt("net/ipv4/neigh/default/gc_thresh2"),
        gc_thresh3: opt("net/ipv4/neigh/default/gc_thresh3"),
        devs: BTreeMap::new(),
    };
    for dev in devs {
        // Interface names never contain '/'; one that does is not looked up.
        let d = if dev.contains('/') {
            DevSysctls::default()
        } else {
            DevSysctls {
                rp_filter: opt(&format!("net/ipv4/conf/{dev}/rp_filter")),
                unres_qlen_bytes: opt(&format!("net/ipv4/neigh/{dev}/unres_qlen_bytes")),
                unres_qlen: opt(&format!("net/ipv4/neigh/{dev}/unres_qlen")),
            }
        };
        s.devs.insert(dev.clone(), d);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Copied from this machine's /proc/net/netstat (kernel 6.18), first two sections.
    const NETSTAT: &str = "\
        TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts PruneCalled \
        RcvPruned OfoPruned OutOfWindowIcmps LockDroppedIcmps ArpFilter TW TWRecycled \
        TWKilled PAWSActive PAWSEstab BeyondWindow TSEcrRejected PAWSOldAck PAWSTimewait \
        DelayedACKs DelayedACKLocked DelayedACKLost ListenOverflows ListenDrops TCPHPHits \
        TCPPureAcks TCPHPAcks TCPRenoRecovery TCPSackRecovery TCPSACKReneging TCPSACKReorder \
        TCPRenoReorder TCPTSReorder TCPFullUndo TCPPartialUndo TCPDSACKUndo TCPLossUndo \
        TCPLostRetransmit TCPRenoFailures TCPSackFailures TCPLossFailures TCPFastRetrans \
        TCPSlowStartRetrans TCPTimeouts TCPLossProbes TCPLossProbeRecovery \
        TCPRenoRecoveryFail TCPSackRecoveryFail TCPRcvCollapsed TCPBacklogCoalesce \
        TCPDSACKOldSent TCPDSACKOfoSent TCPDSACKRecv TCPDSACKOfoRecv TCPAbortOnData \
        TCPAbortOnClose TCPAbortOnMemory TCPAbortOnTimeout TCPAbortOnLinger TCPAbortFailed \
        TCPMemoryPressures TCPMemoryPressuresChrono TCPSACKDiscard TCPDSACKIgnoredOld \
        TCPDSACKIgnoredNoUndo TCPSpuriousRTOs TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure \
        TCPSackShifted TCPSackMerged TCPSackShiftFallback TCPBacklogDrop PFMemallocDrop \
        TCPMinTTLDrop TCPDeferAcceptDrop IPReversePathFilter TCPTimeWaitOverflow \
        TCPReqQFullDoCookies TCPReqQFullDrop TCPRetransFail TCPRcvCoalesce TCPOFOQueue \
        TCPOFODrop TCPOFOMerge TCPChallengeACK TCPSYNChallenge TCPFastOpenActive \
        TCPFastOpenActiveFail TCPFastOpenPassive TCPFastOpenPassiveFail \
        TCPFastOpenListenOverflow TCPFastOpenCookieReqd TCPFastOpenBlackhole \
        TCPSpuriousRtxHostQueues BusyPollRxPackets TCPAutoCorking TCPFromZeroWindowAdv \
        TCPToZeroWindowAdv TCPWantZeroWindowAdv TCPSynRetrans TCPOrigDataSent \
        TCPHystartTrainDetect TCPHystartTrainCwnd TCPHystartDelayDetect TCPHystartDelayCwnd \
        TCPACKSkippedSynRecv TCPACKSkippedPAWS TCPACKSkippedSeq TCPACKSkippedFinWait2 \
        TCPACKSkippedTimeWait TCPACKSkippedChallenge TCPWinProbe TCPKeepAlive TCPMTUPFail \
        TCPMTUPSuccess TCPDelivered TCPDeliveredCE TCPAckCompressed TCPZeroWindowDrop \
        TCPRcvQDrop TCPWqueueTooBig TCPFastOpenPassiveAltKey TcpTimeoutRehash \
        TcpDuplicateDataRehash TCPDSACKRecvSegs TCPDSACKIgnoredDubious TCPMigrateReqSuccess \
        TCPMigrateReqFailure TCPPLBRehash TCPAORequired TCPAOBad TCPAOKeyNotFound TCPAOGood \
        TCPAODroppedIcmps\n\
        TcpExt: 0 0 0 0 0 0 0 0 0 0 10 0 0 0 0 0 0 0 0 6 0 1 0 0 350 113 125 0 0 0 0 0 0 0 0 \
        0 0 0 0 0 0 0 0 2 0 0 0 0 0 136 1 0 0 0 1 32 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 \
        0 0 0 0 0 7214 0 0 0 0 0 0 0 0 0 0 0 0 2 0 114 50 50 136 0 668 0 0 0 0 0 0 0 0 0 0 0 \
        0 0 0 708 0 0 0 0 0 0 2 0 0 0 0 0 0 0 0 0 0 0\n\
        IpExt: InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts OutBcastPkts \
        InOctets OutOctets InMcastOctets OutMcastOctets InBcastOctets OutBcastOctets \
        InCsumErrors InNoECTPkts InECT1Pkts InECT0Pkts InCEPkts ReasmOverlaps\n\
        IpExt: 0 0 0 0 0 0 306961356 379833 0 0 0 0 0 10470 0 0 0 0\n";

    /// Copied from this machine's /proc/net/snmp (kernel 6.18), first sections.
    const SNMP: &str = "\
        Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams \
        InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes \
        ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates OutTransmits\n\
        Ip: 2 64 10470 0 0 0 0 0 10470 5334 0 0 0 0 0 0 0 0 0 5334\n\
        Icmp: InMsgs InErrors InCsumErrors InDestUnreachs InTimeExcds InParmProbs \
        InSrcQuenchs InRedirects InEchos InEchoReps InTimestamps InTimestampReps InAddrMasks \
        InAddrMaskReps OutMsgs OutErrors OutRateLimitGlobal OutRateLimitHost OutDestUnreachs \
        OutTimeExcds OutParmProbs OutSrcQuenchs OutRedirects OutEchos OutEchoReps \
        OutTimestamps OutTimestampReps OutAddrMasks OutAddrMaskReps\n\
        Icmp: 1 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
        IcmpMsg: InType3\n\
        IcmpMsg: 1\n\
        Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails \
        EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n\
        Tcp: 1 200 120000 -1 44 2 0 32 0 10382 5279 0 0 34 0\n";

    /// Copied from this machine's /proc/net/stat/arp_cache (2 CPUs).
    const ARP_CACHE: &str = "\
        entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast \
        rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls\n\
        00000001 00000028 00000003 00000002   00000058 00000001 00000010   00000000         \
        00000000         00000000         00000031       0000001e            00000030\n\
        00000001 0000000d 00000031 00000000   0000003a 00000008 00000008   00000000         \
        00000000         00000037         00000017       0000000f            00000016\n";

    #[test]
    fn netstat_fixture() {
        let m = parse_netstat(NETSTAT);
        assert_eq!(m["TcpExt:SyncookiesSent"], 0);
        assert_eq!(m["TcpExt:TW"], 10);
        assert_eq!(m["TcpExt:ListenOverflows"], 0);
        assert_eq!(m["TcpExt:ListenDrops"], 0);
        assert_eq!(m["TcpExt:TCPHPHits"], 350);
        assert_eq!(m["TcpExt:IPReversePathFilter"], 0);
        assert_eq!(m["TcpExt:TCPAODroppedIcmps"], 0);
        assert_eq!(m["IpExt:InOctets"], 306_961_356);
        assert_eq!(m["IpExt:InNoECTPkts"], 10470);
        assert_eq!(m.len(), 135 + 18);
    }

    #[test]
    fn snmp_fixture_skips_negative() {
        let m = parse_netstat(SNMP);
        assert_eq!(m["Ip:Forwarding"], 2);
        assert_eq!(m["IcmpMsg:InType3"], 1);
        assert_eq!(m["Tcp:RtoMax"], 120_000);
        assert!(!m.contains_key("Tcp:MaxConn")); // -1
        assert_eq!(m["Tcp:InCsumErrors"], 0);
    }

    #[test]
    fn netstat_edge_cases() {
        assert!(parse_netstat("").is_empty());
        assert!(parse_netstat("garbage\n\u{0}\u{ff}::: 1 2\n:\n: :").is_empty());
        // A header without values, then a complete pair.
        let m = parse_netstat("A: x y\nB: p q\nB: 1 2\n");
        assert_eq!(m.len(), 2);
        assert_eq!((m["B:p"], m["B:q"]), (1, 2));
        // Values for a different prefix than the header, values without header.
        assert!(parse_netstat("A: x\nB: 1\nC: 5\n").is_empty());
        // Mismatched counts: zip what there is.
        let m = parse_netstat("A: x y z\nA: 1 2\nB: p\nB: 7 8\n");
        assert_eq!(m.len(), 3);
        assert_eq!((m["A:y"], m["B:p"]), (2, 7));
        // A header truncated by a later header with the same prefix.
        let m = parse_netstat("A: x\nA: y\nA: 3\n");
        assert_eq!(m.len(), 1);
        assert_eq!(m["A:y"], 3);
        // Unparsable value in the middle.
        let m = parse_netstat("A: x y z\nA: 1 zz 3\n");
        assert_eq!((m.len(), m["A:z"]), (2, 3));
    }

    #[test]
    fn arp_cache_fixture() {
        let s = parse_arp_cache(ARP_CACHE).unwrap();
        assert_eq!(s.cpus, 2);
        assert_eq!(s.entries, 1); // not 2: table-wide, taken once
        assert_eq!(s.table_fulls, 0x30 + 0x16);
        assert_eq!(s.unresolved_discards, 0x1e + 0x0f);
        assert_eq!(s.forced_gc_runs, 0x31 + 0x17);
        assert_eq!(s.columns["allocs"], 0x28 + 0x0d);
        assert_eq!(s.columns["periodic_gc_runs"], 0x37);
        assert_eq!(s.columns["entries"], 1);
        assert_eq!(s.columns.len(), 13);
    }

    #[test]
    fn arp_cache_edge_cases() {
        assert_eq!(parse_arp_cache(""), None);
        assert_eq!(parse_arp_cache("\n"), None);
        let header = ARP_CACHE.lines().next().unwrap();
        assert_eq!(parse_arp_cache(header), None); // no value line
        // Bad lines (short, non-hex) are skipped, good ones kept.
        let mut lines = ARP_CACHE.lines();
        let (header, cpu0, cpu1) = (
            lines.next().unwrap(),
            lines.next().unwrap(),
            lines.next().unwrap(),
        );
        let text = format!("{header}\n0001 0002\nzz{}\n{cpu1}\n", &cpu0[2..]);
        let s = parse_arp_cache(&text).unwrap();
        assert_eq!((s.cpus, s.entries, s.table_fulls), (1, 1, 0x16));
        // Other column orders are read by name.
        let s = parse_arp_cache("entries table_fulls x\n5 a 1\n5 1 1\n").unwrap();
        assert_eq!(
            (s.entries, s.table_fulls, s.unresolved_discards),
            (5, 11, 0)
        );
        assert_eq!(s.columns["x"], 2);
        let s = parse_arp_cache("a table_fulls\nffffffffffffffff ffffffffffffffff\n1 1\n");
        assert_eq!(s.unwrap().table_fulls, u64::MAX); // saturates
        assert_eq!(parse_arp_cache("\u{0}\u{1}\nzz"), None);
    }

    #[test]
    fn sysctl_paths() {
        assert!(read_sysctl_int("net/core/somaxconn").unwrap() >= 0);
        for bad in [
            "",
            "/net/core/somaxconn",
            "net/../kernel/hostname",
            "./net",
            "net//core",
            "net/core/",
        ] {
            let e = read_sysctl(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert_eq!(
            read_sysctl("net/core/nonexistent").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(read_sysctl_int("kernel/ostype").is_err());
    }

    #[test]
    fn live_readers() {
        let m = read_netstat().unwrap();
        assert!(m.contains_key("TcpExt:ListenOverflows"));
        assert!(m.contains_key("TcpExt:ListenDrops"));
        assert!(m.contains_key("TcpExt:IPReversePathFilter"));
        assert!(read_snmp().unwrap().contains_key("Tcp:ActiveOpens"));
        // Present in the initial namespace, which is where these tests usually run.
        if let Some(s) = read_arp_cache().unwrap() {
            assert!(s.cpus >= 1);
            assert!(s.columns.contains_key("table_fulls"));
        }
        let _ = read_ndisc_cache().unwrap();
    }

    #[test]
    fn live_netns_sysctls() {
        let s = read_netns_sysctls(&["lo".to_string(), "no/such".to_string()]);
        assert_eq!(
            s.somaxconn,
            Some(read_sysctl_int("net/core/somaxconn").unwrap())
        );
        assert!(s.tcp_syncookies.is_some());
        assert!(s.tcp_max_syn_backlog.is_some());
        assert!(s.rp_filter_all.is_some() && s.rp_filter_default.is_some());
        let lo = &s.devs["lo"];
        assert!(lo.rp_filter.is_some() && lo.unres_qlen_bytes.is_some());
        assert!(lo.unres_qlen.is_some());
        assert_eq!(s.devs["no/such"], DevSysctls::default());
        let expect = s.rp_filter_all.unwrap().max(lo.rp_filter.unwrap());
        assert_eq!(s.effective_rp_filter("lo"), Some(expect));
        assert_eq!(s.effective_rp_filter("absent0"), None);
    }
}
