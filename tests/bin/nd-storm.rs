//! nd-storm: kernel drops at the highest rate this machine can make them.
//!
//! UDP datagrams to a closed port, over a veth pair between two network
//! namespaces the process creates for itself (see `netdrop_tests::storm` for the
//! design, and why veth rather than loopback). Each one is dropped with reason NO_SOCKET and counted in that
//! namespace's `Udp: NoPorts`.
//!
//! ```text
//! nd-storm [--seconds S] [--threads N] [--via veth|loopback] [--max-packets N] [--json]
//! ```
//!
//! Prints `nd-storm: storming (...)` on stderr right before the first send, and
//! at the end one line: sent, seconds, rate, kernel drops; with `--json` one
//! object `{"sent","seconds","rate","kernel_drops","setup_drops","threads","via"}`
//! on stdout (`setup_drops`: the datagrams that resolved the veth neighbour
//! before the storm, in the same namespace; not in `kernel_drops`).
//! Bounded: stops at the deadline (default 5 s, at most 600) or after
//! `--max-packets` (default 50 M per second of storm). Needs root.

use std::io::Write;
use std::process::ExitCode;

use netdrop_tests::storm::{self, Options, Via};

const USAGE: &str = "usage: nd-storm [--seconds S (default 5, max 600)] [--threads N (default: CPUs)] [--via veth|loopback] [--max-packets N] [--json]";

fn parse(args: &[String]) -> Result<(Options, bool), String> {
    let mut opts = Options::new(5.0);
    let mut cap = None;
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--seconds" => {
                let v = value(a)?;
                opts.seconds = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && *s <= storm::MAX_SECONDS)
                    .ok_or_else(|| format!("--seconds {v}: expected a number in (0, 600]"))?;
            }
            "--threads" => {
                let v = value(a)?;
                opts.threads = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1024).contains(n))
                    .ok_or_else(|| format!("--threads {v}: expected 1..=1024"))?;
            }
            "--max-packets" => {
                let v = value(a)?;
                cap = Some(
                    v.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("--max-packets {v}: expected a positive count"))?,
                );
            }
            "--via" => opts.via = Via::parse(&value(a)?).map_err(|e| e.to_string())?,
            "--json" => json = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    opts.max_packets = cap.unwrap_or_else(|| storm::default_cap(opts.seconds));
    Ok((opts, json))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, json) = match parse(&args) {
        Ok(p) => p,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("nd-storm: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "nd-storm: needs root (it creates a network namespace of its own); run it with sudo"
        );
        return ExitCode::FAILURE;
    }
    let started = || {
        let _ = writeln!(
            std::io::stderr().lock(),
            "nd-storm: storming ({} threads, {}, {} s)",
            opts.threads,
            opts.via.as_str(),
            opts.seconds
        );
    };
    match storm::run(&opts, started) {
        Ok(r) => {
            if json {
                println!("{}", r.to_json());
            } else {
                println!("{}", r.human());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nd-storm: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
