//! One row of the benchmark: a tracer (or none) attached, one fresh storm of
//! the same length, and what it cost and counted.
//!
//! Measurements, all over the storm window (from nd-storm's `storming` line to
//! its exit):
//!
//! - **hook**: which kfree_skb hook the tracer's program runs on: the classic
//!   tracepoint skb:kfree_skb or the raw tracepoint kfree_skb. Fixed for the
//!   empty programs and bpftrace (`tracepoint:skb:kfree_skb`); for netdrop, from
//!   its `netdrop: watching (...)` line (the raw tracepoint where the kernel
//!   allows, the tracepoint with `--no-raw-tracepoint` or as the fallback).
//! - **ns/drop**: `run_time_ns / run_cnt` of the tracer's kfree_skb
//!   program(s), which the kernel accumulates while `kernel.bpf_stats_enabled`
//!   is 1 (set for the whole benchmark; raw tracepoint programs are counted
//!   alike). Read right after the storm, before the tracer stops. Programs come
//!   from `bpftool -j prog show`, owned by the tracer (bpftool's `pids` where it
//!   has them, else the program ids in the tracer's /proc/PID/fdinfo), of type
//!   tracepoint or raw_tracepoint; for netdrop named `netdrop_kfree_s*` (its
//!   `netdrop_kfree_skb` or `netdrop_kfree_skb_raw`). The empty programs' come
//!   from their own fdinfo.
//! - **storm rate**: nd-storm's datagrams per second with the tracer attached.
//! - **agent CPU %**: utime+stime of the tracer process (all threads) over the
//!   window, divided by the window's wall time: % of one core. In-kernel program
//!   time is charged to whichever task the drop happened on (the storm), not here.
//! - **peak RSS**: VmHWM of the tracer process, read before it stops.
//! - **counts**: the kernel's (`Udp: NoPorts` of the storm's namespace over its
//!   life: the storm's datagrams and its neighbour warm-up) against the tracer's
//!   NO_SOCKET count (netdrop's `reasons.NO_SOCKET`, bpftrace's map entry for the
//!   number BTF gives SKB_DROP_REASON_NO_SOCKET, the empty program's run_cnt),
//!   and its count over all reasons (other drops on the host add to those).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

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
    pub storm: Option<storm::Report>,
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

    /// The kernel's count of the storm's drops (storm and warm-up).
    pub fn kernel_count(&self) -> Option<u64> {
        self.storm.as_ref().map(|s| s.kernel_drops + s.setup_drops)
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
    let storm = Storm::start(&ctx.storm_bin, ctx.seconds, ctx.threads)?;
    let (cpu0, t0) = (pid.map(procs::cpu_seconds).transpose()?, Instant::now());
    let report = storm.finish(Duration::from_millis(500), || {
        if let Agent::Watch { trunc, .. } = &agent
            && trunc.metadata().map(|m| m.len()).unwrap_or(0) > WATCH_FILE_MAX
        {
            trunc.set_len(0).context("truncating netdrop's output")?;
        }
        Ok(())
    })?;
    let wall = t0.elapsed().as_secs_f64();
    if let (Some(pid), Some(cpu0)) = (pid, cpu0) {
        row.cpu_pct = Some((procs::cpu_seconds(pid)? - cpu0) / wall * 100.0);
        row.peak_rss_kib = Some(procs::status_kib(pid, "VmHWM")?);
    }
    row.storm = Some(report);
    // In-kernel cost, before the tracer stops.
    match &agent {
        Agent::None => {}
        Agent::Empty(p) => {
            let (ns, cnt) = p.stats()?;
            set_cost(row, ns, cnt);
            row.counted = Some(cnt);
            row.counted_all = Some(cnt);
        }
        Agent::Bpftrace { proc, .. } => prog_cost(row, proc.pid(), None)?,
        Agent::Watch { proc, .. } | Agent::Record { proc, .. } => {
            prog_cost(row, proc.pid(), Some(parse::NETDROP_KFREE_PROG))?
        }
    }
    stop(ctx, agent, row)
}

fn set_cost(row: &mut Row, run_time_ns: u64, run_cnt: u64) {
    row.run_cnt = Some(run_cnt);
    if run_cnt > 0 {
        row.ns_per_drop = Some(run_time_ns as f64 / run_cnt as f64);
    }
}

/// Sums run_time_ns / run_cnt over the tracer's kfree_skb programs; notes a
/// program type that disagrees with the hook the tracer said it attached.
fn prog_cost(row: &mut Row, pid: u32, name_prefix: Option<&str>) -> Result<()> {
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
    set_cost(row, ns, cnt);
    Ok(())
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
