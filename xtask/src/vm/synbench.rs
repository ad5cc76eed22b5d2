//! `cargo xtask vm-test --syn-bench [--kernel 6.12]`: the SYN hook's cost.
//!
//! netdrop's hook on `tcp_conn_request` runs on every SYN, not only on drops,
//! and a SYN flood is when accept queues overflow. The host's kernel refuses
//! fentry and kprobe programs, so this runs in ONE QEMU/TCG guest: the share
//! folder `target/vm/<kernel>-synbench/share` gets netdrop and `nd-synbench`
//! (static), and `xtask/vm/synbench.sh` as the guest's run script, which runs
//! nd-synbench once (see `netdrop_tests::synbench`). Its table goes into the
//! section "## The SYN hook's cost (guest, QEMU/TCG)" of BENCHMARKS.md, between
//! [`BEGIN`] and [`END`] (appended the first time; the rest of the file is kept).
//! TCG timings are not host timings: only the ratios within one run count.

use std::{fs, process::Command, time::Duration};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{TRIPLE, VmArgs, cache_dir, guest, initramfs, kernels, place};
use crate::root;

const RUN_SH: &str = include_str!("../../vm/synbench.sh");
pub const BEGIN: &str = "<!-- synbench:begin -->";
pub const END: &str = "<!-- synbench:end -->";
pub const HEADING: &str = "## The SYN hook's cost (guest, QEMU/TCG)";
/// nd-synbench's arguments: 3 s floods, 9 rounds over the 4 rows, one sender
/// thread (one busy vCPU of two: less exposed to the host's other load).
const SECONDS: u32 = 3;
const ROUNDS: u32 = 9;
const THREADS: u32 = 1;

pub fn run(args: &VmArgs) -> Result<()> {
    let id = match args.kernels.as_slice() {
        [k] if k == "all" => "6.12",
        [k] if k != "host" => kernels::line(k)?.id,
        _ => bail!("--syn-bench boots one guest: give one --kernel (5.10, 6.1, 6.12, 7.2)"),
    };
    if !crate::is_root() {
        bail!("vm-test needs root (9p share permissions): run it as root");
    }
    let cache = cache_dir();
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let kernel = kernels::ensure(&cache, kernels::line(id)?, args.refresh)?;
    let mut c = super::static_cargo("build");
    c.args([
        "-p",
        "netdrop",
        "-p",
        "netdrop-tests",
        "--bin",
        "netdrop",
        "--bin",
        "nd-synbench",
    ]);
    crate::status(c)?;
    let bins = crate::target_dir().join(TRIPLE).join("release");
    let dir = root().join("target/vm").join(format!("{id}-synbench"));
    let share = dir.join("share");
    let _ = fs::remove_dir_all(&share);
    fs::create_dir_all(share.join("bin"))?;
    fs::create_dir_all(share.join("res"))?;
    for b in ["netdrop", "nd-synbench"] {
        place(&bins.join(b), &share.join("bin").join(b))?;
    }
    fs::write(share.join("run.sh"), RUN_SH)?;
    fs::write(share.join("timeout"), format!("{}\n", args.test_timeout))?;
    fs::write(
        share.join("args"),
        format!("--seconds {SECONDS} --rounds {ROUNDS} --threads {THREADS}\n"),
    )?;
    let initrd = dir.join("initramfs.cpio");
    initramfs::build(&kernel, &initrd)?;
    let console = dir.join("console.log");
    eprintln!(
        "xtask: vm: booting {id} ({}) under QEMU/TCG for the SYN benchmark; console: {}",
        kernel.release,
        console.display()
    );
    let limit = Duration::from_secs(args.test_timeout + 300);
    let booted = guest::boot(&kernel, &initrd, &share, &console, limit);
    let res = share.join("res");
    let log = res.join("synbench.log");
    let rc = fs::read_to_string(res.join("results")).unwrap_or_default();
    if let Err(e) = booted {
        bail!(
            "{e:#} (console: {}, log: {})",
            console.display(),
            log.display()
        );
    }
    if rc.trim() != "synbench 0" {
        bail!(
            "nd-synbench failed in the guest ({}): {}",
            rc.trim(),
            fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let out = fs::read_to_string(res.join("synbench.out"))?;
    let release = fs::read_to_string(res.join("uname"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let when = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let section = section(&out, id, &release, &when)?;
    println!("{section}");
    let md = root().join("BENCHMARKS.md");
    let text = fs::read_to_string(&md).with_context(|| format!("reading {}", md.display()))?;
    fs::write(&md, replace_section(&text, &section)?)?;
    eprintln!("xtask: vm: SYN benchmark written to {}", md.display());
    Ok(())
}

/// The rows of nd-synbench's `JSON {...}` line: (key, ratio).
fn ratios(json: &Value) -> Vec<(String, f64)> {
    json["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["row"].as_str().unwrap_or("").to_string(),
                        r["ratio"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The range of a row's per-round ratios (`round_ratios`), if it has any.
fn ratio_range(json: &Value, key: &str) -> Option<(f64, f64)> {
    let rows = json["rows"].as_array()?;
    let row = rows.iter().find(|r| r["row"] == key)?;
    let v: Vec<f64> = row["round_ratios"]
        .as_array()?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let lo = v.iter().copied().reduce(f64::min)?;
    let hi = v.iter().copied().reduce(f64::max)?;
    Some((lo, hi))
}

/// Whether this run tells netdrop's two hooks apart: a sentence either way.
fn fentry_vs_kprobe(json: &Value) -> String {
    match (
        ratio_range(json, "netdrop_fentry"),
        ratio_range(json, "netdrop_kprobe"),
    ) {
        (Some((flo, fhi)), Some((klo, khi))) if flo <= khi && klo <= fhi => format!(
            "Their per-round ratios overlap (fentry {flo:.2}–{fhi:.2}, kprobe {klo:.2}–{khi:.2}): \
this run does not tell netdrop's fentry and kprobe hooks apart; it says what netdrop costs a SYN flood, not which hook is cheaper."
        ),
        (Some((flo, fhi)), Some((klo, khi))) => format!(
            "Their per-round ratios do not overlap (fentry {flo:.2}–{fhi:.2}, kprobe {klo:.2}–{khi:.2})."
        ),
        _ => String::new(),
    }
}

/// The section for BENCHMARKS.md (markers included) from nd-synbench's stdout.
pub fn section(out: &str, id: &str, release: &str, when: &str) -> Result<String> {
    let table: Vec<&str> = out.lines().filter(|l| l.starts_with('|')).collect();
    let json: Value = out
        .lines()
        .find_map(|l| l.strip_prefix("JSON "))
        .context("nd-synbench printed no JSON line")
        .and_then(|j| serde_json::from_str(j).context("nd-synbench's JSON line"))?;
    if table.len() < 3 {
        bail!("nd-synbench printed no table:\n{out}");
    }
    let r = ratios(&json);
    let pct = |k: &str| {
        r.iter()
            .find(|(key, _)| key == k)
            .map_or("?".to_string(), |(_, v)| format!("{:.0} %", v * 100.0))
    };
    let seconds = json["seconds"].as_f64().unwrap_or(0.0);
    let threads = json["threads"].as_u64().unwrap_or(0);
    let rounds = json["rows"][0]["floods"].as_array().map_or(0, Vec::len);
    Ok(format!(
        "{BEGIN}\n{HEADING}\n\n\
_Generated by `cargo xtask vm-test --syn-bench --kernel {id}` on {when}: one guest, kernel {release}, QEMU with software emulation (TCG), 2 vCPUs._\n\n\
netdrop's hook on `tcp_conn_request` runs on every SYN a listener receives, not only on drops, and a SYN flood is exactly when accept queues overflow. \
**TCG timings are not host timings: only the ratios within this one guest run count** (the host's kernel refuses fentry and kprobe programs, so this cannot be measured there). \
In this run, under a SYN flood at a full accept queue, the guest kept **{} of its untraced SYN rate with netdrop on fentry**, {} with netdrop on kprobe (`--no-fentry`), \
and {} with an empty fentry program (the floor any fentry tracer of that function pays). {}\n\n\
{}\n\n\
How it measures (`nd-synbench`, `netdrop_tests::synbench`): two network namespaces on a veth pair (198.18.6.0/24); the listener has backlog 1 and never accepts, \
and two real connections fill its accept queue, so every later SYN reaches `tcp_conn_request`, is refused there (no SYN-ACK, no RST) and counted in the listener \
namespace's `TcpExt: ListenOverflows`. Sender threads ({threads}) craft SYNs on raw sockets (varying source port and sequence number, `sendmmsg` batches of 64) \
for {seconds} s per flood, bounded by time and by a packet cap. The rate is the growth of ListenOverflows over the flood's seconds: SYNs the listener's namespace \
processed (here the sender is the bottleneck: veth hands each SYN to the listener's stack on the sending CPU, so the rate includes every cost of the SYN's \
processing, the hook's too). The rows alternate within each round (no tracer, empty fentry, netdrop fentry, netdrop kprobe; the order rotated by one each \
round), {rounds} rounds. Rates: median and range over the rounds. Ratios: each round's rate over the no-tracer rate of the same round, median and range over \
the rounds (the guest's speed drifts with the host's other load; a ratio within one round is less exposed to it than a ratio of medians). Each tracer is attached before its flood starts and detached after it; netdrop runs `watch -o json` and its `netdrop: watching (...)` line must name the \
row's hook. The empty program is `r0 = 0; exit`, BPF_PROG_TYPE_TRACING / BPF_TRACE_FENTRY on the BTF id of `tcp_conn_request`, attached with \
BPF_RAW_TRACEPOINT_OPEN.\n{END}",
        pct("netdrop_fentry"),
        pct("netdrop_kprobe"),
        pct("empty_fentry"),
        fentry_vs_kprobe(&json),
        table.join("\n"),
    ))
}

/// `text` with its synbench section replaced by `section` (which carries the
/// markers), or with `section` appended when it has none.
pub fn replace_section(text: &str, section: &str) -> Result<String> {
    match (text.find(BEGIN), text.find(END)) {
        (Some(b), Some(e)) if b < e => {
            Ok(format!("{}{section}{}", &text[..b], &text[e + END.len()..]))
        }
        (None, None) => Ok(format!("{}\n\n{section}\n", text.trim_end())),
        _ => bail!("BENCHMARKS.md has an unmatched or misordered {BEGIN} / {END} marker"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "| row | hook | rate | range | ratio |\n|---|---|---:|---:|---:|\n\
| no tracer | - | 100 | 90–110 | 1.000 |\n\
| netdrop watch (fentry) | fentry:tcp_conn_request | 80 | 70–90 | 0.800 |\n\
JSON {\"kernel\":\"6.12.9\",\"seconds\":5.0,\"threads\":2,\"rows\":[{\"row\":\"none\",\"ratio\":1.0,\"floods\":[{},{},{}]},{\"row\":\"netdrop_fentry\",\"ratio\":0.8,\"floods\":[{},{},{}]}]}\n";

    #[test]
    fn section_carries_the_table_and_the_ratios() {
        let s = section(OUT, "6.12", "6.12.9-amd64", "2026-01-01 00:00 UTC").unwrap();
        assert!(s.starts_with(BEGIN) && s.ends_with(END));
        assert!(s.contains(HEADING));
        assert!(
            s.contains("| netdrop watch (fentry) | fentry:tcp_conn_request | 80 | 70–90 | 0.800 |")
        );
        assert!(s.contains("**80 % of its untraced SYN rate with netdrop on fentry**"));
        assert!(
            s.contains("? with netdrop on kprobe"),
            "a missing row says so"
        );
        assert!(s.contains("3 rounds"));
        assert!(section("no table", "6.12", "", "").is_err());
        let j: Value = serde_json::from_str(
            r#"{"rows":[{"row":"netdrop_fentry","round_ratios":[0.7,0.8]},{"row":"netdrop_kprobe","round_ratios":[0.75,0.9]}]}"#,
        )
        .unwrap();
        assert!(fentry_vs_kprobe(&j).contains("does not tell"));
        let j: Value = serde_json::from_str(
            r#"{"rows":[{"row":"netdrop_fentry","round_ratios":[0.9,0.95]},{"row":"netdrop_kprobe","round_ratios":[0.6,0.7]}]}"#,
        )
        .unwrap();
        assert!(fentry_vs_kprobe(&j).contains("do not overlap"));
    }

    #[test]
    fn section_is_appended_then_replaced() {
        let doc = "# t\n\n<!-- bench:begin -->\nx\n<!-- bench:end -->\n";
        let one = replace_section(doc, &format!("{BEGIN}\nA\n{END}")).unwrap();
        assert_eq!(one, format!("{}\n\n{BEGIN}\nA\n{END}\n", doc.trim_end()));
        let two = replace_section(&format!("{one}tail\n"), &format!("{BEGIN}\nB\n{END}")).unwrap();
        assert!(two.contains("\nB\n") && !two.contains("\nA\n") && two.ends_with("tail\n"));
        assert!(two.contains("<!-- bench:begin -->\nx\n<!-- bench:end -->"));
        assert!(replace_section(&format!("{END}{BEGIN}"), "s").is_err());
    }
}
