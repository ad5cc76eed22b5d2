//! Where classified drops go: the live human view, JSON lines, ...

pub mod human;
pub mod json;

use std::io;

use crate::{decode::NeighRecord, event::DropView, summary::Summary};

/// Totals the sinks print beside the kernel's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Session {
    pub duration_s: f64,
    /// Detail events read from the ring buffer.
    pub events_read: u64,
    /// Ring buffer records that could not be decoded.
    pub undecodable: u64,
}

pub trait Sink {
    fn on_drop(&mut self, ev: &DropView<'_>) -> io::Result<()>;
    fn on_neigh_fail(&mut self, rec: &NeighRecord, ts: f64) -> io::Result<()>;
    /// Called every interval with the running totals.
    fn tick(&mut self, summary: &Summary, session: &Session) -> io::Result<()>;
    /// Called once at the end with the exact totals.
    fn finish(&mut self, summary: &Summary, session: &Session) -> io::Result<()>;
    /// Push buffered output out (after each batch of events).
    fn flush(&mut self) -> io::Result<()>;
}
