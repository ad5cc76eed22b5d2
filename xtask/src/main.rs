//! Project tasks: `cargo xtask test | run | build | install | fuzz | bench | vm-test | image`.
//!
//! The eBPF object is built by netdrop/build.rs as part of the normal build;
//! xtask only sequences things that are not a plain cargo command.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

mod bench;
mod fuzz;
mod image;
mod install;
mod ldd;
mod vm;

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build netdrop (release) with its embedded eBPF object.
    Build,
    /// Build netdrop (release), install its shell completions and man pages (as
    /// `install --no-binary`), and run it with these arguments (as root: via sudo if needed).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build netdrop (release) and install it: /usr/local/bin/netdrop, the bash, zsh and
    /// fish completions, the man pages in /usr/local/share/man/man1 (root: via sudo if needed).
    Install(install::InstallArgs),
    /// The whole test suite: unit tests, the kernel integration tests one at a time (root),
    /// the kernel matrix in QEMU guests (NETDROP_VM_KERNELS, default all), then the fuzz
    /// targets for NETDROP_FUZZ_SECONDS (default 60; 0 skips).
    Test {
        /// Only the unit tests (no root, no kernel state touched).
        #[arg(long)]
        unit: bool,
        /// Extra arguments for the integration test binary (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        filter: Vec<String>,
    },
    /// Run the cargo-fuzz targets in fuzz/ for a bounded time (installs cargo-fuzz if missing).
    Fuzz {
        /// Seconds of fuzzing in all, split between the targets (after the build).
        #[arg(long, default_value_t = fuzz::DEFAULT_SECONDS)]
        seconds: u64,
    },
    /// One benchmark run (root: via sudo if needed): netdrop against no tracer, an empty
    /// BPF program and bpftrace under a drop storm, then two soaks (watch; serve under
    /// namespace churn); writes BENCHMARKS.md.
    Bench(bench::BenchArgs),
    /// The kernel matrix: boots Debian kernels 5.10, 6.1, 6.12 and 7.2 under QEMU
    /// (software emulation), runs the integration tests that matter inside each,
    /// and on the host; prints a table kernel × test. Root.
    VmTest(vm::VmArgs),
    /// The container image with no registry pull: target/image/rootfs.tar (the release
    /// binary, nft, their libraries), then `podman build` of deploy/container/Containerfile.
    Image(image::ImageArgs),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Cargo's target directory: $CARGO_TARGET_DIR (relative to the workspace
/// root if relative: worktrees may share one), else `target` in the workspace.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root().join(d),
        _ => root().join("target"),
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

fn status(mut cmd: Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// `cargo build --release -p netdrop`; the binary's path.
fn build_release() -> Result<PathBuf> {
    let mut c = cargo();
    c.args(["build", "--release", "-p", "netdrop"]);
    status(c)?;
    Ok(target_dir().join("release/netdrop"))
}

fn run(cli: Cli) -> Result<()> {
    match cli.task {
        Task::Build => build_release().map(|_| ()),
        Task::Install(args) => install::run(&args),
        Task::Run { args } => {
            let bin = build_release()?;
            // A convenience on the way: never a reason not to run.
            if let Err(e) = install::docs(&bin) {
                eprintln!("xtask: completions and man pages not installed: {e:#}");
            }
            let mut cmd = if is_root() {
                Command::new(&bin)
            } else {
                let mut s = Command::new("sudo");
                s.arg(&bin);
                s
            };
            cmd.args(&args);
            let st = cmd
                .status()
                .with_context(|| format!("running {}", bin.display()))?;
            std::process::exit(st.code().unwrap_or(1));
        }
        Task::Test { unit, filter } => {
            // Read now: a bad value must not wait for the end of the run to be reported.
            let fuzz_seconds = if unit { 0 } else { fuzz::seconds_from_env()? };
            // The binary first: xtask's own unit tests install what it generates
            // (and the integration tests run it).
            if !unit {
                let mut c = cargo();
                c.args(["build", "-p", "netdrop"]);
                status(c)?;
            }
            // Unit tests: pure logic, fixtures, no root.
            let mut c = cargo();
            c.args([
                "test",
                "-p",
                "netdrop-common",
                "-p",
                "netdrop",
                "-p",
                "xtask",
            ]);
            status(c)?;
            if unit {
                return Ok(());
            }
            // Integration tests against the real kernel, one at a time (shared kernel state).
            if !is_root() {
                eprintln!(
                    "xtask: SKIP integration tests: they need root (namespaces, sysctls, eBPF); run `sudo -E cargo xtask test`"
                );
            } else {
                let mut c = cargo();
                c.args(["test", "-p", "netdrop-tests", "--", "--test-threads=1"])
                    .args(&filter);
                c.env("NETDROP_BIN", target_dir().join("debug/netdrop"));
                status(c)?;
            }
            // The kernel matrix: the tests that matter on every kernel, in guests.
            if is_root() && filter.is_empty() {
                vm::run(&vm::VmArgs::from_env()?)?;
            } else {
                eprintln!(
                    "xtask: kernel matrix skipped ({}): run `cargo xtask vm-test`",
                    if filter.is_empty() {
                        "not root"
                    } else {
                        "a test filter was given"
                    }
                );
            }
            // Fuzzing last: needs no root, and its first build takes minutes.
            if fuzz_seconds == 0 {
                eprintln!("xtask: fuzzing skipped ({}=0)", fuzz::SECONDS_ENV);
                Ok(())
            } else if !filter.is_empty() {
                eprintln!(
                    "xtask: fuzzing skipped (a test filter was given): run `cargo xtask fuzz`"
                );
                Ok(())
            } else {
                fuzz::run(fuzz_seconds)
            }
        }
        Task::Fuzz { seconds } => fuzz::run(seconds),
        Task::Bench(args) => bench::run(&args),
        Task::VmTest(args) => vm::run(&args),
        Task::Image(args) => image::run(&args),
    }
}
