//! `netdrop watch` and `netdrop diagnose`: the same observation, two views.

use std::io::{self, BufWriter, Write};

use anyhow::Result;

use crate::{
    session::{SessionOptions, observe},
    sink::{Sink, human::HumanSink, json::JsonSink, null::NullSink},
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
    pub session: SessionOptions,
}

/// Live lines, a per-cause summary every interval; at the end the diagnosis
/// (groups, advice) and the exact totals.
pub async fn run(opts: WatchOptions) -> Result<()> {
    let stdout = BufWriter::new(io::stdout().lock());
    let mut sink: Box<dyn Sink> = match opts.output {
        Output::Human => Box::new(HumanSink::new(stdout, opts.lines_per_sec)),
        Output::Json => Box::new(JsonSink::new(stdout)),
    };
    let out = observe(&opts.session, sink.as_mut()).await?;
    sink.on_report(&out.report)?;
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
