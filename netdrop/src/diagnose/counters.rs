//! The kernel's own per-namespace counters, honestly: every namespace counts
//! from its first read (or from zero when it was born during the observation)
//! to its latest read, so one that lived for a second between two full
//! snapshots still contributes what it counted; and a count that may be short
//! says so.

use std::collections::BTreeMap;

use super::{Snapshot, snapshot::NetnsSnapshot};
use crate::netns_id::NetnsId;

/// The counters tracked per namespace, by index.
pub const LISTEN_OVERFLOWS: usize = 0;
pub const LISTEN_DROPS: usize = 1;
pub const RP_FILTER_DROPS: usize = 2;

fn read(ns: &NetnsSnapshot) -> [Option<u64>; 3] {
    [ns.listen_overflows, ns.listen_drops, ns.rp_filter_drops]
}

/// Where a namespace's count starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// In the first full snapshot: from its values there.
    AtStart,
    /// Not in the first full snapshot, which was complete: born since, from zero.
    BornLater,
    /// Not in the first full snapshot, which was incomplete (or there was none):
    /// from its first read, which may miss what it counted before.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct NsCounters {
    pub start: Start,
    /// The count's origin, per counter (None until readable).
    pub base: [Option<u64>; 3],
    /// The values at its first read (None: never read).
    pub first: [Option<u64>; 3],
    pub latest: [Option<u64>; 3],
    pub first_read_s: Option<f64>,
    pub last_read_s: Option<f64>,
    /// netdrop's latest drop there, per counter (accept queue, -, rp_filter).
    pub last_drop_s: [Option<f64>; 3],
    /// ListenOverflows and the accept drops the hooks saw there, at its
    /// previous read (what moved since is attributed at the next read).
    pub overflows_at_read: u64,
    pub seen_at_read: u64,
}

impl NsCounters {
    fn new(start: Start) -> NsCounters {
        NsCounters {
            start,
            base: [None; 3],
            first: [None; 3],
            latest: [None; 3],
            first_read_s: None,
            last_read_s: None,
            last_drop_s: [None; 3],
            overflows_at_read: 0,
            seen_at_read: 0,
        }
    }

    /// What the kernel counted there during the observation (up to its last read).
    pub fn delta(&self, c: usize) -> Option<u64> {
        Some(self.latest[c]?.saturating_sub(self.base[c]?))
    }

    /// Its count of `c` may be short: it dropped after its last read (or was
    /// never read), or it may have counted before its first read.
    pub fn may_be_short(&self, c: usize) -> bool {
        let dropped_after = match (self.last_drop_s[c], self.last_read_s) {
            (Some(d), Some(r)) => d > r,
            (Some(_), None) => true,
            _ => false,
        };
        let before_first = match self.start {
            Start::Unknown => self.first[c].is_some_and(|v| v > 0),
            // Unreadable at its first read: the origin was taken later.
            Start::AtStart => self.first[c].is_none() && self.base[c].is_some(),
            Start::BornLater => false,
        };
        dropped_after || before_first
    }

    fn has_drops(&self) -> bool {
        self.last_drop_s.iter().any(Option::is_some)
    }
}

/// Per namespace counters, keyed by identity (inode + cookie).
#[derive(Debug, Default)]
pub struct Tracker {
    pub ns: BTreeMap<NetnsId, NsCounters>,
    /// What namespaces forgotten by [`Tracker::retire`] counted, per counter.
    pub retired: [u64; 3],
}

impl Tracker {
    /// One namespace read at `at_s`; `first` is the first full snapshot (None
    /// while there is none: `this_is_first` says the read is part of it).
    /// Returns ListenOverflows moved since its previous read.
    pub fn on_read(
        &mut self,
        at_s: f64,
        ns: &NetnsSnapshot,
        first: Option<&Snapshot>,
        this_is_first: bool,
    ) -> u64 {
        let id = ns.id();
        let t = self
            .ns
            .entry(id)
            .or_insert_with(|| NsCounters::new(Start::Unknown));
        // Classified at its first read (it may be known already through its drops).
        if t.first_read_s.is_none() {
            t.start = match first {
                _ if this_is_first => Start::AtStart,
                Some(f) if f.netns(id).is_some() => Start::AtStart,
                Some(f) if f.netns_skipped == 0 => Start::BornLater,
                _ => Start::Unknown,
            };
        }
        let values = read(ns);
        if t.first_read_s.is_none() {
            t.first = values;
            t.first_read_s = Some(at_s);
        }
        // Attribution counts ListenOverflows from the same origin as the total.
        if t.base[LISTEN_OVERFLOWS].is_none() {
            t.overflows_at_read = match t.start {
                Start::BornLater => 0,
                _ => values[LISTEN_OVERFLOWS].unwrap_or(0),
            };
        }
        for (c, v) in values.into_iter().enumerate() {
            let Some(v) = v else { continue };
            if t.base[c].is_none() {
                t.base[c] = Some(if t.start == Start::BornLater { 0 } else { v });
            }
            t.latest[c] = Some(v);
        }
        t.last_read_s = Some(t.last_read_s.map_or(at_s, |r| r.max(at_s)));
        let now = t.latest[LISTEN_OVERFLOWS].unwrap_or(0);
        let moved = now.saturating_sub(t.overflows_at_read);
        t.overflows_at_read = t.overflows_at_read.max(now);
        moved
    }

    /// netdrop saw a drop counted by counter `c` in `netns` at `at_s`.
    pub fn on_drop(&mut self, netns: NetnsId, c: usize, at_s: f64) {
        let t = self
            .ns
            .entry(netns)
            .or_insert_with(|| NsCounters::new(Start::Unknown));
        t.last_drop_s[c] = Some(t.last_drop_s[c].map_or(at_s, |d| d.max(at_s)));
    }

    pub fn get(&self, netns: NetnsId) -> Option<&NsCounters> {
        self.ns.get(&netns)
    }

    pub fn get_mut(&mut self, netns: NetnsId) -> Option<&mut NsCounters> {
        self.ns.get_mut(&netns)
    }

    /// Per namespace, what counter `c` moved during the observation (non-zero).
    pub fn deltas(&self, c: usize) -> BTreeMap<NetnsId, u64> {
        self.ns
            .iter()
            .filter_map(|(id, t)| Some((*id, t.delta(c)?)))
            .filter(|(_, d)| *d > 0)
            .collect()
    }

    /// The sum over namespaces (None: readable in none), and whether it may be short.
    pub fn total(&self, c: usize) -> (Option<u64>, bool) {
        let any = self.retired[c] > 0 || self.ns.values().any(|t| t.latest[c].is_some());
        let sum = self.retired[c] + self.ns.values().filter_map(|t| t.delta(c)).sum::<u64>();
        let short = self.ns.values().any(|t| t.may_be_short(c));
        (any.then_some(sum), short)
    }

    /// Forgets a namespace, keeping what it counted in the totals.
    pub fn retire(&mut self, id: NetnsId) {
        if let Some(t) = self.ns.remove(&id) {
            for (c, r) in self.retired.iter_mut().enumerate() {
                *r += t.delta(c).unwrap_or(0);
            }
        }
    }

    /// Forgets the namespaces absent from a complete full snapshot that neither
    /// dropped nor counted anything (a node where pods come and go must not
    /// grow this without bound). Returns the ones forgotten.
    pub fn prune(&mut self, snap: &Snapshot) -> Vec<NetnsId> {
        if snap.netns_skipped > 0 {
            return Vec::new();
        }
        let gone: Vec<NetnsId> = self
            .ns
            .iter()
            .filter(|(id, t)| {
                snap.netns(**id).is_none()
                    && !t.has_drops()
                    && (0..3).all(|c| t.delta(c).unwrap_or(0) == 0)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.ns.remove(id);
        }
        gone
    }
}
