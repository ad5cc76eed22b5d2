//! Values in force: the settings each group's drops happened under, and the
//! changes made to them during the observation.
//!
//! When a drop is taken in, its group notes the values known at that moment
//! (the latest read of its namespace, or the global `gc_thresh*`) in a
//! [`Segment`]; a change of a knob starts a new segment, so the drops made
//! before an operator's change and those after it stay apart. Changes are
//! found by comparing consecutive reads of one namespace (and of the global
//! values), and kept in a bounded list.

use std::{
    collections::{BTreeMap, VecDeque},
    net::IpAddr,
};

use super::snapshot::NetnsSnapshot;
use crate::netns_id::NetnsId;

/// A setting the advice depends on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Knob {
    /// `net.ipv{4,6}.neigh.default.gc_thresh{n}` (global).
    GcThresh { ipv6: bool, n: u8 },
    /// `net.ipv4.neigh.<dev>.unres_qlen_bytes`.
    UnresQlenBytes(String),
    /// `net.ipv4.neigh.<dev>.unres_qlen`.
    UnresQlen(String),
    /// `net.ipv4.conf.all.rp_filter`.
    RpFilterAll,
    /// `net.ipv4.conf.<dev>.rp_filter`.
    RpFilterDev(String),
    /// `net.core.somaxconn`.
    Somaxconn,
    /// A listener's accept queue limit as sock_diag shows it: its listen()
    /// backlog (capped by somaxconn when it listened).
    Backlog { addr: IpAddr, port: u16 },
}

impl Knob {
    /// The sysctl's name (or `listen() backlog of <listener>`).
    pub fn name(&self) -> String {
        match self {
            Knob::GcThresh { ipv6, n } => format!(
                "net.{}.neigh.default.gc_thresh{n}",
                if *ipv6 { "ipv6" } else { "ipv4" }
            ),
            Knob::UnresQlenBytes(dev) => format!("net.ipv4.neigh.{dev}.unres_qlen_bytes"),
            Knob::UnresQlen(dev) => format!("net.ipv4.neigh.{dev}.unres_qlen"),
            Knob::RpFilterAll => "net.ipv4.conf.all.rp_filter".into(),
            Knob::RpFilterDev(dev) => format!("net.ipv4.conf.{dev}.rp_filter"),
            Knob::Somaxconn => "net.core.somaxconn".into(),
            Knob::Backlog { addr, port } => {
                format!("listen() backlog of {}", listener_name(Some(*addr), *port))
            }
        }
    }

    /// Its value in one namespace's read (`None` for the global knobs).
    pub fn read(&self, ns: &NetnsSnapshot) -> Option<i64> {
        let s = &ns.sysctls;
        match self {
            Knob::GcThresh { .. } => None,
            Knob::UnresQlenBytes(dev) => s.devs.get(dev).and_then(|d| d.unres_qlen_bytes),
            Knob::UnresQlen(dev) => s.devs.get(dev).and_then(|d| d.unres_qlen),
            Knob::RpFilterAll => s.rp_filter_all,
            Knob::RpFilterDev(dev) => s.devs.get(dev).and_then(|d| d.rp_filter),
            Knob::Somaxconn => s.somaxconn,
            Knob::Backlog { addr, port } => ns
                .listeners
                .iter()
                .find(|l| l.addr == *addr && l.port == *port)
                .map(|l| i64::from(l.backlog)),
        }
    }
}

/// `198.18.0.1:80`, `[2001:db8::1]:80`, `*:80`.
pub fn listener_name(addr: Option<IpAddr>, port: u16) -> String {
    match addr {
        Some(a) if a.is_ipv6() => format!("[{a}]:{port}"),
        Some(a) => format!("{a}:{port}"),
        None => format!("*:{port}"),
    }
}

/// Where a knob lives: one namespace, or the whole kernel (`None`).
pub type Scope = Option<NetnsId>;

/// A knob that changed between two consecutive reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Order of detection (1, 2, …); segments started after it have a seq ≥ this.
    pub seq: u64,
    pub scope: Scope,
    pub knob: Knob,
    pub from: i64,
    pub to: i64,
    /// Seconds since the start of the read that first showed `to`.
    pub at_s: f64,
}

/// Changes kept, at most (the oldest are forgotten first).
pub const MAX_CHANGES: usize = 256;
/// Changes kept per namespace, at most: one that churns cannot push the
/// others' out.
pub const MAX_CHANGES_PER_SCOPE: usize = 32;

/// The changes seen, bounded.
#[derive(Debug, Default)]
pub struct Changes {
    list: VecDeque<Change>,
    seq: u64,
    /// The seq of the latest change kept, per knob.
    latest: BTreeMap<(Scope, Knob), u64>,
    per_scope: BTreeMap<Scope, usize>,
    /// Changes forgotten to stay within the bounds.
    pub forgotten: u64,
}

impl Changes {
    pub fn record(&mut self, scope: Scope, knob: Knob, from: i64, to: i64, at_s: f64) {
        self.seq += 1;
        if self.per_scope.get(&scope).copied().unwrap_or(0) >= MAX_CHANGES_PER_SCOPE
            && let Some(i) = self.list.iter().position(|c| c.scope == scope)
        {
            self.evict(i);
        }
        if self.list.len() >= MAX_CHANGES {
            self.evict(0);
        }
        self.latest.insert((scope, knob.clone()), self.seq);
        *self.per_scope.entry(scope).or_default() += 1;
        self.list.push_back(Change {
            seq: self.seq,
            scope,
            knob,
            from,
            to,
            at_s,
        });
    }

    fn evict(&mut self, i: usize) {
        let Some(c) = self.list.remove(i) else {
            return;
        };
        self.forgotten += 1;
        let key = (c.scope, c.knob);
        if self.latest.get(&key) == Some(&c.seq) {
            self.latest.remove(&key);
        }
        if let Some(n) = self.per_scope.get_mut(&c.scope) {
            *n -= 1;
            if *n == 0 {
                self.per_scope.remove(&c.scope);
            }
        }
    }

    /// The seq of the latest change of any of these knobs (0: none).
    pub fn latest_seq(&self, scope: Scope, knobs: &[Knob]) -> u64 {
        knobs
            .iter()
            .filter_map(|k| self.latest.get(&(scope, k.clone())).copied())
            .max()
            .unwrap_or(0)
    }

    /// The changes of these knobs, oldest first.
    pub fn of<'a>(&'a self, scope: Scope, knobs: &'a [Knob]) -> impl Iterator<Item = &'a Change> {
        self.list
            .iter()
            .filter(move |c| c.scope == scope && knobs.contains(&c.knob))
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The knobs whose value differs between two reads of one namespace (a knob
/// missing from either read is not a change).
pub fn ns_changes(prev: &NetnsSnapshot, now: &NetnsSnapshot) -> Vec<(Knob, i64, i64)> {
    let mut knobs = vec![Knob::Somaxconn, Knob::RpFilterAll];
    for dev in now.sysctls.devs.keys() {
        knobs.push(Knob::RpFilterDev(dev.clone()));
        knobs.push(Knob::UnresQlenBytes(dev.clone()));
        knobs.push(Knob::UnresQlen(dev.clone()));
    }
    for l in &now.listeners {
        let k = Knob::Backlog {
            addr: l.addr,
            port: l.port,
        };
        if !knobs.contains(&k) {
            knobs.push(k);
        }
    }
    knobs
        .into_iter()
        .filter_map(|k| match (k.read(prev), k.read(now)) {
            (Some(a), Some(b)) if a != b => Some((k, a, b)),
            _ => None,
        })
        .collect()
}

/// The values of a group's knobs (in the group's knob order; see
/// `Diagnosis::knobs_*`), `None` where unknown.
pub type Vals = [Option<i64>; 3];

/// Drops taken in under the same values.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub values: Vals,
    /// [`Changes::latest_seq`] of the group's knobs when it started.
    pub seq: u64,
    pub drops: u64,
    /// Seconds since the start: first and last drop.
    pub first_s: f64,
    pub last_s: f64,
}

/// Segments kept per group, at most (the oldest two are merged beyond).
pub const MAX_SEGMENTS: usize = 8;

/// A group's drops split by the values they happened under, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Segments(pub Vec<Segment>);

impl Segments {
    /// `n` drops at `at_s` under `values`.
    pub fn note(&mut self, values: Vals, seq: u64, n: u64, at_s: f64) {
        if n == 0 {
            return;
        }
        if let Some(s) = self.0.last_mut()
            && s.values == values
            && s.seq == seq
        {
            s.drops += n;
            s.first_s = s.first_s.min(at_s);
            s.last_s = s.last_s.max(at_s);
            return;
        }
        self.0.push(Segment {
            values,
            seq,
            drops: n,
            first_s: at_s,
            last_s: at_s,
        });
        if self.0.len() > MAX_SEGMENTS {
            let second = self.0.remove(1);
            let first = &mut self.0[0];
            first.drops += second.drops;
            first.first_s = first.first_s.min(second.first_s);
            first.last_s = first.last_s.max(second.last_s);
        }
    }

    /// The segment with the latest drops.
    pub fn latest(&self) -> Option<&Segment> {
        self.0.last()
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(|s| s.drops).sum()
    }

    /// Drops taken in before and after the change numbered `seq`.
    pub fn split(&self, seq: u64) -> (u64, u64) {
        self.0.iter().fold((0, 0), |(b, a), s| {
            if s.seq >= seq {
                (b, a + s.drops)
            } else {
                (b + s.drops, a)
            }
        })
    }

    /// At a namespace's first read: what was unknown for the drops before it
    /// is the best known now (no change can have been seen before a first read).
    pub fn backfill(&mut self, values: Vals) {
        for s in &mut self.0 {
            for (v, new) in s.values.iter_mut().zip(values) {
                if v.is_none() {
                    *v = new;
                }
            }
        }
        let mut merged: Vec<Segment> = Vec::with_capacity(self.0.len());
        for s in self.0.drain(..) {
            match merged.last_mut() {
                Some(m) if m.values == s.values && m.seq == s.seq => {
                    m.drops += s.drops;
                    m.first_s = m.first_s.min(s.first_s);
                    m.last_s = m.last_s.max(s.last_s);
                }
                _ => merged.push(s),
            }
        }
        self.0 = merged;
    }

    /// Makes the segments add up to `total` (a count known exactly only at the
    /// end, e.g. drops the kernel counted that no hook saw): the difference goes
    /// to the latest segments.
    pub fn fit(&self, total: u64) -> Segments {
        let mut out = self.clone();
        let have = out.total();
        if have < total {
            if let Some(s) = out.0.last_mut() {
                s.drops += total - have;
            }
        } else {
            let mut excess = have - total;
            for s in out.0.iter_mut().rev() {
                let take = excess.min(s.drops);
                s.drops -= take;
                excess -= take;
            }
            out.0.retain(|s| s.drops > 0);
        }
        out
    }
}
