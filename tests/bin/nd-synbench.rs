//! nd-synbench: the SYN hook's cost, in one run (see `netdrop_tests::synbench`).
//!
//! ```text
//! nd-synbench [--seconds S (5)] [--rounds N (3)] [--threads N (CPUs)]
//! ```
//!
//! Needs root and a kernel that lets fentry and kprobe programs load (a test
//! guest: `cargo xtask vm-test --syn-bench`). netdrop is $NETDROP_BIN. Rows,
//! alternating within each round (the order rotated by one each round): no tracer, an empty fentry program on
//! tcp_conn_request, `netdrop watch -o json` (must attach
//! fentry:tcp_conn_request), `netdrop watch --no-fentry -o json` (must attach
//! kprobe:tcp_conn_request). Prints a markdown table (medians) and then one
//! line `JSON {...}` on stdout; progress on stderr.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use netdrop_tests::Netdrop;
use netdrop_tests::bench::emptyprog::EmptyFentry;
use netdrop_tests::synbench::{
    CAP_PER_SECOND, Config, Flood, Row, Target, json_line, round_order, table, watching_hooks,
};

const USAGE: &str =
    "usage: nd-synbench [--seconds S (5, max 60)] [--rounds N (3, max 20)] [--threads N (CPUs)]";

struct Args {
    seconds: f64,
    rounds: usize,
    threads: usize,
}

fn parse(argv: &[String]) -> Result<Args> {
    let mut a = Args {
        seconds: 5.0,
        rounds: 3,
        threads: netdrop_tests::storm::ncpus(),
    };
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let mut v = || {
            it.next()
                .with_context(|| format!("{k} needs a value\n{USAGE}"))
        };
        match k.as_str() {
            "--seconds" => a.seconds = v()?.parse().context("--seconds")?,
            "--rounds" => a.rounds = v()?.parse().context("--rounds")?,
            "--threads" => a.threads = v()?.parse().context("--threads")?,
            "-h" | "--help" => bail!("{USAGE}"),
            _ => bail!("unknown argument {k:?}\n{USAGE}"),
        }
    }
    let in_range = a.seconds > 0.0 && a.seconds <= 60.0 && (1..=20).contains(&a.rounds);
    if !in_range || a.threads == 0 {
        bail!("out of range\n{USAGE}");
    }
    Ok(a)
}

/// One flood under `config`'s tracer.
fn measure(t: &Target, config: Config, a: &Args) -> Result<Flood> {
    let cap = (a.seconds * CAP_PER_SECOND as f64) as u64;
    let flood = || t.flood(a.seconds, a.threads, cap);
    match config {
        Config::None => flood(),
        Config::EmptyFentry => {
            let _prog = EmptyFentry::attach()?;
            flood()
        }
        Config::NetdropFentry | Config::NetdropKprobe => {
            let args: &[&str] = if config == Config::NetdropKprobe {
                &["--no-fentry"]
            } else {
                &[]
            };
            let nd = Netdrop::start(args)?;
            let f = flood();
            let out = nd.stop()?;
            let f = f?;
            let hooks = watching_hooks(&out.stderr).unwrap_or_default();
            let want = config.hook().expect("a traced row");
            if !hooks.iter().any(|h| h == want) {
                bail!(
                    "{}: netdrop did not attach {want} (hooks {hooks:?}); stderr:\n{}",
                    config.label(),
                    out.stderr
                );
            }
            Ok(f)
        }
    }
}

fn run(a: &Args) -> Result<()> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let target = Target::setup()?;
    let mut rows: Vec<Row> = Config::ALL
        .iter()
        .map(|&config| Row {
            config,
            floods: Vec::new(),
        })
        .collect();
    for round in 1..=a.rounds {
        for i in round_order(round - 1, rows.len()) {
            let row = &mut rows[i];
            let f = measure(&target, row.config, a)?;
            eprintln!(
                "nd-synbench: round {round}/{} {}: {:.0} SYNs/s (sent {}, ListenOverflows {}, InSegs {}, {:.2} s)",
                a.rounds,
                row.config.label(),
                f.rate(),
                f.sent,
                f.overflows,
                f.in_segs,
                f.seconds
            );
            if f.overflows == 0 || f.overflows * 10 < f.in_segs * 9 {
                bail!(
                    "{}: the accept queue did not refuse the flood (ListenOverflows {} of InSegs {})",
                    row.config.label(),
                    f.overflows,
                    f.in_segs
                );
            }
            row.floods.push(f);
        }
    }
    print!("{}", table(&rows));
    println!("JSON {}", json_line(&kernel, a.seconds, a.threads, &rows));
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match parse(&argv).and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nd-synbench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
