//! Where classified drops go: the live human view, JSON lines, ...

pub mod hist;
pub mod human;
pub mod json;
pub mod null;
pub mod pcap;
pub mod record;
pub mod tee;

use std::io;

use crate::{
    decode::{ListenRecord, NeighRecord},
    event::DropView,
    owner::Owner,
    summary::Summary,
};

/// Totals the sinks print beside the kernel's counters (in summary.rs, which
/// the diagnosis and recordings read too).
pub use crate::summary::Session;

/// What a sink that reads input (the live screen) asks of the loop feeding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Go,
    /// Hold a replay where it is (paused); a live session goes on.
    Hold,
    /// End the observation (the user quit): the summary as at any end.
    Stop,
}

pub trait Sink {
    fn on_drop(&mut self, ev: &DropView<'_>) -> io::Result<()>;
    /// A neighbour entry the table refused to create.
    fn on_neigh_fail(&mut self, _rec: &NeighRecord, _ts: f64) -> io::Result<()> {
        Ok(())
    }
    /// A SYN refused by a full accept queue (only where tcp_conn_request is hooked).
    fn on_listen_drop(
        &mut self,
        _rec: &ListenRecord,
        _owner: Option<&Owner>,
        _ts: f64,
    ) -> io::Result<()> {
        Ok(())
    }
    /// Called every interval with the running totals.
    fn tick(&mut self, _summary: &Summary, _session: &Session) -> io::Result<()> {
        Ok(())
    }
    /// Called once at the end with the exact totals.
    fn finish(&mut self, summary: &Summary, session: &Session) -> io::Result<()>;
    /// Whether this sink shows the diagnosis while watching (every interval in which
    /// drops changed), not only at the end.
    fn wants_live_report(&self) -> bool {
        false
    }
    /// The diagnosis (groups, advice): at the end of a watch, and every interval
    /// for sinks that want it live.
    fn on_report(&mut self, _report: &crate::diagnose::Report) -> io::Result<()> {
        Ok(())
    }
    /// Push buffered output out (after each batch of events).
    fn flush(&mut self) -> io::Result<()>;
    /// How often the feeding loop calls [`Sink::poll`] (None: never).
    fn poll_every(&self) -> Option<std::time::Duration> {
        None
    }
    /// Input handled, output refreshed; whether to go on.
    fn poll(&mut self) -> io::Result<Flow> {
        Ok(Flow::Go)
    }
    /// A neighbour entry's state change (only when neighbour states are asked for).
    fn on_neigh_state(
        &mut self,
        _rec: &crate::decode::NeighStateRecord,
        _ts: f64,
    ) -> io::Result<()> {
        Ok(())
    }
    /// Once, after the hooks attached: what is being observed, on which kernel.
    fn on_start(&mut self, _header: &crate::record::Header) -> io::Result<()> {
        Ok(())
    }
    /// Every snapshot of the kernel's own view (the baseline first, the final last).
    fn on_snapshot(&mut self, _snap: &crate::snapshot::Snapshot) -> io::Result<()> {
        Ok(())
    }
    /// One namespace read at once because drops were seen in it (or again
    /// shortly after them): its name, values and counters while it exists.
    fn on_netns_snapshot(
        &mut self,
        _at_s: f64,
        _ns: &crate::snapshot::NetnsSnapshot,
    ) -> io::Result<()> {
        Ok(())
    }
    /// The kernel's exact counters, every second and at the end (`at_s`: seconds
    /// since the start).
    fn on_counts(
        &mut self,
        _at_s: f64,
        _counts: &crate::summary::Counts,
        _session: &Session,
    ) -> io::Result<()> {
        Ok(())
    }
}
