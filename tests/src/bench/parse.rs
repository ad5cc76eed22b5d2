//! Pure parsers for what the benchmark reads: `bpftool -j prog show`,
//! `/proc/PID/{stat,status,fdinfo}`, `bpftool btf dump` (raw format), bpftrace's
//! printed map, netdrop's JSON lines; and the marked region of BENCHMARKS.md.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// One program from `bpftool -j prog show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    pub id: u64,
    /// "tracepoint", "kprobe", ...
    pub kind: String,
    pub name: String,
    /// Cumulative time in the program while `kernel.bpf_stats_enabled` was 1
    /// (bpftool leaves the field out when it is 0).
    pub run_time_ns: u64,
    pub run_cnt: u64,
    /// Processes holding the program (bpftool built with skeletons only; empty otherwise).
    pub pids: Vec<u32>,
}

/// Parses the JSON array `bpftool -j prog show` prints.
pub fn parse_bpftool_progs(json: &str) -> Result<Vec<ProgInfo>> {
    let v: Value = serde_json::from_str(json).context("bpftool -j prog show: not JSON")?;
    let arr = v
        .as_array()
        .context("bpftool -j prog show: not a JSON array")?;
    arr.iter()
        .map(|p| {
            Ok(ProgInfo {
                id: p["id"].as_u64().context("a program without id")?,
                kind: p["type"].as_str().unwrap_or("").to_owned(),
                name: p["name"].as_str().unwrap_or("").to_owned(),
                run_time_ns: p["run_time_ns"].as_u64().unwrap_or(0),
                run_cnt: p["run_cnt"].as_u64().unwrap_or(0),
                pids: p["pids"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x["pid"].as_u64())
                            .map(|x| x as u32)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Which kfree_skb hook a program runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hook {
    /// The classic tracepoint skb:kfree_skb: the kernel builds a trace record
    /// per event, then calls the program with it.
    Tracepoint,
    /// raw_tracepoint:kfree_skb: the program gets the tracepoint's arguments.
    RawTp,
}

impl Hook {
    pub fn label(self) -> &'static str {
        match self {
            Hook::Tracepoint => "tracepoint",
            Hook::RawTp => "raw_tp",
        }
    }

    /// The hook of a program of this `bpftool prog show` type, if a kfree_skb one.
    pub fn of_prog_type(kind: &str) -> Option<Hook> {
        match kind {
            "tracepoint" => Some(Hook::Tracepoint),
            "raw_tracepoint" => Some(Hook::RawTp),
            _ => None,
        }
    }
}

/// The kfree_skb hook netdrop names in its `netdrop: watching (A, B, ...); ...`
/// line: `raw_tracepoint:kfree_skb` or `skb:kfree_skb`.
pub fn watching_kfree_hook(line: &str) -> Option<Hook> {
    let (_, rest) = line.split_once("watching (")?;
    let (list, _) = rest.split_once(')')?;
    list.split(',').find_map(|h| match h.trim() {
        "raw_tracepoint:kfree_skb" => Some(Hook::RawTp),
        "skb:kfree_skb" => Some(Hook::Tracepoint),
        _ => None,
    })
}

/// The name netdrop's kfree_skb programs start with, as bpftool shows them:
/// `netdrop_kfree_skb` (tracepoint) and `netdrop_kfree_skb_raw` (raw
/// tracepoint), or both cut to the kernel's 15 characters when bpftool finds
/// no BTF name.
pub const NETDROP_KFREE_PROG: &str = "netdrop_kfree_s";

/// The tracer's programs on kfree_skb: held by `pid` (bpftool's `pids`, or
/// else the ids found in the tracer's `/proc/PID/fdinfo`, `owned`), of type
/// tracepoint or raw_tracepoint, and, when `name_prefix` is given, with a name
/// starting with it.
pub fn tracer_progs<'a>(
    progs: &'a [ProgInfo],
    pid: u32,
    owned: &BTreeSet<u64>,
    name_prefix: Option<&str>,
) -> Vec<&'a ProgInfo> {
    progs
        .iter()
        .filter(|p| p.pids.contains(&pid) || owned.contains(&p.id))
        .filter(|p| Hook::of_prog_type(&p.kind).is_some())
        .filter(|p| name_prefix.is_none_or(|n| p.name.starts_with(n)))
        .collect()
}

/// `key:\tvalue` fields of a `/proc/PID/fdinfo/FD` file (or of /proc/PID/status).
pub fn parse_colon_fields(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// run_time_ns and run_cnt of a BPF program's fdinfo; None for other descriptors.
pub fn fdinfo_prog_stats(text: &str) -> Option<(u64, u64)> {
    let f = parse_colon_fields(text);
    f.get("prog_type")?;
    let n = |k: &str| f.get(k).and_then(|v| v.parse().ok());
    Some((n("run_time_ns")?, n("run_cnt")?))
}

/// The program id in a fdinfo (programs and links have one), if any.
pub fn fdinfo_prog_id(text: &str) -> Option<u64> {
    parse_colon_fields(text).get("prog_id")?.parse().ok()
}

/// utime + stime, in clock ticks, from `/proc/PID/stat`. The command name
/// (field 2) may hold spaces and parentheses: fields are counted after the last ')'.
pub fn parse_stat_cpu_ticks(stat: &str) -> Result<u64> {
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("/proc/PID/stat: no ')'")?;
    // rest: " S ppid ..."; field 3 (state) is index 0, utime (14) is 11, stime (15) is 12.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| -> Result<u64> {
        f.get(i)
            .with_context(|| format!("/proc/PID/stat: only {} fields", f.len() + 2))?
            .parse()
            .context("/proc/PID/stat: a CPU time is not a number")
    };
    Ok(get(11)? + get(12)?)
}

/// A `/proc/PID/status` size field such as `VmHWM:   12345 kB`, in KiB.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    let v = parse_colon_fields(status).remove(key)?;
    v.split_whitespace().next()?.parse().ok()
}

/// The value of enumerator `name` of `enum enum_name` in the raw output of
/// `bpftool btf dump file /sys/kernel/btf/vmlinux`:
///
/// ```text
/// [12211] ENUM 'skb_drop_reason' encoding=UNSIGNED size=4 vlen=130
///         'SKB_NOT_DROPPED_YET' val=0
/// ```
pub fn btf_enum_value(dump: &str, enum_name: &str, name: &str) -> Option<u64> {
    let head = format!("'{enum_name}'");
    let want = format!("'{name}'");
    let mut lines = dump.lines();
    while let Some(l) = lines.next() {
        let mut w = l.split_whitespace();
        let _id = w.next();
        let is_enum = matches!(w.next(), Some("ENUM" | "ENUM64"));
        if !(is_enum && w.next() == Some(head.as_str())) {
            continue;
        }
        for m in lines.by_ref() {
            if !m.starts_with(char::is_whitespace) {
                break;
            }
            let mut mw = m.split_whitespace();
            if mw.next() == Some(want.as_str()) {
                return mw.next()?.strip_prefix("val=")?.parse().ok();
            }
        }
        return None;
    }
    None
}

/// bpftrace's printed count map, `@[KEY]: N` lines (other lines ignored), by key.
pub fn parse_bpftrace_map(out: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in out.lines() {
        let Some(rest) = l.trim().strip_prefix("@[") else {
            continue;
        };
        let Some((key, n)) = rest.rsplit_once("]:") else {
            continue;
        };
        if let Ok(n) = n.trim().parse::<u64>() {
            *m.entry(key.trim().to_owned()).or_insert(0) += n;
        }
    }
    m
}

/// What bpftrace counted for reason `number` (also found under the enumerator's
/// name, should a bpftrace print names), and over all reasons.
pub fn bpftrace_counts(map: &BTreeMap<String, u64>, number: u64, name: &str) -> (u64, u64) {
    let short = name.strip_prefix("SKB_DROP_REASON_").unwrap_or(name);
    let mine = map
        .iter()
        .filter(|(k, _)| {
            k.parse::<u64>().ok() == Some(number) || k.as_str() == name || k.as_str() == short
        })
        .map(|(_, n)| n)
        .sum();
    (mine, map.values().sum())
}

/// The last JSON line of netdrop's output whose "type" is `ty` (e.g. "summary").
pub fn last_line_of_type(text: &str, ty: &str) -> Option<Value> {
    text.lines()
        .rev()
        .filter(|l| is_line_of_type(l, ty))
        .find_map(|l| serde_json::from_str(l).ok())
}

/// Whether a JSON line looks like `{"type":TY,...}` (cheap: no parsing).
pub fn is_line_of_type(line: &str, ty: &str) -> bool {
    let needle = format!("\"type\":\"{ty}\"");
    line.trim_start().starts_with('{') && line.contains(&needle)
}

/// The counts the benchmark takes from netdrop's summary (or tick) line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetdropCounts {
    /// `reasons.NO_SOCKET`: the storm's drops (and a few others of the host).
    pub no_socket: u64,
    pub total_drops: u64,
    /// Detail events read from the ring buffer.
    pub events_read: Option<u64>,
    /// Detail events the in-kernel event limit held back (newer netdrop only).
    pub sampled: Option<u64>,
    pub lost: Option<u64>,
}

pub fn netdrop_counts(v: &Value) -> NetdropCounts {
    NetdropCounts {
        no_socket: v["reasons"]["NO_SOCKET"].as_u64().unwrap_or(0),
        total_drops: v["total_drops"].as_u64().unwrap_or(0),
        events_read: v["events_read"].as_u64(),
        sampled: v["sampled_events"].as_u64(),
        lost: v["lost_events"].as_u64(),
    }
}

pub const REGION_BEGIN: &str = "<!-- bench:begin -->";
pub const REGION_END: &str = "<!-- bench:end -->";

/// `existing` with the text between the region markers replaced by `body`
/// (hand-written text around it survives); without markers, the region is
/// appended. A new file (None) is `title`, then the region.
pub fn replace_region(existing: Option<&str>, title: &str, body: &str) -> Result<String> {
    let region = format!("{REGION_BEGIN}\n{}\n{REGION_END}", body.trim_end());
    let Some(text) = existing else {
        return Ok(format!("{title}\n\n{region}\n"));
    };
    match (text.find(REGION_BEGIN), text.find(REGION_END)) {
        (Some(b), Some(e)) if b < e => Ok(format!(
            "{}{region}{}",
            &text[..b],
            &text[e + REGION_END.len()..]
        )),
        (None, None) => Ok(format!("{}\n\n{region}\n", text.trim_end())),
        _ => bail!("the file has an unmatched or misordered {REGION_BEGIN} / {REGION_END} marker"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BPFTOOL: &str = r#"[{"id":4501,"type":"tracepoint","name":"kfree_skb","tag":"bb88","gpl_compatible":true,"run_time_ns":2000,"run_cnt":40,"loaded_at":1,"uid":0},
        {"id":4510,"type":"tracepoint","name":"netdrop_kfree_skb","run_time_ns":9000,"run_cnt":30,"pids":[{"pid":77,"comm":"netdrop"}]},
        {"id":4511,"type":"tracepoint","name":"netdrop_neigh_create","pids":[{"pid":77,"comm":"netdrop"}]},
        {"id":4513,"type":"kprobe","name":"netdrop_kfree_x","pids":[{"pid":77,"comm":"netdrop"}]}]"#;

    #[test]
    fn bpftool_progs_and_the_tracers_own() {
        let p = parse_bpftool_progs(BPFTOOL).unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(
            (p[0].run_time_ns, p[0].run_cnt, p[0].pids.len()),
            (2000, 40, 0)
        );
        assert_eq!((p[2].run_time_ns, p[2].run_cnt), (0, 0), "absent when 0");
        let none = BTreeSet::new();
        let nd = tracer_progs(&p, 77, &none, Some(NETDROP_KFREE_PROG));
        assert_eq!(nd.iter().map(|p| p.id).collect::<Vec<_>>(), vec![4510]);
        // Without bpftool's pids: ownership from the tracer's fdinfo.
        let owned = BTreeSet::from([4501]);
        let bt = tracer_progs(&p, 99, &owned, None);
        assert_eq!(bt.iter().map(|p| p.id).collect::<Vec<_>>(), vec![4501]);
        assert!(parse_bpftool_progs("{}").is_err());
        assert!(parse_bpftool_progs("nope").is_err());
    }

    #[test]
    fn netdrop_kfree_program_on_either_hook() {
        // The raw tracepoint's program (full BTF name, or cut to 15 characters
        // by the kernel) and the classic one; other programs of netdrop are not it.
        for (ty, name, hook) in [
            ("raw_tracepoint", "netdrop_kfree_skb_raw", Hook::RawTp),
            ("raw_tracepoint", "netdrop_kfree_s", Hook::RawTp),
            ("tracepoint", "netdrop_kfree_skb", Hook::Tracepoint),
            ("tracepoint", "netdrop_kfree_s", Hook::Tracepoint),
        ] {
            let json = format!(
                r#"[{{"id":1,"type":"{ty}","name":"{name}","run_time_ns":500,"run_cnt":10}},
                {{"id":2,"type":"tracepoint","name":"netdrop_neigh_create"}},
                {{"id":3,"type":"kprobe","name":"netdrop_kfree_x"}},
                {{"id":4,"type":"raw_tracepoint","name":"netdrop_kfree_s"}}]"#
            );
            let p = parse_bpftool_progs(&json).unwrap();
            let owned = BTreeSet::from([1, 2, 3]);
            let nd = tracer_progs(&p, 9, &owned, Some(NETDROP_KFREE_PROG));
            assert_eq!(nd.len(), 1, "{ty} {name}");
            assert_eq!(nd[0].id, 1);
            assert_eq!(Hook::of_prog_type(&nd[0].kind), Some(hook));
        }
        assert_eq!(Hook::of_prog_type("kprobe"), None);
    }

    #[test]
    fn the_kfree_hook_netdrop_attached() {
        let raw = "netdrop: watching (raw_tracepoint:kfree_skb, neigh:neigh_create, sock:inet_sock_set_state); Ctrl-C to stop";
        assert_eq!(watching_kfree_hook(raw), Some(Hook::RawTp));
        let tp = "netdrop: watching (skb:kfree_skb, neigh:neigh_create); Ctrl-C to stop";
        assert_eq!(watching_kfree_hook(tp), Some(Hook::Tracepoint));
        assert_eq!(
            watching_kfree_hook("netdrop: watching (neigh:neigh_create); Ctrl-C"),
            None
        );
        assert_eq!(watching_kfree_hook("netdrop: notice: skb:kfree_skb"), None);
        assert_eq!(
            watching_kfree_hook("netdrop: watching (skb:kfree_skb"),
            None
        );
        assert_eq!(
            (Hook::RawTp.label(), Hook::Tracepoint.label()),
            ("raw_tp", "tracepoint")
        );
    }

    #[test]
    fn fdinfo_of_programs_and_links() {
        let prog = "pos:\t0\nflags:\t02000002\nprog_type:\t5\nprog_jited:\t1\nprog_id:\t4505\nrun_time_ns:\t1234\nrun_cnt:\t10\n";
        assert_eq!(fdinfo_prog_stats(prog), Some((1234, 10)));
        assert_eq!(fdinfo_prog_id(prog), Some(4505));
        let link = "pos:\t0\nlink_type:\tperf\nlink_id:\t9\nprog_tag:\tabc\nprog_id:\t4510\n";
        assert_eq!(fdinfo_prog_stats(link), None);
        assert_eq!(fdinfo_prog_id(link), Some(4510));
        assert_eq!(fdinfo_prog_id("pos:\t0\nflags:\t0\n"), None);
    }

    #[test]
    fn proc_stat_and_status() {
        let stat = "4242 (my (odd) comm) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 3 0 99 1000 50";
        assert_eq!(parse_stat_cpu_ticks(stat).unwrap(), 287);
        assert!(parse_stat_cpu_ticks("4242 (x) S 1 2").is_err());
        assert!(parse_stat_cpu_ticks("no paren").is_err());
        let status =
            "Name:\tnetdrop\nVmPeak:\t  200000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t   11000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(12345));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(11000));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn btf_enum_values() {
        let dump = "[12210] STRUCT 'x' size=4 vlen=1\n\t'a' type_id=1 bits_offset=0\n\
            [12211] ENUM 'skb_drop_reason' encoding=UNSIGNED size=4 vlen=3\n\
            \t'SKB_NOT_DROPPED_YET' val=0\n\t'SKB_CONSUMED' val=1\n\t'SKB_DROP_REASON_NO_SOCKET' val=3\n\
            [12212] ENUM 'other' encoding=UNSIGNED size=4 vlen=1\n\t'SKB_DROP_REASON_X' val=9\n";
        let v = |n| btf_enum_value(dump, "skb_drop_reason", n);
        assert_eq!(v("SKB_DROP_REASON_NO_SOCKET"), Some(3));
        assert_eq!(v("SKB_CONSUMED"), Some(1));
        assert_eq!(v("SKB_DROP_REASON_X"), None, "belongs to another enum");
        assert_eq!(btf_enum_value(dump, "missing", "SKB_CONSUMED"), None);
    }

    #[test]
    fn bpftrace_map_output() {
        let out = "Attaching 1 probe...\n\n\n@[2]: 17\n@[3]: 431105\n@[SKB_DROP_REASON_NO_SOCKET]: 5\nnoise\n@[x]: y\n";
        let m = parse_bpftrace_map(out);
        assert_eq!(m.len(), 3);
        assert_eq!(m["3"], 431105);
        assert_eq!(
            bpftrace_counts(&m, 3, "SKB_DROP_REASON_NO_SOCKET"),
            (431110, 431127)
        );
        assert_eq!(bpftrace_counts(&BTreeMap::new(), 3, "X"), (0, 0));
    }

    #[test]
    fn netdrop_summary_lines() {
        let text = "{\"type\":\"drop\",\"reason\":\"NO_SOCKET\"}\n\
            {\"type\":\"tick\",\"reasons\":{\"NO_SOCKET\":5},\"total_drops\":5}\n\
            {\"type\":\"summary\",\"reasons\":{\"NO_SOCKET\":923009,\"X\":2},\"total_drops\":923011,\"lost_events\":4,\"sampled_events\":920005,\"events_read\":3000}\n\
            {\"type\":\"summ";
        let s = last_line_of_type(text, "summary").unwrap();
        let c = netdrop_counts(&s);
        assert_eq!(
            c,
            NetdropCounts {
                no_socket: 923009,
                total_drops: 923011,
                events_read: Some(3000),
                sampled: Some(920005),
                lost: Some(4),
            }
        );
        let t = netdrop_counts(&last_line_of_type(text, "tick").unwrap());
        assert_eq!((t.no_socket, t.sampled, t.lost), (5, None, None));
        assert!(last_line_of_type("{\"type\":\"drop\"}", "summary").is_none());
        assert!(is_line_of_type("{\"type\":\"tick\",\"a\":1}", "tick"));
        assert!(!is_line_of_type(
            "{\"type\":\"drop\",\"comm\":\"tick\"}",
            "tick"
        ));
    }

    #[test]
    fn markdown_region_replacement() {
        let fresh = replace_region(None, "# Benchmarks", "| a |").unwrap();
        assert_eq!(
            fresh,
            "# Benchmarks\n\n<!-- bench:begin -->\n| a |\n<!-- bench:end -->\n"
        );
        let edited = fresh.replace("# Benchmarks\n", "# Benchmarks\n\nHand text.\n")
            + "\n## Why\n\nMore hand text.\n";
        let again = replace_region(Some(&edited), "# ignored", "| b |\n").unwrap();
        assert_eq!(
            again,
            "# Benchmarks\n\nHand text.\n\n<!-- bench:begin -->\n| b |\n<!-- bench:end -->\n\n## Why\n\nMore hand text.\n"
        );
        let appended = replace_region(Some("# Old\n\ntext\n"), "# x", "| c |").unwrap();
        assert_eq!(
            appended,
            "# Old\n\ntext\n\n<!-- bench:begin -->\n| c |\n<!-- bench:end -->\n"
        );
        assert!(replace_region(Some("<!-- bench:end --> <!-- bench:begin -->"), "", "").is_err());
        assert!(replace_region(Some("<!-- bench:begin -->"), "", "").is_err());
    }
}
