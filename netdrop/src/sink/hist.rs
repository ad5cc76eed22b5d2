//! `netdrop hist` and `replay --hist`: drop-cause histograms. Per interval a
//! chart row (drops per cause, from the exact counters); at the end the
//! distributions (drops/s, burst length, neighbour resolution latency,
//! accept queue at drop) as a table or JSON, and optionally `.hgrm` files.

use std::{
    collections::BTreeMap,
    io::{self, Write},
    path::PathBuf,
};

use super::{Session, Sink};
use crate::{
    classify::Cause,
    decode::{ListenRecord, NeighStateEvent, NeighStateRecord},
    event::DropView,
    hist::{HistConfig, Hists, NeighKey, NeighOutcome},
    kernel::reasons::ReasonTable,
    record::Header,
    summary::{Counts, Naming, Summary},
};

/// Bar width of a chart row, in terminal cells.
const CHART_WIDTH: usize = 24;

pub struct HistSink<W: Write> {
    out: W,
    hists: Hists,
    json: bool,
    /// Print a chart row per interval (live); a replay prints the whole chart at the end.
    live_chart: bool,
    hgrm_dir: Option<PathBuf>,
    naming: Naming,
    /// The previous counters: (seconds, drops per cause).
    prev: Option<(f64, BTreeMap<&'static str, u64>)>,
}

impl<W: Write> HistSink<W> {
    pub fn new(
        out: W,
        cfg: HistConfig,
        json: bool,
        live_chart: bool,
        hgrm_dir: Option<PathBuf>,
    ) -> Self {
        HistSink {
            out,
            hists: Hists::new(cfg),
            json,
            live_chart,
            hgrm_dir,
            naming: Naming {
                reasons: ReasonTable::default(),
                has_reason_field: true,
            },
            prev: None,
        }
    }

    fn write_hgrm(&self) -> io::Result<()> {
        let Some(dir) = &self.hgrm_dir else {
            return Ok(());
        };
        std::fs::create_dir_all(dir)?;
        let files = self.hists.hgrm();
        for (stem, text) in &files {
            std::fs::write(dir.join(format!("{stem}.hgrm")), text)?;
        }
        eprintln!(
            "netdrop: wrote {} percentile distribution files (.hgrm) to {}",
            files.len(),
            dir.display()
        );
        Ok(())
    }
}

impl<W: Write> Sink for HistSink<W> {
    fn on_start(&mut self, header: &Header) -> io::Result<()> {
        self.naming = header.naming();
        Ok(())
    }

    fn on_counts(&mut self, at_s: f64, counts: &Counts, _session: &Session) -> io::Result<()> {
        let now = Summary::from_counts(counts, &self.naming).causes;
        let (then_s, then) = self.prev.take().unwrap_or((0.0, BTreeMap::new()));
        let secs = at_s - then_s;
        if secs > 0.0 {
            let per_cause: Vec<(Cause, u64)> = Cause::ALL
                .iter()
                .map(|&c| {
                    let n = now.get(c.as_str()).copied().unwrap_or(0);
                    let before = then.get(c.as_str()).copied().unwrap_or(0);
                    (c, n.saturating_sub(before))
                })
                .collect();
            self.hists.on_interval(at_s, secs, &per_cause);
            if self.live_chart
                && !self.json
                && let Some(row) = self.hists.chart_row(CHART_WIDTH)
            {
                writeln!(self.out, "{row}")?;
                self.out.flush()?;
            }
        }
        self.prev = Some((at_s, now));
        Ok(())
    }

    fn on_drop(&mut self, ev: &DropView<'_>) -> io::Result<()> {
        self.hists.on_drop(ev.cause, ev.rec.ts_ns);
        if ev.cause == Cause::AcceptQueueFull
            && let Some((queue, limit)) = ev.rec.accept_queue
        {
            self.hists.on_accept_queue(queue, limit);
        }
        Ok(())
    }

    fn on_listen_drop(
        &mut self,
        rec: &ListenRecord,
        _owner: Option<&crate::owner::Owner>,
        _ts: f64,
    ) -> io::Result<()> {
        self.hists.on_drop(Cause::AcceptQueueFull, rec.ts_ns);
        self.hists
            .on_accept_queue(rec.ack_backlog, rec.max_ack_backlog);
        Ok(())
    }

    fn on_neigh_state(&mut self, rec: &NeighStateRecord, _ts: f64) -> io::Result<()> {
        let Some(addr) = rec.addr else {
            return Ok(());
        };
        let key = NeighKey {
            dev: rec.dev.clone(),
            addr,
        };
        if rec.event == NeighStateEvent::Created {
            self.hists.on_neigh_created(key, rec.ts_ns);
        } else if rec.is_resolved() {
            self.hists
                .on_neigh_resolved(&key, rec.ts_ns, NeighOutcome::Reachable);
        } else if rec.is_failed() {
            self.hists
                .on_neigh_resolved(&key, rec.ts_ns, NeighOutcome::Failed);
        }
        Ok(())
    }

    fn finish(&mut self, summary: &Summary, session: &Session) -> io::Result<()> {
        self.hists.finish();
        if self.json {
            /// The distributions, and the detail events they could not see.
            #[derive(serde::Serialize)]
            struct Out<'a, T: serde::Serialize> {
                #[serde(flatten)]
                report: T,
                held_back_events: u64,
                lost_events: u64,
                /// The session's totals per cause (as in watch's summary's
                /// `causes`), with the drops known from kernel counters only.
                totals: &'a BTreeMap<&'static str, u64>,
                kernel_only: &'a BTreeMap<&'static str, u64>,
            }
            let out = Out {
                report: self.hists.report(),
                held_back_events: summary.sampled_events,
                lost_events: summary.lost_events,
                totals: &summary.causes,
                kernel_only: &summary.kernel_only,
            };
            serde_json::to_writer(&mut self.out, &out)?;
            self.out.write_all(b"\n")?;
        } else {
            if !self.live_chart {
                self.out
                    .write_all(self.hists.chart(CHART_WIDTH).as_bytes())?;
            }
            writeln!(
                self.out,
                "── netdrop histograms: {} drops in {:.1}s ──",
                summary.total_drops, session.duration_s
            )?;
            for (cause, n) in &summary.kernel_only {
                writeln!(
                    self.out,
                    "{cause}: {n} of its drops are counted by the kernel only (no hook saw them): not in the distributions"
                )?;
            }
            self.out.write_all(self.hists.render().as_bytes())?;
            if summary.sampled_events > 0 || summary.lost_events > 0 {
                writeln!(
                    self.out,
                    "burst and accept-queue lengths come from detail events: {} held back by --events-per-sec, {} lost in the ring buffer (drops/s are exact)",
                    summary.sampled_events, summary.lost_events
                )?;
            }
        }
        self.out.flush()?;
        self.write_hgrm()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
