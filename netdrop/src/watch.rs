//! `netdrop watch` and `netdrop diagnose`: the same observation, two views.

use std::io::{self, BufWriter, Write};

use anyhow::Result;

use crate::{
    hist::HistConfig,
    session::{SessionOptions, observe},
    sink::{Sink, hist::HistSink, human::HumanSink, json::JsonSink, null::NullSink},
    sink::{record::RecordSink, tee::Tee},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub output: Output,
    pub lines_per_sec: f64,
    /// Also write a recording here.
    pub record: Option<std::path::PathBuf>,
    /// Colour in the human view (`style::enabled` for stdout).
    pub style: crate::style::Style,
    pub session: SessionOptions,
    /// The human view as the live screen (a terminal, no `--lines`).
    pub screen: Option<crate::tui::TuiOptions>,
}

/// Live lines, a per-cause summary every interval; at the end the diagnosis
/// (groups, advice) and the exact totals.
pub async fn run(opts: WatchOptions) -> Result<()> {
    let stdout = BufWriter::new(io::stdout().lock());
    let mut sink: Box<dyn Sink> = match (opts.output, opts.screen) {
        (Output::Human, Some(o)) => Box::new(crate::tui::sink::Screen::new(o)),
        (Output::Human, None) => {
            Box::new(HumanSink::new(stdout, opts.lines_per_sec).with_style(opts.style))
        }
        (Output::Json, _) => Box::new(JsonSink::new(stdout)),
    };
    let mut recording = opts
        .record
        .as_deref()
        .map(|p| RecordSink::create(p, false))
        .transpose()?;
    let mut tee;
    let sink: &mut dyn Sink = match recording.as_mut() {
        Some(r) => {
            tee = Tee {
                a: sink.as_mut(),
                b: r,
            };
            &mut tee
        }
        None => sink.as_mut(),
    };
    let out = observe(&opts.session, sink).await?;
    sink.on_report(&out.report)?;
    sink.finish(&out.summary, &out.session)?;
    Ok(())
}

/// `netdrop hist`: a chart row per second while observing, the distributions at the end.
pub async fn hist(
    output: Output,
    cfg: HistConfig,
    hgrm: Option<std::path::PathBuf>,
    session: SessionOptions,
) -> Result<()> {
    let stdout = BufWriter::new(io::stdout().lock());
    let mut sink = HistSink::new(stdout, cfg, output == Output::Json, true, hgrm);
    eprintln!("netdrop: histograms: a row per second, distributions at the end (Ctrl-C to stop)");
    let out = observe(&session, &mut sink).await?;
    sink.finish(&out.summary, &out.session)?;
    Ok(())
}

/// `netdrop record`: observes quietly into a recording, with a progress line
/// on stderr every `interval` (the session's).
pub async fn record(path: &std::path::Path, session: SessionOptions) -> Result<()> {
    let mut sink = RecordSink::create(path, true)?;
    eprintln!(
        "netdrop: recording to {} (Ctrl-C to stop)",
        crate::text::safe_path(path)
    );
    let out = observe(&session, &mut sink).await?;
    sink.finish(&out.summary, &out.session)?;
    Ok(())
}

/// Observes quietly, then prints the report: causes ranked, groups, advice,
/// kernel counters beside netdrop's.
pub async fn diagnose(output: Output, session: SessionOptions) -> Result<()> {
    let secs = session.duration.map_or(0.0, |d| d.as_secs_f64());
    eprintln!("netdrop: diagnosing for {secs:.0}s (Ctrl-C to stop early)");
    let out = observe(&session, &mut NullSink).await?;
    let mut stdout = io::stdout().lock();
    match output {
        Output::Human => stdout.write_all(out.report.render().as_bytes())?,
        Output::Json => {
            serde_json::to_writer_pretty(&mut stdout, &out.report)?;
            stdout.write_all(b"\n")?;
        }
    }
    stdout.flush()?;
    Ok(())
}
