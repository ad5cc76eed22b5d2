use std::{
    io::{IsTerminal, Write},
    process::ExitCode,
    time::Duration,
};

use clap::{CommandFactory, FromArgMatches};
use netdrop::{
    cli::{Cli, Command, FilterArgs, HistOptions, KernelArgs, OutputFormat},
    hist::HistConfig,
    kernel::Sources,
    manual,
    replay::{self, ReplayOptions, View},
    serve,
    session::SessionOptions,
    style::{self, ColorChoice, Style},
    watch::{self, Output, WatchOptions},
};

fn main() -> ExitCode {
    let cli = parse();
    let stderr_style = Style::new(style::enabled(cli.color, std::io::stderr().is_terminal()));
    // Human views on stdout; JSON ignores it.
    let stdout_style = Style::new(style::enabled(cli.color, std::io::stdout().is_terminal()));
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(stderr_style.is_on())
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
        Err(e) => return fail(e.into(), stderr_style),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Completions(c) => print_completions(c.shell),
            Command::Man(m) => write_man(m.dir.as_deref()),
            Command::Watch(w) => {
                let screen = screen(w.output, w.lines, stdout_style);
                let interval = interval(w.interval, screen);
                let opts = WatchOptions {
                    output: output(w.output),
                    lines_per_sec: w.lines_per_sec,
                    record: w.record,
                    style: stdout_style,
                    session: session(w.duration, interval, w.kernel, &w.filters, cli.verbose),
                    screen,
                };
                watch::run(opts).await
            }
            Command::Diagnose(d) => {
                let s = session(
                    Some(d.duration),
                    d.duration,
                    d.kernel,
                    &d.filters,
                    cli.verbose,
                );
                watch::diagnose(output(d.output), s).await
            }
            Command::Record(r) => {
                let mut s = session(r.duration, r.interval, r.kernel, &r.filters, cli.verbose);
                s.neigh_states = true;
                s.capture_bytes = r.capture_bytes;
                watch::record(&r.output, s).await
            }
            Command::Hist(h) => {
                let mut s = session(h.duration, 1.0, h.kernel, &h.filters, cli.verbose);
                s.neigh_states = true;
                watch::hist(output(h.output), hist_config(&h.hist), h.hist.hgrm, s).await
            }
            Command::Serve(a) => {
                let mut s = session(None, a.interval, a.kernel, &a.filters, cli.verbose);
                s.report_groups = Some(a.top.into());
                s.retain_s = Some(a.retain);
                let opts = serve::ServeOptions {
                    listen: a.listen,
                    top: a.top.into(),
                    retain_s: a.retain,
                    session: s,
                };
                serve::run(opts).await
            }
            Command::Replay(r) => {
                let screen = screen(r.output, r.lines || r.report || r.hist, stdout_style);
                let opts = ReplayOptions {
                    interval: interval(r.interval, screen),
                    screen,
                    path: r.file,
                    view: if r.report {
                        View::Report
                    } else if r.hist {
                        View::Hist(hist_config(&r.hist_options))
                    } else {
                        View::Watch
                    },
                    hgrm: r.hist_options.hgrm,
                    pcap: r.pcap,
                    output: output(r.output),
                    realtime: r.realtime,
                    lines_per_sec: r.lines_per_sec,
                    style: stdout_style,
                };
                return match replay::run(&opts) {
                    Ok(done) if done.damage.is_empty() => Ok(ExitCode::SUCCESS),
                    // Everything intact was shown; the damage was described on stderr.
                    Ok(_) => Ok(ExitCode::from(manual::EXIT_DAMAGED)),
                    Err(e) => Err(e),
                };
            }
        }
        .map(|()| ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(e) => fail(e, stderr_style),
    }
}

/// Parses the command line, clap's help and usage errors coloured as `--color`
/// says (clap reads NO_COLOR itself in auto).
fn parse() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let color = match style::choice_in_args(&args) {
        ColorChoice::Auto => clap::ColorChoice::Auto,
        ColorChoice::Always => clap::ColorChoice::Always,
        ColorChoice::Never => clap::ColorChoice::Never,
    };
    let mut matches = Cli::command().color(color).get_matches_from(args);
    Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit())
}

/// `netdrop completions SHELL`: the script on stdout.
fn print_completions(shell: manual::Shell) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    manual::completions(shell, &mut out)?;
    Ok(out.flush()?)
}

/// `netdrop man`: every page into `dir`, else netdrop.1 on stdout.
fn write_man(dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    if let Some(dir) = dir {
        return manual::write_pages(dir).map(|_| ());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(manual::pages().swap_remove(0).roff.as_bytes())?;
    Ok(out.flush()?)
}

/// The live screen for the human view on a terminal (not with `--lines`),
/// in colour as `--color` and NO_COLOR say.
fn screen(o: OutputFormat, lines: bool, style: Style) -> Option<netdrop::tui::TuiOptions> {
    (o == OutputFormat::Human && netdrop::tui::wanted(lines)).then(|| netdrop::tui::TuiOptions {
        color: style.is_on(),
        ..Default::default()
    })
}

/// `--interval`: 5 s between the line view's summaries, 1 s between the
/// screen's refreshes of the diagnosis.
fn interval(given: Option<f64>, screen: Option<netdrop::tui::TuiOptions>) -> f64 {
    given.unwrap_or(if screen.is_some() { 1.0 } else { 5.0 })
}

fn output(o: OutputFormat) -> Output {
    match o {
        OutputFormat::Human => Output::Human,
        OutputFormat::Json => Output::Json,
    }
}

fn hist_config(h: &HistOptions) -> HistConfig {
    HistConfig {
        burst_gap_ns: (h.burst_gap_ms * 1e6) as u64,
    }
}

fn session(
    duration: Option<f64>,
    interval: f64,
    k: KernelArgs,
    f: &FilterArgs,
    verbose: u8,
) -> SessionOptions {
    SessionOptions {
        duration: duration.map(Duration::from_secs_f64),
        interval: Duration::from_secs_f64(interval),
        snapshot_every: Duration::from_secs_f64(k.snapshot_interval),
        ring_bytes: k.ring_buffer_kib * 1024,
        event_limit: k.events_per_sec,
        raw_tracepoint: !k.no_raw_tracepoint,
        fentry: !k.no_fentry,
        sources: Sources {
            btf: Some(k.btf),
            tracefs: k.tracefs,
        },
        filters: f.spec(),
        neigh_states: false,
        capture_bytes: None,
        verbose,
        report_groups: None,
        retain_s: None,
    }
}

/// One line: the error and its causes, joined. A closed stdout (the reader
/// went away: `netdrop watch | head -1`) is not an error: netdrop stops
/// quietly, as `ip` or `bpftool` do (everything was detached on the way out).
fn fail(e: anyhow::Error, style: Style) -> ExitCode {
    if is_broken_pipe(&e) {
        return ExitCode::SUCCESS;
    }
    // One line, whatever the causes carry (paths, names from the kernel or a file).
    eprintln!(
        "netdrop: {}: {}",
        style.error("error"),
        netdrop::text::safe(&format!("{e:#}"))
    );
    ExitCode::FAILURE
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
