//! `cargo xtask bench`: one benchmark run of netdrop under a drop storm.
//!
//! Builds netdrop and the test binaries (release), then replaces itself with
//! `target/release/nd-bench` (via sudo when not root), so that Ctrl-C goes
//! straight to the benchmark, which stops its children and restores the sysctl
//! it changed. nd-bench writes BENCHMARKS.md (the region between
//! `<!-- bench:begin -->` and `<!-- bench:end -->`; text around it is kept) and
//! prints the tables. See `netdrop_tests::bench` for what it measures.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};
use clap::Args;

use crate::{cargo, is_root, root, status};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Seconds of the measured storm per row (a fresh storm each; bpf stats off).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Seconds of each traced row's second storm, run with
    /// kernel.bpf_stats_enabled=1 for ns/drop (the first, for rates, runs with 0).
    #[arg(long, default_value_t = 3.0)]
    pub stats_seconds: f64,
    /// Seconds of each soak (netdrop watch under one long storm; netdrop serve
    /// scraped every second under namespace churn and a storm); 0 skips them.
    #[arg(long, default_value_t = 60.0)]
    pub soak_seconds: f64,
    /// Storm sender threads (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Rounds over all rows: each row runs N times, round-robin, and the tables
    /// show medians (and the baseline's spread).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Where to write the results (default: BENCHMARKS.md at the repository root).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The nd-bench command line for these arguments (without the program).
pub fn bench_args(a: &BenchArgs, release: &std::path::Path) -> Vec<String> {
    let mut v = vec![
        "--netdrop".to_owned(),
        release.join("netdrop").display().to_string(),
        "--storm".to_owned(),
        release.join("nd-storm").display().to_string(),
        "--seconds".to_owned(),
        a.seconds.to_string(),
        "--stats-seconds".to_owned(),
        a.stats_seconds.to_string(),
        "--soak-seconds".to_owned(),
        a.soak_seconds.to_string(),
        "--out".to_owned(),
        a.out
            .clone()
            .unwrap_or_else(|| root().join("BENCHMARKS.md"))
            .display()
            .to_string(),
    ];
    if let Some(n) = a.threads {
        v.extend(["--threads".to_owned(), n.to_string()]);
    }
    if a.repeat != 1 {
        v.extend(["--repeat".to_owned(), a.repeat.to_string()]);
    }
    v
}

pub fn run(a: &BenchArgs) -> Result<()> {
    let mut c = cargo();
    c.args([
        "build",
        "--release",
        "-p",
        "netdrop",
        "-p",
        "netdrop-tests",
        "--bins",
    ]);
    status(c)?;
    let release = crate::target_dir().join("release");
    let bin = release.join("nd-bench");
    if !release.join("netdrop").is_file() || !bin.is_file() {
        bail!(
            "the release build left no netdrop or nd-bench in {}",
            release.display()
        );
    }
    let mut cmd = if is_root() {
        Command::new(&bin)
    } else {
        eprintln!("xtask: the benchmark needs root: running it with sudo");
        let mut s = Command::new("sudo");
        s.arg(&bin);
        s
    };
    cmd.args(bench_args(a, &release));
    eprintln!("xtask: {cmd:?}");
    let e = cmd.exec();
    bail!("running {}: {e}", bin.display())
}
