//! Diagnosis: group drops by the thing that hurts (listener, neighbour, table,
//! device), fuse the kernel's own counters with what the hooks saw, and advise.
//!
//! Fed by the same data path as `watch` (it is a [`Sink`]) plus periodic
//! [`Snapshot`]s; [`Diagnosis::report`] turns both into a [`Report`].

mod render;
pub mod report;
pub mod snapshot;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

pub use report::Report;
pub use snapshot::Snapshot;

use crate::{
    classify::Cause,
    decode::{ListenRecord, NeighRecord},
    event::DropView,
    netns_id::NetnsId,
    sink::Session,
    summary::Summary,
};

/// Where accept-queue drops happened: (netns, listener port).
type ListenerKey = (NetnsId, u16);

#[derive(Debug, Clone, Default)]
pub struct AcceptGroup {
    pub addr: Option<IpAddr>,
    /// TCP_LISTEN_OVERFLOW drops (final ACK / data on a full queue).
    pub ack_drops: u64,
    /// SYNs refused by tcp_conn_request (fentry/kprobe hook).
    pub syn_drops: u64,
    /// Drops the kernel counted (ListenOverflows) that no hook saw, attributed here
    /// because this listener was full when the counter moved.
    pub unseen: u64,
    /// Largest queue and its limit seen (events and snapshots).
    pub peak_queue: u32,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct RpGroup {
    pub drops: u64,
    pub sources: BTreeSet<IpAddr>,
}

/// Refusals of one neighbour table family.
#[derive(Debug, Clone, Default)]
pub struct TableGroup {
    pub drops: u64,
    pub refused: u64,
    pub peak_entries: u64,
}

/// Examples kept per group (source addresses of rp_filter drops).
const MAX_EXAMPLES: usize = 5;

#[derive(Debug, Default)]
pub struct Diagnosis {
    pub accept: BTreeMap<ListenerKey, AcceptGroup>,
    /// Accept-queue drops the hooks saw per namespace, and at the last snapshot.
    accept_seen: BTreeMap<NetnsId, u64>,
    accept_seen_at_snapshot: BTreeMap<NetnsId, u64>,
    /// (netns, dev, neighbour) → drops.
    pub neigh_queue: BTreeMap<(NetnsId, String, IpAddr), u64>,
    /// [ipv4, ipv6].
    pub table: [TableGroup; 2],
    /// (netns, dev) → drops.
    pub rp: BTreeMap<(NetnsId, String), RpGroup>,
    pub first: Option<Snapshot>,
    pub last: Option<Snapshot>,
    /// Largest accept queue per listener across snapshots.
    peak_listener: BTreeMap<ListenerKey, (u32, u32)>,
    /// The latest snapshot of every namespace seen (kept after it disappears).
    pub latest_ns: BTreeMap<NetnsId, snapshot::NetnsSnapshot>,
    /// The observed kernel, when it is not the running one (a replay).
    pub kernel_release: Option<String>,
    /// When the observation started, unix seconds (snapshot `at_s` is relative to it).
    pub start_unix: f64,
}

const ETH_P_IPV6: u16 = 0x86dd;

impl Diagnosis {
    /// A diagnosis of a kernel other than the running one (a replay).
    pub fn for_kernel(release: &str) -> Diagnosis {
        Diagnosis {
            kernel_release: Some(release.to_string()),
            ..Diagnosis::default()
        }
    }

    pub fn on_drop(&mut self, ev: &DropView<'_>) {
        let r = ev.rec;
        let netns = r.netns_id();
        let p = r.packet.as_ref();
        match ev.cause {
            Cause::AcceptQueueFull => {
                // The dropped segment goes to the listener: its destination is the listener.
                let port = p.and_then(|p| p.dport).unwrap_or(0);
                let g = self.accept.entry((netns, port)).or_default();
                g.addr = g.addr.or(p.map(|p| p.daddr));
                g.ack_drops += 1;
                *self.accept_seen.entry(netns).or_default() += 1;
            }
            Cause::NeighQueueFull => {
                if let Some(p) = p {
                    *self
                        .neigh_queue
                        .entry((netns, r.dev.clone(), p.daddr))
                        .or_default() += 1;
                }
            }
            Cause::NeighTableOverflow => {
                self.table[usize::from(r.protocol == ETH_P_IPV6)].drops += 1;
            }
            Cause::RpFilter => {
                let g = self.rp.entry((netns, r.dev.clone())).or_default();
                g.drops += 1;
                if let Some(p) = p
                    && g.sources.len() < MAX_EXAMPLES
                {
                    g.sources.insert(p.saddr);
                }
            }
            Cause::Other => {}
        }
    }

    pub fn on_neigh_fail(&mut self, rec: &NeighRecord) {
        let t = &mut self.table[usize::from(rec.family == 10)];
        t.refused += 1;
        t.peak_entries = t.peak_entries.max(rec.entries.max(0) as u64);
    }

    pub fn on_listen_drop(&mut self, rec: &ListenRecord) {
        let netns = rec.netns_id();
        let g = self.accept.entry((netns, rec.port)).or_default();
        g.addr = g.addr.or(Some(rec.addr));
        g.syn_drops += 1;
        g.peak_queue = g.peak_queue.max(rec.ack_backlog);
        g.limit = rec.max_ack_backlog;
        *self.accept_seen.entry(netns).or_default() += 1;
    }

    /// Takes a snapshot in: peaks, and the kernel's ListenOverflows that no hook saw
    /// since the previous snapshot, attributed to the listeners full right now.
    pub fn on_snapshot(&mut self, snap: Snapshot) {
        for ns in &snap.netns {
            self.latest_ns.insert(ns.id(), ns.clone());
            for l in &ns.listeners {
                let e = self.peak_listener.entry((ns.id(), l.port)).or_default();
                *e = (e.0.max(l.accept_queue), l.backlog);
            }
        }
        for t in 0..2 {
            let entries = if t == 0 { &snap.arp } else { &snap.ndisc };
            if let Some(a) = entries {
                self.table[t].peak_entries = self.table[t].peak_entries.max(a.entries);
            }
        }
        if let Some(prev) = self.last.as_ref() {
            let counted = snapshot::deltas(prev, &snap, |n| n.listen_overflows);
            for (netns, kernel) in counted {
                let seen_now = self.accept_seen.get(&netns).copied().unwrap_or(0);
                let seen_before = self
                    .accept_seen_at_snapshot
                    .get(&netns)
                    .copied()
                    .unwrap_or(0);
                let unseen = kernel.saturating_sub(seen_now - seen_before);
                if unseen > 0 {
                    self.attribute_unseen(&snap, netns, unseen);
                }
            }
        }
        self.accept_seen_at_snapshot = self.accept_seen.clone();
        if self.first.is_none() {
            self.first = Some(snap.clone());
        }
        self.last = Some(snap);
    }

    fn attribute_unseen(&mut self, snap: &Snapshot, netns: NetnsId, unseen: u64) {
        let full: Vec<_> = snap
            .netns(netns)
            .map(|n| {
                n.listeners
                    .iter()
                    .filter(|l| l.accept_queue >= l.backlog)
                    .collect()
            })
            .unwrap_or_default();
        // With no full listener the report leaves them unattributed (it computes
        // the exact split at the end; these are only the weights).
        if full.is_empty() {
            return;
        }
        let share = unseen / full.len() as u64;
        let mut rest = unseen % full.len() as u64;
        for l in full {
            let g = self.accept.entry((netns, l.port)).or_default();
            g.addr = g.addr.or(Some(l.addr));
            g.unseen += share + u64::from(rest > 0);
            rest = rest.saturating_sub(1);
        }
    }

    /// One namespace read because drops were seen in it (between full snapshots).
    pub fn on_netns_snapshot(&mut self, _at_s: f64, ns: snapshot::NetnsSnapshot) {
        for l in &ns.listeners {
            let e = self.peak_listener.entry((ns.id(), l.port)).or_default();
            *e = (e.0.max(l.accept_queue), l.backlog);
        }
        self.latest_ns.insert(ns.id(), ns);
    }

    /// Drops known only from the kernel's counters, per cause (included in
    /// the summary's totals by `Summary::with_kernel_only`).
    pub fn kernel_only(&self) -> BTreeMap<Cause, u64> {
        let kernel = match (&self.first, &self.last) {
            (Some(a), Some(b)) => snapshot::deltas(a, b, |n| n.listen_overflows),
            _ => BTreeMap::new(),
        };
        let seen = |netns: NetnsId| -> u64 {
            self.accept
                .iter()
                .filter(|((ns, _), _)| *ns == netns)
                .map(|(_, g)| g.ack_drops + g.syn_drops)
                .sum()
        };
        let unseen = kernel
            .iter()
            .map(|(&ns, &k)| k.saturating_sub(seen(ns)))
            .sum();
        BTreeMap::from([(Cause::AcceptQueueFull, unseen)])
    }

    pub fn report(&self, summary: &Summary, session: &Session, hooks: report::Hooks) -> Report {
        report::build(self, summary, session, hooks)
    }

    pub(crate) fn listener_peak(&self, key: ListenerKey) -> Option<(u32, u32)> {
        self.peak_listener.get(&key).copied()
    }
}

#[cfg(test)]
mod tests;
