//! One dispatch for live and replayed records: a classified record goes to
//! the diagnosis, then to the sink, the same way whether it came from the
//! ring buffer (`session.rs`) or from a recording (`replay.rs`). What only a
//! live session does (filters, namespace identity, drop-driven reads) happens
//! before, in the session.

use std::io;

use crate::{
    decode::{ListenRecord, NeighRecord, NeighStateRecord},
    diagnose::Diagnosis,
    event::DropView,
    owner::Owner,
    sink::Sink,
    snapshot::{NetnsSnapshot, Snapshot},
};

/// Where every record goes: the diagnosis and the sink.
pub struct Dispatch<'a> {
    pub diagnosis: &'a mut Diagnosis,
    pub sink: &'a mut dyn Sink,
}

impl Dispatch<'_> {
    pub fn drop(&mut self, view: &DropView<'_>) -> io::Result<()> {
        self.diagnosis.on_drop(view);
        self.sink.on_drop(view)
    }

    /// A neighbour entry the table refused to create, at wall time `ts`.
    pub fn neigh_fail(&mut self, rec: &NeighRecord, ts: f64) -> io::Result<()> {
        self.diagnosis.on_neigh_fail(rec);
        self.sink.on_neigh_fail(rec, ts)
    }

    /// A SYN refused by a full accept queue, at wall time `ts`.
    pub fn listen_drop(
        &mut self,
        rec: &ListenRecord,
        owner: Option<&Owner>,
        ts: f64,
    ) -> io::Result<()> {
        self.diagnosis.on_listen_drop(rec);
        self.sink.on_listen_drop(rec, owner, ts)
    }

    /// A neighbour state change (only the sink uses it).
    pub fn neigh_state(&mut self, rec: &NeighStateRecord, ts: f64) -> io::Result<()> {
        self.sink.on_neigh_state(rec, ts)
    }

    /// A full snapshot of the kernel's own view.
    pub fn snapshot(&mut self, snap: Snapshot) -> io::Result<()> {
        self.sink.on_snapshot(&snap)?;
        self.diagnosis.on_snapshot(snap);
        Ok(())
    }

    /// One namespace read at `at_s`.
    pub fn netns_snapshot(&mut self, at_s: f64, ns: NetnsSnapshot) -> io::Result<()> {
        self.sink.on_netns_snapshot(at_s, &ns)?;
        self.diagnosis.on_netns_snapshot(at_s, ns);
        Ok(())
    }
}
