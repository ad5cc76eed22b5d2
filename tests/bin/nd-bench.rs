//! nd-bench: one benchmark run of netdrop under a drop storm; normally started
//! by `cargo xtask bench`, which builds everything and passes `--netdrop`.
//!
//! ```text
//! nd-bench --netdrop PATH [--storm PATH] [--seconds S] [--stats-seconds S] [--soak-seconds S] [--threads N] [--repeat N] [--out FILE]
//! ```
//!
//! See `netdrop_tests::bench` for what it measures. Needs root. Holds
//! `netdrop_tests::lock()` (/run/lock/netdrop-tests.lock) for the whole run.

use std::process::ExitCode;

use netdrop_tests::bench;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", bench::USAGE);
        return ExitCode::SUCCESS;
    }
    let args = match bench::Args::parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("nd-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    // The whole run loads BPF and makes drop storms in namespaces: it takes
    // the tests' lock (an flock shared with every test process on the
    // machine) so no test touches kernel state meanwhile, nor it theirs.
    let _serial = netdrop_tests::lock();
    match bench::run(&args) {
        Ok(markdown) => {
            println!("{markdown}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nd-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
