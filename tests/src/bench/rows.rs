//! One row of the benchmark: a tracer (or none) attached once, then two fresh
//! storms back to back: the measured storm (`--seconds`) with
//! `kernel.bpf_stats_enabled` = 0, and a short stats storm (`--stats-seconds`)
//! with it set to 1. The statistics cost two clock reads per program run, on
//! every traced drop, so they would slow the storm they measure: rates, agent
//! CPU and counts come from storms without them, ns/drop from the stats storm
//! alone. The baseline (no program) runs only the measured storm.
//!
//! Measurements:
//!
//! - **hook**: which kfree_skb hook the tracer's program runs on: the classic
//!   tracepoint skb:kfree_skb or the raw tracepoint kfree_skb. Fixed for the
//!   empty programs and bpftrace (`tracepoint:skb:kfree_skb`); for netdrop, from
//!   its `netdrop: watching (...)` line (the raw tracepoint where the kernel
//!   allows, the tracepoint with `--no-raw-tracepoint` or as the fallback).
//! - **ns/drop**: the growth of `run_time_ns` over that of `run_cnt` of the
//!   tracer's kfree_skb program(s) across the stats storm (read right before
//!   it and right after it; both grow only while `kernel.bpf_stats_enabled` is
//!   1, raw tracepoint programs alike). Programs come from
//!   `bpftool -j prog show`, owned by the tracer (bpftool's `pids` where it
//!   has them, else the program ids in the tracer's /proc/PID/fdinfo), of type
//!   tracepoint or raw_tracepoint; for netdrop named `netdrop_kfree_s*` (its
//!   `netdrop_kfree_skb` or `netdrop_kfree_skb_raw`). The empty programs' come
//!   from their own fdinfo.
//! - **storm rate**: nd-storm's datagrams per second with the tracer attached,
//!   of the measured storm (statistics off).
//! - **agent CPU %**: utime+stime of the tracer process (all threads) over the
//!   measured storm (from nd-storm's `storming` line to its exit), divided by
//!   its wall time: % of one core. In-kernel program time is charged to
//!   whichever task the drop happened on (the storm), not here.
//! - **peak RSS**: VmHWM of the tracer process, read after both storms, before
//!   it stops.
//! - **counts**: the kernel's (`Udp: NoPorts` of each storm's namespace over
//!   its life: the storm's datagrams and its neighbour warm-up), summed over
//!   both storms, against the tracer's NO_SOCKET count over its whole life,
//!   which spans both (netdrop's `reasons.NO_SOCKET`, bpftrace's map entry for
//!   the number BTF gives SKB_DROP_REASON_NO_SOCKET), and its count over all
//!   reasons (other drops on the host add to those). The empty programs keep no
//!   count (their run_cnt grows only while the statistics are on).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::StatsOn;
use super::emptyprog::EmptyProg;
use super::parse::{self, Hook, NetdropCounts};
use super::procs::{self, Proc, Storm};
use crate::cmd;
use crate::storm;

/// What watches the storm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracer {
    Baseline,
    /// The empty program on the classic tracepoint skb:kfree_skb.
    EmptyTp,
    /// The empty program on the raw tracepoint kfree_skb.
    EmptyRaw,
    Bpftrace,
    /// `netdrop watch -o json` (its default hook: the raw tracepoint where allowed).
    Watch,
    /// `netdrop watch -o json --no-raw-tracepoint`.
    WatchTp,
    Record,
}

impl Tracer {
    /// The rows, in table order (and the order of each round).
    pub const ALL: [Tracer; 7] = [
        Tracer::Baseline,
        Tracer::EmptyTp,
        Tracer::EmptyRaw,
        Tracer::Bpftrace,
        Tracer::Watch,
        Tracer::WatchTp,
        Tracer::Record,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Tracer::Baseline => "baseline (no tracer)",
            Tracer::EmptyTp => "empty tracepoint program",
            Tracer::EmptyRaw => "empty raw_tp program",
            Tracer::Bpftrace => "bpftrace",
            Tracer::Watch => "netdrop watch",
            Tracer::WatchTp => "netdrop watch (tracepoint)",
            Tracer::Record => "netdrop record",
        }
    }

    /// The hook of tracers that have only one (netdrop's is read at attach).
    pub fn fixed_hook(self) -> Option<Hook> {
        match self {
            Tracer::EmptyTp | Tracer::Bpftrace | Tracer::WatchTp => Some(Hook::Tracepoint),
            Tracer::EmptyRaw => Some(Hook::RawTp),
            Tracer::Baseline | Tracer::Watch | Tracer::Record => None,
        }
    }

    pub fn is_netdrop(self) -> bool {
        matches!(self, Tracer::Watch | Tracer::WatchTp | Tracer::Record)
    }

    /// netdrop as it runs by default (the rows the targets are judged on).
    pub fn is_default_netdrop(self) -> bool {
        matches!(self, Tracer::Watch | Tracer::Record)
    }

    /// The empty program on `hook`.
    pub fn empty_on(hook: Hook) -> Tracer {
        match hook {
            Hook::Tracepoint => Tracer::EmptyTp,
            Hook::RawTp => Tracer::EmptyRaw,
        }
    }
}

/// The bpftrace program: a count per drop reason.
pub const BPFTRACE_PROG: &str = "tracepoint:skb:kfree_skb { @[args->reason] = count(); }";
/// Printed by netdrop once its hooks are attached: `netdrop: watching (HOOK, ...)`.
const NETDROP_READY: &str = "netdrop: watching";
/// The JSON output of `netdrop watch` is truncated when it grows past this
/// (only its last line, the summary, is read).
const WATCH_FILE_MAX: u64 = 64 << 20;

/// Everything a row needs.
pub struct Ctx {
    pub netdrop: PathBuf,
    pub storm_bin: PathBuf,
    pub seconds: f64,
    /// Seconds of the stats storm (ns/drop) after the measured one.
    pub stats_seconds: f64,
    pub threads: Option<usize>,
    pub tracefs: PathBuf,
    /// SKB_DROP_REASON_NO_SOCKET's number on this kernel (from BTF).
    pub no_socket: Option<u64>,
    /// A directory on tmpfs for netdrop's outputs.
    pub tmp: PathBuf,
}

/// One row's results; `None` where it does not apply or failed (shown as "-").
#[derive(Debug, Clone)]
pub struct Row {
    pub tracer: Tracer,
    /// The kfree_skb hook its program runs on (None: no tracer, or unknown).
    pub hook: Option<Hook>,
    /// Why the row is incomplete ("bpftrace not installed", an error).
    pub note: Option<String>,
    /// The measured storm (statistics off): rate, CPU.
    pub storm: Option<storm::Report>,
    /// The stats storm after it (statistics on): ns/drop.
    pub stats_storm: Option<storm::Report>,
    pub ns_per_drop: Option<f64>,
    pub run_cnt: Option<u64>,
    pub cpu_pct: Option<f64>,
    pub peak_rss_kib: Option<u64>,
    /// The tracer's NO_SOCKET count (empty program: run_cnt).
    pub counted: Option<u64>,
    /// The tracer's count over all reasons.
    pub counted_all: Option<u64>,
    /// netdrop's detail events: read by the agent, held back in the kernel, lost.
    pub events: Option<NetdropCounts>,
    pub file_bytes: Option<u64>,
}

impl Row {
    pub fn new(tracer: Tracer) -> Row {
        Row {
            tracer,
            hook: tracer.fixed_hook(),
            note: None,
            storm: None,
            stats_storm: None,
            ns_per_drop: None,
            run_cnt: None,
            cpu_pct: None,
            peak_rss_kib: None,
            counted: None,
            counted_all: None,
            events: None,
            file_bytes: None,
        }
    }

    /// The kernel's count of the storms' drops (storms and warm-ups), both
    /// storms: the tracer is attached across the two.
    pub fn kernel_count(&self) -> Option<u64> {
        let n = |s: &storm::Report| s.kernel_drops + s.setup_drops;
        let first = n(self.storm.as_ref()?);
        match (self.tracer, &self.stats_storm) {
            (Tracer::Baseline, _) => Some(first),
            (_, Some(s)) => Some(first + n(s)),
            (_, None) => None,
        }
    }

    /// Whether the tracer's NO_SOCKET count equals the kernel's.
    pub fn exact(&self) -> Option<bool> {
        Some(self.counted? == self.kernel_count()?)
    }
}

/// A started tracer.
enum Agent {
    None,
    Empty(EmptyProg),
    Bpftrace {
        proc: Proc,
        stdout: std::thread::JoinHandle<String>,
    },
    Watch {
        proc: Proc,
        out: PathBuf,
        trunc: File,
    },
    Record {
        proc: Proc,
        file: PathBuf,
    },
}

impl Agent {
    fn pid(&self) -> Option<u32> {
        match self {
            Agent::Bpftrace { proc, .. }
            | Agent::Watch { proc, .. }
            | Agent::Record { proc, .. } => Some(proc.pid()),
            Agent::None | Agent::Empty(_) => None,
        }
    }
}

/// Runs one row. A failure ends up in the row's note (Ctrl-C is returned).
pub fn run(ctx: &Ctx, tracer: Tracer) -> Result<Row> {
    let mut row = Row::new(tracer);
    if let Err(e) = run_inner(ctx, &mut row) {
        procs::check_interrupted()?;
        eprintln!("nd-bench: {}: {e:#}", tracer.label());
        if row.note.is_none() {
            row.note = Some(format!("failed: {e:#}"));
        }
    }
    Ok(row)
}

fn run_inner(ctx: &Ctx, row: &mut Row) -> Result<()> {
    let agent = start(ctx, row)?;
    if matches!(agent, Agent::None) && row.tracer != Tracer::Baseline {
        return Ok(()); // not installed: noted
    }
    let pid = agent.pid();
    // (1) The measured storm, statistics off.
    let storm = Storm::start(&ctx.storm_bin, ctx.seconds, ctx.threads)?;
    let (cpu0, t0) = (pid.map(procs::cpu_seconds).transpose()?, Instant::now());
    let report = storm.finish(Duration::from_millis(500), || truncate(&agent))?;
    let wall = t0.elapsed().as_secs_f64();
    if let (Some(pid), Some(cpu0)) = (pid, cpu0) {
        row.cpu_pct = Some((procs::cpu_seconds(pid)? - cpu0) / wall * 100.0);
    }
    row.storm = Some(report);
    if matches!(agent, Agent::None) {
        return Ok(());
    }
    // (2) The stats storm: in-kernel cost, statistics on for it alone.
    let on = StatsOn::enable()?;
    let (ns0, cnt0) = cost(row, &agent)?;
    let storm = Storm::start(&ctx.storm_bin, ctx.stats_seconds, ctx.threads)?;
    let report = storm.finish(Duration::from_millis(500), || truncate(&agent))?;
    let (ns1, cnt1) = cost(row, &agent)?;
    on.disable()?;
    row.stats_storm = Some(report);
    set_cost(row, ns1.saturating_sub(ns0), cnt1.saturating_sub(cnt0));
    if let Some(pid) = pid {
        row.peak_rss_kib = Some(procs::status_kib(pid, "VmHWM")?);
    }
    stop(ctx, agent, row)
}

/// Keeps `netdrop watch`'s output file under [`WATCH_FILE_MAX`].
fn truncate(agent: &Agent) -> Result<()> {
    if let Agent::Watch { trunc, .. } = agent
        && trunc.metadata().map(|m| m.len()).unwrap_or(0) > WATCH_FILE_MAX
    {
        trunc.set_len(0).context("truncating netdrop's output")?;
    }
    Ok(())
}

/// The tracer's kfree_skb programs' cumulative (run_time_ns, run_cnt) now.
fn cost(row: &mut Row, agent: &Agent) -> Result<(u64, u64)> {
    match agent {
        Agent::None => Ok((0, 0)),
        Agent::Empty(p) => p.stats(),
        Agent::Bpftrace { proc, .. } => prog_cost(row, proc.pid(), None),
        Agent::Watch { proc, .. } | Agent::Record { proc, .. } => {
            prog_cost(row, proc.pid(), Some(parse::NETDROP_KFREE_PROG))
        }
    }
}

fn set_cost(row: &mut Row, run_time_ns: u64, run_cnt: u64) {
    row.run_cnt = Some(run_cnt);
    if run_cnt > 0 {
        row.ns_per_drop = Some(run_time_ns as f64 / run_cnt as f64);
    }
}

/// Sums run_time_ns and run_cnt over the tracer's kfree_skb programs; notes a
/// program type that disagrees with the hook the tracer said it attached.
fn prog_cost(row: &mut Row, pid: u32, name_prefix: Option<&str>) -> Result<(u64, u64)> {
    let out = cmd::output(
        Command::new("bpftool").args(["-j", "prog", "show"]),
        cmd::CMD_TIMEOUT,
    )
    .context("running bpftool (Debian: apt-get install bpftool)")?;
    if !out.status.success() {
        bail!("bpftool -j prog show: {}", out.stderr.trim());
    }
    let progs = parse::parse_bpftool_progs(&out.stdout)?;
    let owned = procs::owned_prog_ids(pid);
    let mine = parse::tracer_progs(&progs, pid, &owned, name_prefix);
    if mine.is_empty() {
        bail!("no (raw_)tracepoint program of pid {pid} found in bpftool prog show");
    }
    if let Some(h) = row.hook
        && let Some(p) = mine
            .iter()
            .find(|p| parse::Hook::of_prog_type(&p.kind) != Some(h))
    {
        row.note = Some(format!(
            "its program {} ({}) is of type {}, not the {} hook it reported",
            p.id,
            p.name,
            p.kind,
            h.label()
        ));
    }
    let ns = mine.iter().map(|p| p.run_time_ns).sum();
    let cnt = mine.iter().map(|p| p.run_cnt).sum();
    Ok((ns, cnt))
}

/// Starts the row's tracer and waits until it is attached.
fn start(ctx: &Ctx, row: &mut Row) -> Result<Agent> {
    match row.tracer {
        Tracer::Baseline => Ok(Agent::None),
        Tracer::EmptyTp => Ok(Agent::Empty(EmptyProg::attach(
            &ctx.tracefs,
            Hook::Tracepoint,
        )?)),
        Tracer::EmptyRaw => Ok(Agent::Empty(EmptyProg::attach(&ctx.tracefs, Hook::RawTp)?)),
        Tracer::Bpftrace => start_bpftrace(row),
        Tracer::Watch | Tracer::WatchTp => {
            let out = ctx.tmp.join("watch.jsonl");
            let _ = std::fs::remove_file(&out);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            let trunc = file.try_clone()?;
            let mut cmd = Command::new(&ctx.netdrop);
            cmd.args(["watch", "-o", "json"]).stdout(file);
            if row.tracer == Tracer::WatchTp {
                cmd.arg("--no-raw-tracepoint");
            }
            let (proc, hook) = start_netdrop(cmd, row.tracer.label())?;
            row.hook = hook;
            Ok(Agent::Watch { proc, out, trunc })
        }
        Tracer::Record => {
            let file = ctx.tmp.join("bench.ndr");
            let _ = std::fs::remove_file(&file);
            let mut cmd = Command::new(&ctx.netdrop);
            cmd.args(["record", "-o"]).arg(&file).stdout(Stdio::null());
            let (proc, hook) = start_netdrop(cmd, "netdrop record")?;
            row.hook = hook;
            Ok(Agent::Record { proc, file })
        }
    }
}

/// Spawns netdrop (stderr piped) and waits for `netdrop: watching (...)`;
/// returns it and the kfree_skb hook that line names.
pub fn start_netdrop(mut cmd: Command, what: &str) -> Result<(Proc, Option<Hook>)> {
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    let mut proc = Proc::spawn(cmd, what)?;
    let lines = procs::lines(proc.child.stderr.take().expect("piped"));
    let mut seen = Vec::new();
    let watching = procs::wait_for_line(&lines, NETDROP_READY, Duration::from_secs(60), &mut seen)
        .with_context(|| format!("{what} did not attach: {}", seen.join("\n")))?;
    let hook = parse::watching_kfree_hook(&watching);
    if hook.is_none() {
        eprintln!("nd-bench: warning: {what}: no kfree_skb hook in {watching:?}");
    }
    // Keep reading its stderr (progress lines) so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((proc, hook))
}

fn start_bpftrace(row: &mut Row) -> Result<Agent> {
    let mut cmd = Command::new("bpftrace");
    cmd.args(["-e", BPFTRACE_PROG])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut proc = match Proc::spawn(cmd, "bpftrace") {
        Err(e) if is_not_found(&e) => {
            row.note = Some("bpftrace not installed".into());
            return Ok(Agent::None);
        }
        r => r?,
    };
    // Its stderr (a harmless RLIMIT_MEMLOCK warning on some systems) is drained.
    let _err = procs::drain(proc.child.stderr.take().expect("piped"));
    let (head_tx, head_rx) = std::sync::mpsc::channel();
    let mut out = proc.child.stdout.take().expect("piped");
    // Collect stdout (the map comes at the end); forward the first line.
    let stdout = std::thread::spawn(move || {
        use std::io::Read;
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        let mut told = false;
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            if !told && all.contains(&b'\n') {
                told = true;
                let _ = head_tx.send(());
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    // "Attaching 1 probe..." first, then its program appears among its descriptors.
    let end = Instant::now() + Duration::from_secs(60);
    let mut headed = false;
    loop {
        procs::check_interrupted()?;
        proc.check_running()?;
        if Instant::now() > end {
            bail!("bpftrace did not attach within 60 s");
        }
        headed |= head_rx.try_recv().is_ok();
        if headed && !procs::owned_prog_ids(proc.pid()).is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The program exists; give bpftrace a moment to attach it.
    procs::sleep(Duration::from_secs(1))?;
    Ok(Agent::Bpftrace { proc, stdout })
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    })
}

/// Stops the tracer (SIGINT after a short settle) and reads its counts.
fn stop(ctx: &Ctx, agent: Agent, row: &mut Row) -> Result<()> {
    procs::sleep(Duration::from_millis(500))?;
    match agent {
        Agent::None | Agent::Empty(_) => Ok(()),
        Agent::Bpftrace { mut proc, stdout } => {
            proc.interrupt(Duration::from_secs(60))?;
            let out = stdout.join().unwrap_or_default();
            let map = parse::parse_bpftrace_map(&out);
            let no_socket = ctx
                .no_socket
                .context("SKB_DROP_REASON_NO_SOCKET's number is unknown (bpftool btf dump)")?;
            let (mine, all) = parse::bpftrace_counts(&map, no_socket, "SKB_DROP_REASON_NO_SOCKET");
            row.counted = Some(mine);
            row.counted_all = Some(all);
            Ok(())
        }
        Agent::Watch { mut proc, out, .. } => {
            let st = proc.interrupt(Duration::from_secs(60))?;
            let text = std::fs::read_to_string(&out)
                .with_context(|| format!("reading {}", out.display()))?;
            let _ = std::fs::remove_file(&out);
            let summary = parse::last_line_of_type(&text, "summary")
                .with_context(|| format!("netdrop watch ({st}) printed no summary line"))?;
            set_netdrop_counts(row, &summary);
            Ok(())
        }
        Agent::Record { mut proc, file } => {
            let st = proc.interrupt(Duration::from_secs(60))?;
            if !st.success() {
                bail!("netdrop record exited with {st}");
            }
            row.file_bytes = Some(std::fs::metadata(&file)?.len());
            let summary = replay_summary(&ctx.netdrop, &file);
            let _ = std::fs::remove_file(&file);
            set_netdrop_counts(row, &summary?);
            Ok(())
        }
    }
}

fn set_netdrop_counts(row: &mut Row, summary: &serde_json::Value) {
    let c = parse::netdrop_counts(summary);
    row.counted = Some(c.no_socket);
    row.counted_all = Some(c.total_drops);
    row.events = Some(c);
}

/// `netdrop replay FILE -o json`: its summary line (the drop lines before it
/// are read and thrown away as they come).
fn replay_summary(netdrop: &Path, file: &Path) -> Result<serde_json::Value> {
    let mut cmd = Command::new(netdrop);
    cmd.args(["replay", "-o", "json"])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut proc = Proc::spawn(cmd, "netdrop replay")?;
    let err = procs::drain(proc.child.stderr.take().expect("piped"));
    let last: Arc<Mutex<Option<String>>> = Arc::default();
    let keep = Arc::clone(&last);
    let lines = procs::lines(proc.child.stdout.take().expect("piped"));
    let reader = std::thread::spawn(move || {
        for l in lines {
            if parse::is_line_of_type(&l, "summary") {
                *keep.lock().unwrap() = Some(l);
            }
        }
    });
    let st = proc.wait(Duration::from_secs(300))?;
    let _ = reader.join();
    let line = last.lock().unwrap().take();
    let line = line.with_context(|| {
        format!(
            "netdrop replay ({st}) printed no summary: {}",
            err.join().unwrap_or_default().trim()
        )
    })?;
    serde_json::from_str(&line).context("netdrop replay's summary is not JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storm::{Report, Via};

    fn storm(kernel_drops: u64, setup_drops: u64) -> Report {
        Report {
            sent: 0,
            seconds: 1.0,
            rate: 1.0,
            kernel_drops,
            setup_drops,
            threads: 2,
            via: Via::Veth,
        }
    }

    #[test]
    fn kernel_count_spans_both_storms_of_a_traced_row() {
        let mut r = Row::new(Tracer::Watch);
        r.storm = Some(storm(100, 1));
        assert_eq!(r.kernel_count(), None, "the stats storm is missing");
        r.stats_storm = Some(storm(30, 1));
        r.counted = Some(132);
        assert_eq!((r.kernel_count(), r.exact()), (Some(132), Some(true)));
        r.counted = Some(101);
        assert_eq!(r.exact(), Some(false), "only the measured storm counted");
        let mut b = Row::new(Tracer::Baseline);
        b.storm = Some(storm(100, 1));
        assert_eq!(b.kernel_count(), Some(101));
    }
}
