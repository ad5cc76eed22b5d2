//! `nd-bench`: one benchmark run of netdrop under a drop storm (`cargo xtask bench`).
//!
//! Rows, each on fresh `nd-storm`s of the same length: no tracer (baseline),
//! an empty BPF program on the classic tracepoint skb:kfree_skb and one on the
//! raw tracepoint kfree_skb (the floors any tracer on that hook pays), bpftrace
//! counting by reason, `netdrop watch -o json` (its default hook: the raw
//! tracepoint where allowed), the same with `--no-raw-tracepoint` (the classic
//! tracepoint), `netdrop record`. Each traced row runs two storms with its
//! tracer attached: the measured one with `kernel.bpf_stats_enabled` = 0
//! (rate, agent CPU, counts) and a short one with it at 1 (ns/drop), as the
//! statistics themselves slow every traced drop. With `--repeat N` the rows run N times
//! round-robin and the tables show medians ([`summary`]). Then two soaks of
//! `--soak-seconds` each: a long storm with `netdrop watch` sampled every
//! second ([`soak`]), and `netdrop serve` scraped every second while namespaces
//! come and go under the same storm ([`serve_soak`]). What each number means
//! is in [`rows`], [`soak`] and [`serve_soak`]; the markdown in [`report`].
//!
//! Writes the results into the marked region of BENCHMARKS.md (hand-written text
//! around it survives) and prints them. Progress goes to stderr. It asserts
//! nothing about time: targets are reported as met or missed.
//!
//! Clean-up: children are killed on error and Ctrl-C (and die with the bench
//! even on SIGKILL), `kernel.bpf_stats_enabled` is restored by a guard (after a
//! SIGKILL, by the next run, from the value saved in its tmp dir; it is 0 for
//! the run but for the stats storms), the storm's
//! namespaces die with the storm, the churn's are deleted before the serve
//! soak ends (also on Ctrl-C, within seconds), the empty programs die with
//! their descriptors.

pub mod emptyprog;
pub mod parse;
pub mod procs;
pub mod report;
pub mod rows;
pub mod serve_soak;
pub mod soak;
pub mod summary;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::storm;
use crate::sysctl::SysctlGuard;

pub const USAGE: &str = "usage: nd-bench --netdrop PATH [--storm PATH] [--seconds S (10)] [--stats-seconds S (3)] [--soak-seconds S (60, each soak; 0 skips them)] [--threads N] [--repeat N (1: rounds over all rows; medians shown)] [--out FILE (BENCHMARKS.md at the repository root)]";

/// Most rounds `--repeat` takes.
pub const MAX_REPEAT: usize = 100;

/// The title of a new BENCHMARKS.md (outside the generated region).
pub const TITLE: &str = "# netdrop benchmarks";

#[derive(Debug, Clone)]
pub struct Args {
    pub netdrop: PathBuf,
    pub storm: PathBuf,
    pub seconds: f64,
    /// Seconds of each row's stats storm (ns/drop, `kernel.bpf_stats_enabled` = 1).
    pub stats_seconds: f64,
    pub soak_seconds: f64,
    pub threads: Option<usize>,
    /// Rounds over all rows (each row runs this many times, round-robin).
    pub repeat: usize,
    pub out: PathBuf,
}

/// The repository root (this crate's parent directory, as built).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

impl Args {
    pub fn parse(argv: &[String]) -> Result<Args> {
        let mut netdrop = None;
        let mut storm_bin = None;
        let mut seconds = 10.0;
        let mut stats_seconds = 3.0;
        let mut soak_seconds = 60.0;
        let mut threads = None;
        let mut repeat = 1;
        let mut out = repo_root().join("BENCHMARKS.md");
        let mut it = argv.iter();
        let secs = |flag: &str, v: Option<&String>, zero_ok: bool| -> Result<f64> {
            let v = v.with_context(|| format!("{flag} needs a value"))?;
            match v.parse::<f64>() {
                Ok(s) if (s > 0.0 || (zero_ok && s == 0.0)) && s <= storm::MAX_SECONDS => Ok(s),
                _ => bail!(
                    "{flag} {v}: expected seconds in (0, {}]",
                    storm::MAX_SECONDS
                ),
            }
        };
        while let Some(a) = it.next() {
            match a.as_str() {
                "--netdrop" => netdrop = it.next().map(PathBuf::from),
                "--storm" => storm_bin = it.next().map(PathBuf::from),
                "--seconds" => seconds = secs(a, it.next(), false)?,
                "--stats-seconds" => stats_seconds = secs(a, it.next(), false)?,
                "--soak-seconds" => soak_seconds = secs(a, it.next(), true)?,
                "--threads" => {
                    let v = it.next().context("--threads needs a value")?;
                    threads = Some(
                        v.parse()
                            .ok()
                            .filter(|n| (1..=1024).contains(n))
                            .with_context(|| format!("--threads {v}: expected 1..=1024"))?,
                    );
                }
                "--repeat" => {
                    let v = it.next().context("--repeat needs a value")?;
                    repeat = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_REPEAT).contains(n))
                        .with_context(|| format!("--repeat {v}: expected 1..={MAX_REPEAT}"))?;
                }
                "--out" => out = it.next().map(PathBuf::from).context("--out needs a path")?,
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        let netdrop = netdrop.with_context(|| format!("--netdrop is required\n{USAGE}"))?;
        let storm = match storm_bin {
            Some(p) => p,
            None => std::env::current_exe()
                .context("locating nd-bench")?
                .with_file_name("nd-storm"),
        };
        Ok(Args {
            netdrop,
            storm,
            seconds,
            stats_seconds,
            soak_seconds,
            threads,
            repeat,
            out,
        })
    }
}

/// Runs the benchmark; returns the markdown it wrote.
pub fn run(args: &Args) -> Result<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "needs root (BPF programs, sysctls, network namespaces): run `sudo cargo xtask bench`"
        );
    }
    for (p, what, hint) in [
        (&args.netdrop, "netdrop", "cargo build --release -p netdrop"),
        (
            &args.storm,
            "nd-storm",
            "cargo build --release -p netdrop-tests --bins",
        ),
    ] {
        if !p.is_file() {
            bail!("{what} not found at {}: build it ({hint})", p.display());
        }
    }
    procs::catch_signals();
    let (tracefs, mounted) = emptyprog::tracefs()?;
    let result = with_tracefs(args, &tracefs);
    if mounted {
        emptyprog::unmount_tracefs(&tracefs);
    }
    result
}

/// The sysctl the bench sets, and the file in its tmp dir keeping the value to restore.
/// The sysctl that makes the kernel keep run_time_ns / run_cnt per program.
const STATS_KEY: &str = "kernel.bpf_stats_enabled";
const STATS_SAVED: &str = "bpf_stats_enabled.saved";

fn with_tracefs(args: &Args, tracefs: &Path) -> Result<String> {
    let (tmp, stale) = TmpDir::new()?;
    if let Some(v) = stale {
        // A run killed with SIGKILL could not restore it: do it now.
        crate::sysctl::write(STATS_KEY, &v)?;
        eprintln!("nd-bench: restored {STATS_KEY} = {v}, left by a killed earlier run");
    }
    let ctx = rows::Ctx {
        netdrop: args.netdrop.clone(),
        storm_bin: args.storm.clone(),
        seconds: args.seconds,
        stats_seconds: args.stats_seconds,
        threads: args.threads,
        tracefs: tracefs.to_path_buf(),
        no_socket: no_socket_number(),
        tmp: tmp.0.clone(),
    };
    let mut info = machine_info(args);
    let stats = SysctlGuard::set(STATS_KEY, "0")?;
    std::fs::write(tmp.0.join(STATS_SAVED), stats.saved())?;
    eprintln!(
        "nd-bench: {STATS_KEY} = 0 for the run but for the stats storms (was {})",
        stats.saved()
    );
    let n = rows::Tracer::ALL.len() * args.repeat;
    let mut results = Vec::new();
    let order = (1..=args.repeat).flat_map(|round| rows::Tracer::ALL.map(|t| (round, t)));
    for (i, (round, t)) in order.enumerate() {
        eprintln!(
            "nd-bench: [{}/{n}] {}{}: {} s storm{}",
            i + 1,
            t.label(),
            if args.repeat > 1 {
                format!(" (round {round}/{})", args.repeat)
            } else {
                String::new()
            },
            args.seconds,
            if t == rows::Tracer::Baseline {
                String::new()
            } else {
                format!(" + {} s stats storm", args.stats_seconds)
            }
        );
        let row = rows::run(&ctx, t)?;
        if let Some(s) = &row.storm {
            info.via = s.via.as_str().to_owned();
            info.threads = s.threads;
            eprintln!("nd-bench:   {}", s.human());
        }
        eprintln!(
            "nd-bench:   hook {}, ns/drop {}, CPU {} %, counted {} ({})",
            row.hook.map_or("-", parse::Hook::label),
            row.ns_per_drop.map_or("-".into(), |v| format!("{v:.0}")),
            row.cpu_pct.map_or("-".into(), |v| format!("{v:.1}")),
            row.counted.map_or("-".into(), |v| v.to_string()),
            match row.exact() {
                Some(true) => "exact",
                Some(false) => "NOT exact",
                None => "-",
            }
        );
        results.push(row);
        procs::sleep(Duration::from_secs(1))?;
    }
    let soak = if args.soak_seconds > 0.0 {
        eprintln!(
            "nd-bench: soak: netdrop watch under a {} s storm",
            args.soak_seconds
        );
        Some(soak::run(&ctx, args.soak_seconds)?)
    } else {
        None
    };
    let serve = if args.soak_seconds > 0.0 {
        eprintln!(
            "nd-bench: serve soak: netdrop serve scraped every second, namespace churn, {} s storm",
            args.soak_seconds
        );
        let s = serve_soak::run(&ctx, args.soak_seconds)?;
        if let (Some(a), Some(b)) = (s.start(), s.end()) {
            eprintln!(
                "nd-bench:   RSS {} -> {} KiB, series {:?} -> {:?}, namespaces tracked at the end {:?}, {} namespaces churned",
                a.rss_kib, b.rss_kib, a.series, b.series, b.tracked, s.churn.namespaces
            );
        }
        Some(s)
    } else {
        None
    };
    stats.restore()?;
    let body = report::markdown(
        &info,
        &summary::summarize(results),
        soak.as_ref(),
        serve.as_ref(),
    );
    let existing = match std::fs::read_to_string(&args.out) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", args.out.display())),
    };
    let text = parse::replace_region(existing.as_deref(), TITLE, &body)
        .with_context(|| format!("updating {}", args.out.display()))?;
    std::fs::write(&args.out, text).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("nd-bench: wrote {}", args.out.display());
    Ok(body)
}

/// `kernel.bpf_stats_enabled` = 1 until [`StatsOn::disable`] or Drop (then 0;
/// the run's guard in `bench::run` puts back the value found at the start).
pub(crate) struct StatsOn(bool);

impl StatsOn {
    pub(crate) fn enable() -> Result<StatsOn> {
        let on = StatsOn(true);
        crate::sysctl::write(STATS_KEY, "1")?;
        Ok(on)
    }

    pub(crate) fn disable(mut self) -> Result<()> {
        self.0 = false;
        crate::sysctl::write(STATS_KEY, "0")
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        if self.0 {
            let _ = crate::sysctl::write(STATS_KEY, "0");
        }
    }
}

/// A private directory on tmpfs (/dev/shm, else the temp dir), removed on Drop.
struct TmpDir(PathBuf);

impl TmpDir {
    /// Creates `nd-bench-<pid>`, after removing those of runs that no longer
    /// exist; returns the sysctl value such a run saved and could not restore.
    fn new() -> Result<(TmpDir, Option<String>)> {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let mut stale = None;
        for e in std::fs::read_dir(&base)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("nd-bench-") else {
                continue;
            };
            if pid.parse::<u32>().is_err() || Path::new("/proc").join(pid).exists() {
                continue;
            }
            if let Ok(v) = std::fs::read_to_string(e.path().join(STATS_SAVED)) {
                stale = Some(v.trim().to_owned());
            }
            let _ = std::fs::remove_dir_all(e.path());
        }
        let p = base.join(format!("nd-bench-{}", std::process::id()));
        std::fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok((TmpDir(p), stale))
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SKB_DROP_REASON_NO_SOCKET's number on this kernel, from its BTF.
fn no_socket_number() -> Option<u64> {
    let out = cmd::output(
        Command::new("bpftool").args(["btf", "dump", "file", "/sys/kernel/btf/vmlinux"]),
        cmd::CMD_TIMEOUT,
    );
    match out {
        Ok(o) if o.status.success() => {
            let n =
                parse::btf_enum_value(&o.stdout, "skb_drop_reason", "SKB_DROP_REASON_NO_SOCKET");
            if n.is_none() {
                eprintln!("nd-bench: warning: no SKB_DROP_REASON_NO_SOCKET in the kernel's BTF");
            }
            n
        }
        Ok(o) => {
            eprintln!("nd-bench: warning: bpftool btf dump: {}", o.stderr.trim());
            None
        }
        Err(e) => {
            eprintln!("nd-bench: warning: bpftool btf dump: {e:#}");
            None
        }
    }
}

/// First line of a command's stdout (or stderr), or "-".
fn first_line(prog: &str, args: &[&str]) -> Option<String> {
    let o = cmd::output(Command::new(prog).args(args), cmd::CMD_TIMEOUT).ok()?;
    let text = if o.stdout.trim().is_empty() {
        o.stderr
    } else {
        o.stdout
    };
    if !o.status.success() {
        return None;
    }
    text.lines().next().map(|l| l.trim().to_owned())
}

fn machine_info(args: &Args) -> report::Info {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = parse::parse_status_kib(&meminfo, "MemTotal").map_or_else(
        || "unknown".into(),
        |k| format!("{:.1} GiB", k as f64 / 1048576.0),
    );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned());
    let root = repo_root();
    let root_s = root.to_string_lossy().into_owned();
    let commit = first_line("git", &["-C", &root_s, "rev-parse", "--short", "HEAD"]);
    let dirty = cmd::output(
        Command::new("git").args([
            "-C",
            &root_s,
            "status",
            "--porcelain",
            "--",
            "netdrop",
            "netdrop-ebpf",
            "netdrop-common",
        ]),
        cmd::CMD_TIMEOUT,
    )
    .is_ok_and(|o| !o.stdout.trim().is_empty());
    let version = first_line(&args.netdrop.to_string_lossy(), &["--version"]);
    let netdrop = format!(
        "{}, commit {}{}",
        version.unwrap_or_else(|| "netdrop (version unknown)".into()),
        commit.unwrap_or_else(|| "unknown".into()),
        if dirty {
            " with uncommitted changes to netdrop"
        } else {
            ""
        }
    );
    let bpftrace = first_line("bpftrace", &["--version"]).unwrap_or_else(|| "not installed".into());
    let date = first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| "?".into());
    let mut command = format!(
        "nd-bench --seconds {} --stats-seconds {} --soak-seconds {}",
        args.seconds, args.stats_seconds, args.soak_seconds
    );
    if let Some(n) = args.threads {
        command += &format!(" --threads {n}");
    }
    if args.repeat > 1 {
        command += &format!(" --repeat {}", args.repeat);
    }
    report::Info {
        date,
        cpu,
        ncpus: storm::ncpus(),
        mem,
        kernel,
        netdrop,
        bpftrace,
        command,
        seconds: args.seconds,
        stats_seconds: args.stats_seconds,
        soak_seconds: args.soak_seconds,
        threads: args.threads.unwrap_or_else(storm::ncpus),
        via: storm::Via::Veth.as_str().to_owned(),
        repeat: args.repeat,
    }
}
