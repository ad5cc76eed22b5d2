//! Sends everything to two sinks (e.g. the live view and a recording).

use std::io;

use super::{Session, Sink};
use crate::{
    decode::{ListenRecord, NeighRecord, NeighStateRecord},
    event::DropView,
    owner::Owner,
    record::Header,
    snapshot::{NetnsSnapshot, Snapshot},
    summary::{Counts, Summary},
};

/// Sends everything to two sinks (e.g. the live view and a recording).
pub struct Tee<'a> {
    pub a: &'a mut dyn Sink,
    pub b: &'a mut dyn Sink,
}

impl Sink for Tee<'_> {
    fn on_drop(&mut self, ev: &DropView<'_>) -> io::Result<()> {
        self.a.on_drop(ev)?;
        self.b.on_drop(ev)
    }
    fn on_neigh_fail(&mut self, rec: &NeighRecord, ts: f64) -> io::Result<()> {
        self.a.on_neigh_fail(rec, ts)?;
        self.b.on_neigh_fail(rec, ts)
    }
    fn on_listen_drop(
        &mut self,
        rec: &ListenRecord,
        owner: Option<&Owner>,
        ts: f64,
    ) -> io::Result<()> {
        self.a.on_listen_drop(rec, owner, ts)?;
        self.b.on_listen_drop(rec, owner, ts)
    }
    fn on_neigh_state(&mut self, rec: &NeighStateRecord, ts: f64) -> io::Result<()> {
        self.a.on_neigh_state(rec, ts)?;
        self.b.on_neigh_state(rec, ts)
    }
    fn tick(&mut self, summary: &Summary, session: &Session) -> io::Result<()> {
        self.a.tick(summary, session)?;
        self.b.tick(summary, session)
    }
    fn finish(&mut self, summary: &Summary, session: &Session) -> io::Result<()> {
        self.a.finish(summary, session)?;
        self.b.finish(summary, session)
    }
    fn wants_live_report(&self) -> bool {
        self.a.wants_live_report() || self.b.wants_live_report()
    }
    fn on_report(&mut self, report: &crate::diagnose::Report) -> io::Result<()> {
        self.a.on_report(report)?;
        self.b.on_report(report)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.a.flush()?;
        self.b.flush()
    }
    fn poll_every(&self) -> Option<std::time::Duration> {
        match (self.a.poll_every(), self.b.poll_every()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    fn poll(&mut self) -> io::Result<super::Flow> {
        use super::Flow;
        Ok(match (self.a.poll()?, self.b.poll()?) {
            (Flow::Stop, _) | (_, Flow::Stop) => Flow::Stop,
            (Flow::Hold, _) | (_, Flow::Hold) => Flow::Hold,
            _ => Flow::Go,
        })
    }
    fn on_start(&mut self, header: &Header) -> io::Result<()> {
        self.a.on_start(header)?;
        self.b.on_start(header)
    }
    fn on_snapshot(&mut self, snap: &Snapshot) -> io::Result<()> {
        self.a.on_snapshot(snap)?;
        self.b.on_snapshot(snap)
    }
    fn on_netns_snapshot(&mut self, at_s: f64, ns: &NetnsSnapshot) -> io::Result<()> {
        self.a.on_netns_snapshot(at_s, ns)?;
        self.b.on_netns_snapshot(at_s, ns)
    }
    fn on_counts(&mut self, at_s: f64, counts: &Counts, session: &Session) -> io::Result<()> {
        self.a.on_counts(at_s, counts, session)?;
        self.b.on_counts(at_s, counts, session)
    }
}
