//! `netdrop watch`: the data path, in order:
//! hook (kernel) → ring buffer → decode → classify → sinks, with the exact
//! kernel counters read every interval and at the end.

use std::{
    io::{self, BufWriter},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use netdrop_common::names;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    counters::CounterMaps,
    decode::{Record, decode},
    event::{Classifier, Clock},
    kernel::{KernelFacts, Sources, kallsyms::Kallsyms},
    loader::{self, LoadOptions},
    privileges,
    sink::{Session, Sink, human::HumanSink, json::JsonSink},
    summary::{Naming, Summary},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub output: Output,
    pub duration: Option<Duration>,
    pub interval: Duration,
    pub lines_per_sec: f64,
    pub ring_bytes: u32,
    pub sources: Sources,
}

pub async fn run(opts: WatchOptions) -> Result<()> {
    privileges::check()?;
    let facts = KernelFacts::discover(&opts.sources)?;
    let result = run_with(&facts, &opts).await;
    facts.tracefs.release();
    result
}

async fn run_with(facts: &KernelFacts, opts: &WatchOptions) -> Result<()> {
    let syms = Kallsyms::load("/proc/kallsyms".as_ref()).unwrap_or_default();
    let classifier = Classifier {
        naming: Naming {
            reasons: facts.reasons.clone(),
            has_reason_field: facts.has_reason_field,
        },
        syms,
        clock: Clock::now(),
    };
    let mut loaded = loader::load(
        facts,
        LoadOptions {
            ring_bytes: opts.ring_bytes,
            emit_events: true,
        },
    )?;
    let counters = CounterMaps::take(&mut loaded.ebpf)?;
    let ring = RingBuf::try_from(
        loaded
            .ebpf
            .take_map(names::EVENTS)
            .context("ring buffer map missing")?,
    )?;
    // SAFETY: the ring buffer owns its fd and outlives the registration (both live here).
    let mut ring = unsafe { AsyncFd::register(ring) }
        .map_err(|e| anyhow::anyhow!("polling the ring buffer: {}", e.into_parts().1))?;

    for (hook, why) in &facts.skipped {
        eprintln!(
            "netdrop: notice: hook {} skipped ({why}); it gives: {}",
            hook.label(),
            hook.why
        );
    }
    for (slot, refused) in &loaded.unavailable {
        let tried: Vec<String> = refused
            .iter()
            .map(|(h, why)| format!("{h}: {why}"))
            .collect();
        eprintln!(
            "netdrop: notice: no {slot} hook on this kernel ({}); {}",
            tried.join("; "),
            crate::kernel::hooks::fallback_note(slot)
        );
    }
    if !facts.has_reason_field {
        eprintln!(
            "netdrop: notice: this kernel's skb:kfree_skb has no drop reasons (before 5.17): drops are shown as UNKNOWN"
        );
    }
    eprintln!(
        "netdrop: watching ({}); Ctrl-C to stop",
        loaded.attached.join(", ")
    );

    let stdout = BufWriter::new(io::stdout().lock());
    let mut sink: Box<dyn Sink> = match opts.output {
        Output::Human => Box::new(HumanSink::new(stdout, opts.lines_per_sec)),
        Output::Json => Box::new(JsonSink::new(stdout)),
    };

    let started = Instant::now();
    let mut session = Session::default();
    let mut tick = tokio::time::interval(opts.interval);
    tick.tick().await;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let deadline = tokio::time::sleep(opts.duration.unwrap_or(Duration::MAX / 4));
    tokio::pin!(deadline);

    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), &classifier, sink.as_mut(), &mut session)?;
                guard.clear_ready();
                sink.flush()?;
            }
            _ = tick.tick() => {
                session.duration_s = started.elapsed().as_secs_f64();
                let summary = Summary::from_counts(&counters.read()?, &classifier.naming);
                sink.tick(&summary, &session)?;
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = &mut deadline, if opts.duration.is_some() => break,
        }
    }

    // Detach first so the counters stop moving, then take what is left in the ring.
    let mut ring = ring.into_inner();
    drop(loaded);
    drain(&mut ring, &classifier, sink.as_mut(), &mut session)?;
    session.duration_s = started.elapsed().as_secs_f64();
    let summary = Summary::from_counts(&counters.read()?, &classifier.naming);
    sink.finish(&summary, &session)?;
    Ok(())
}

/// Reads every record available now: decode → classify → sink.
fn drain(
    ring: &mut RingBuf<MapData>,
    classifier: &Classifier,
    sink: &mut dyn Sink,
    session: &mut Session,
) -> Result<()> {
    while let Some(item) = ring.next() {
        session.events_read += 1;
        match decode(&item) {
            Ok(Record::Drop(rec)) => sink.on_drop(&classifier.drop_view(&rec))?,
            Ok(Record::NeighCreateFail(rec)) => {
                sink.on_neigh_fail(&rec, classifier.neigh_ts(&rec))?
            }
            Err(e) => {
                session.undecodable += 1;
                tracing::warn!("undecodable ring buffer record: {e}");
            }
        }
    }
    Ok(())
}
