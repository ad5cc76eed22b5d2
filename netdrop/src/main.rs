use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use netdrop::{
    cli::{Cli, Command, OutputFormat},
    kernel::Sources,
    watch::{self, Output, WatchOptions},
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NETDROP_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .init();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(e.into()),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Watch(w) => {
                let opts = WatchOptions {
                    output: match w.output {
                        OutputFormat::Human => Output::Human,
                        OutputFormat::Json => Output::Json,
                    },
                    duration: w.duration.map(Duration::from_secs_f64),
                    interval: Duration::from_secs_f64(w.interval),
                    lines_per_sec: w.lines_per_sec,
                    ring_bytes: w.ring_buffer_kib * 1024,
                    sources: Sources {
                        btf: Some(w.btf),
                        tracefs: w.tracefs.map(PathBuf::from),
                    },
                };
                watch::run(opts).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// One line: the error and its causes, joined.
fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("netdrop: error: {e:#}");
    ExitCode::FAILURE
}
