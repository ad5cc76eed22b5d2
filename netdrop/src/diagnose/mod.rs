//! Diagnosis: group drops by the thing that hurts (listener, neighbour, table,
//! device), fuse the kernel's own counters with what the hooks saw, and advise.
//!
//! Fed by the same data path as `watch` (it is a [`Sink`]) plus periodic
//! [`Snapshot`]s and single-namespace reads; [`Diagnosis::report`] turns them
//! into a [`Report`]. Every group keeps the values in force when its drops
//! happened ([`values`]), every namespace its own kernel counts ([`counters`]).

pub mod counters;
pub mod declared;
mod fusion;
mod groups;
pub mod model;
pub(crate) mod render;
pub mod report;
mod retire;
mod rp_fusion;
/// The kernel's own view (a module of its own: the session, sinks and
/// recordings read it too).
pub use crate::snapshot;
pub mod values;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

pub use report::Report;
pub use snapshot::Snapshot;

use crate::{
    classify::Cause,
    context::Listener,
    decode::{ListenRecord, NeighRecord},
    event::DropView,
    netns_id::NetnsId,
    summary::{Session, Summary},
};
use counters::{LISTEN_OVERFLOWS, RP_FILTER_DROPS};
use snapshot::NetnsSnapshot;
use values::{Knob, Segments, Vals};

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
    /// The listener's own address as sock_diag shows it (a wildcard for one
    /// bound to all), once a read found it: its backlog knob.
    pub listen_addr: Option<IpAddr>,
    /// Values in force at its drops: [somaxconn, accept queue limit, -].
    pub segments: Segments,
}

#[derive(Debug, Clone, Default)]
pub struct NeighGroup {
    pub drops: u64,
    /// Values in force at its drops: [unres_qlen_bytes, unres_qlen, -].
    pub segments: Segments,
}

#[derive(Debug, Clone, Default)]
pub struct RpGroup {
    pub drops: u64,
    pub sources: BTreeSet<IpAddr>,
    /// Values in force at its drops: [conf/all, conf/<dev>, -].
    pub segments: Segments,
}

/// Refusals of one neighbour table family.
#[derive(Debug, Clone, Default)]
pub struct TableGroup {
    pub drops: u64,
    pub refused: u64,
    pub peak_entries: u64,
    /// gc_thresh1..3 in force at its packet drops, and at its refused creates.
    pub segments: Segments,
    pub refused_segments: Segments,
}

/// Groups per cause in a report, unless [`Diagnosis::report_groups`] says.
const DEFAULT_REPORT_GROUPS: usize = 8;

/// Examples kept per group (source addresses of rp_filter drops).
const MAX_EXAMPLES: usize = 5;

#[derive(Debug, Default)]
pub struct Diagnosis {
    pub accept: BTreeMap<ListenerKey, AcceptGroup>,
    /// Accept-queue drops the hooks saw per namespace.
    accept_seen: BTreeMap<NetnsId, u64>,
    /// Drops the hooks could not classify (`other`) per namespace: kernel
    /// counted drops beyond the classified ones may be among them.
    other_seen: BTreeMap<NetnsId, u64>,
    /// Of those, the ones freed in TCP's receive path without a reason
    /// (`tcp_v4_rcv`, `tcp_v4_do_rcv` for a cookie ACK, and v6; NOT_SPECIFIED
    /// or no reasons at all): where
    /// the kernel has no reason for an ACK refused by a full accept queue
    /// (before TCP_LISTEN_OVERFLOW), that is how such ACKs are freed. The
    /// namespace's ListenOverflows beyond what the hooks saw are taken from
    /// them (fusion.rs).
    tcp_rcv_unreasoned: BTreeMap<NetnsId, u64>,
    /// All `other` drops taken in with a known namespace (kept when a
    /// namespace's entry above is forgotten).
    other_placed: u64,
    /// (netns, dev, neighbour) → drops.
    pub neigh_queue: BTreeMap<(NetnsId, String, IpAddr), NeighGroup>,
    /// [ipv4, ipv6].
    pub table: [TableGroup; 2],
    /// (netns, dev) → drops.
    pub rp: BTreeMap<(NetnsId, String), RpGroup>,
    /// The first and the latest full snapshots.
    pub first: Option<Snapshot>,
    pub last: Option<Snapshot>,
    /// Largest accept queue per listener across reads.
    peak_listener: BTreeMap<ListenerKey, (u32, u32)>,
    /// The latest read of every namespace seen (kept after it disappears, while
    /// it matters: namespaces gone without drops or counts are forgotten).
    pub latest_ns: BTreeMap<NetnsId, NetnsSnapshot>,
    /// The observed kernel, when it is not the running one (a replay).
    pub kernel_release: Option<String>,
    /// The kernel gives an ACK refused by a full accept queue a reason of its
    /// own (TCP_LISTEN_OVERFLOW): no unreasoned drop is taken for one then.
    pub acks_have_a_reason: bool,
    /// When the observation started, unix seconds (snapshot `at_s` is relative to it).
    pub start_unix: f64,
    /// CLOCK_MONOTONIC at the start, ns: places refused creates and refused SYNs
    /// (their `ts_ns`) in time. Unset, they count as taken in just after the
    /// latest read.
    pub start_mono_ns: Option<u64>,
    /// Knobs that changed during the observation, bounded.
    pub changes: values::Changes,
    /// Groups per cause in reports (None: [`DEFAULT_REPORT_GROUPS`]).
    pub report_groups: Option<usize>,
    /// Seconds a gone namespace is kept (None: for the whole observation).
    pub retain_s: Option<f64>,
    /// What forgotten namespaces contributed to the totals.
    pub retired: retire::Retired,
    /// The global gc_thresh1..3 last read, [ipv4, ipv6], and when.
    gc_known: [[Option<u64>; 3]; 2],
    gc_read_s: [f64; 2],
    /// The kernel's counters per namespace.
    pub counters: counters::Tracker,
    /// The causes handled from their declarations (causes/).
    pub declared: declared::Declared,
    /// The latest read taken in, seconds since the start.
    now_s: f64,
    /// Unix time minus CLOCK_MONOTONIC, seconds, learned from the drops
    /// (which carry both) where `start_mono_ns` is not set.
    mono_to_unix: Option<f64>,
}

const ETH_P_IPV6: u16 = 0x86dd;

/// The listener a drop at `port` (to `addr`) went to, in one namespace's read.
pub(crate) fn live_listener(
    ns: &NetnsSnapshot,
    port: u16,
    addr: Option<IpAddr>,
) -> Option<&Listener> {
    ns.listeners.iter().find(|l| {
        l.port == port
            && addr.is_none_or(|a| a == l.addr || l.addr.is_unspecified() || a.is_unspecified())
    })
}

/// The knobs of each kind of group, in the order of its [`Vals`].
pub(crate) fn listener_knobs(listen_addr: Option<IpAddr>, port: u16) -> Vec<Knob> {
    let mut k = vec![Knob::Somaxconn];
    if let Some(addr) = listen_addr {
        k.push(Knob::Backlog { addr, port });
    }
    k
}

pub(crate) fn neigh_knobs(dev: &str) -> Vec<Knob> {
    vec![
        Knob::UnresQlenBytes(dev.into()),
        Knob::UnresQlen(dev.into()),
    ]
}

pub(crate) fn rp_knobs(dev: &str) -> Vec<Knob> {
    vec![Knob::RpFilterAll, Knob::RpFilterDev(dev.into())]
}

pub(crate) fn table_knobs(ipv6: bool) -> Vec<Knob> {
    (1..=3).map(|n| Knob::GcThresh { ipv6, n }).collect()
}

fn listener_vals(ns: Option<&NetnsSnapshot>, limit: Option<u32>) -> Vals {
    [
        ns.and_then(|n| n.sysctls.somaxconn),
        limit.map(i64::from),
        None,
    ]
}

fn neigh_vals(ns: Option<&NetnsSnapshot>, dev: &str) -> Vals {
    let d = ns.and_then(|n| n.sysctls.devs.get(dev));
    [
        d.and_then(|d| d.unres_qlen_bytes),
        d.and_then(|d| d.unres_qlen),
        None,
    ]
}

fn rp_vals(ns: Option<&NetnsSnapshot>, dev: &str) -> Vals {
    let s = ns.map(|n| &n.sysctls);
    [
        s.and_then(|s| s.rp_filter_all),
        s.and_then(|s| s.devs.get(dev)).and_then(|d| d.rp_filter),
        None,
    ]
}

impl Diagnosis {
    /// A diagnosis of a kernel other than the running one (a replay).
    pub fn for_kernel(release: &str) -> Diagnosis {
        Diagnosis {
            kernel_release: Some(release.to_string()),
            ..Diagnosis::default()
        }
    }

    /// Seconds since the start of a drop at unix time `ts`.
    fn at_unix(&self, ts: f64) -> f64 {
        if self.start_unix > 0.0 && ts > 0.0 {
            ts - self.start_unix
        } else {
            self.after_latest_read()
        }
    }

    /// Seconds since the start of a record's CLOCK_MONOTONIC `ts_ns`.
    fn at_mono(&self, ts_ns: u64) -> f64 {
        match (self.start_mono_ns, self.mono_to_unix) {
            _ if ts_ns == 0 => self.after_latest_read(),
            (Some(m), _) => (ts_ns as f64 - m as f64) / 1e9,
            (None, Some(off)) if self.start_unix > 0.0 => {
                ts_ns as f64 / 1e9 + off - self.start_unix
            }
            _ => self.after_latest_read(),
        }
    }

    /// Without a clock, a drop taken in counts as just after the latest read.
    fn after_latest_read(&self) -> f64 {
        self.now_s + 1e-3
    }

    fn gc_vals(&self, ipv6: bool) -> Vals {
        self.gc_known[usize::from(ipv6)].map(|v| v.map(|v| v as i64))
    }

    pub fn on_drop(&mut self, ev: &DropView<'_>) {
        let r = ev.rec;
        let netns = r.netns_id();
        let p = r.packet.as_ref();
        let at = self.at_unix(ev.ts);
        if self.mono_to_unix.is_none() && ev.ts > 0.0 && r.ts_ns > 0 {
            self.mono_to_unix = Some(ev.ts - r.ts_ns as f64 / 1e9);
        }
        if crate::causes::spec(ev.cause).declarative() {
            self.declared.on_drop(ev, at);
            return;
        }
        let ns = self.latest_ns.get(&netns);
        match ev.cause {
            Cause::AcceptQueueFull => {
                // The dropped segment goes to the listener: its destination is the listener.
                let port = p.and_then(|p| p.dport).unwrap_or(0);
                let daddr = p.map(|p| p.daddr);
                let live = ns.and_then(|n| live_listener(n, port, daddr));
                // The listener's queue and limit at the drop itself, when the
                // probe read them; else the latest read's.
                let limit = r.accept_queue.map(|(_, lim)| lim);
                let vals = listener_vals(ns, limit.or(live.map(|l| l.backlog)));
                let g = self.accept.entry((netns, port)).or_default();
                g.addr = g.addr.or(daddr);
                g.listen_addr = g.listen_addr.or(live.map(|l| l.addr));
                if let Some((queue, lim)) = r.accept_queue {
                    g.peak_queue = g.peak_queue.max(queue);
                    g.limit = lim;
                }
                let seq = self
                    .changes
                    .latest_seq(Some(netns), &listener_knobs(g.listen_addr, port));
                g.segments.note(vals, seq, 1, at);
                g.ack_drops += 1;
                *self.accept_seen.entry(netns).or_default() += 1;
                self.counters.on_drop(netns, LISTEN_OVERFLOWS, at);
            }
            Cause::NeighQueueFull => {
                if let Some(p) = p {
                    let vals = neigh_vals(ns, &r.dev);
                    let seq = self.changes.latest_seq(Some(netns), &neigh_knobs(&r.dev));
                    let g = self
                        .neigh_queue
                        .entry((netns, r.dev.clone(), p.daddr))
                        .or_default();
                    g.drops += 1;
                    g.segments.note(vals, seq, 1, at);
                }
            }
            Cause::NeighTableOverflow => {
                let ipv6 = r.protocol == ETH_P_IPV6;
                let vals = self.gc_vals(ipv6);
                let seq = self.changes.latest_seq(None, &table_knobs(ipv6));
                let t = &mut self.table[usize::from(ipv6)];
                t.drops += 1;
                t.segments.note(vals, seq, 1, at);
            }
            Cause::RpFilter => {
                let vals = rp_vals(ns, &r.dev);
                let seq = self.changes.latest_seq(Some(netns), &rp_knobs(&r.dev));
                let g = self.rp.entry((netns, r.dev.clone())).or_default();
                g.drops += 1;
                g.segments.note(vals, seq, 1, at);
                if let Some(p) = p
                    && g.sources.len() < MAX_EXAMPLES
                {
                    g.sources.insert(p.saddr);
                }
                self.counters.on_drop(netns, RP_FILTER_DROPS, at);
            }
            Cause::Other if netns.inode != 0 => {
                *self.other_seen.entry(netns).or_default() += 1;
                self.other_placed += 1;
                if !self.acks_have_a_reason && unreasoned_tcp_rcv(&ev.reason, &ev.location) {
                    *self.tcp_rcv_unreasoned.entry(netns).or_default() += 1;
                }
            }
            // Other without a namespace; declarative causes: handled above.
            _ => {}
        }
    }

    pub fn on_neigh_fail(&mut self, rec: &NeighRecord) {
        let ipv6 = rec.family == 10;
        let at = self.at_mono(rec.ts_ns);
        let vals = self.gc_vals(ipv6);
        let seq = self.changes.latest_seq(None, &table_knobs(ipv6));
        let t = &mut self.table[usize::from(ipv6)];
        t.refused += 1;
        t.peak_entries = t.peak_entries.max(rec.entries.max(0) as u64);
        t.refused_segments.note(vals, seq, 1, at);
    }

    pub fn on_listen_drop(&mut self, rec: &ListenRecord) {
        let netns = rec.netns_id();
        let at = self.at_mono(rec.ts_ns);
        let ns = self.latest_ns.get(&netns);
        let live = ns.and_then(|n| live_listener(n, rec.port, Some(rec.addr)));
        // The record carries the limit in force at the drop itself.
        let vals = listener_vals(ns, Some(rec.max_ack_backlog));
        let g = self.accept.entry((netns, rec.port)).or_default();
        g.addr = g.addr.or(Some(rec.addr));
        g.listen_addr = g.listen_addr.or(live.map(|l| l.addr));
        g.syn_drops += 1;
        g.peak_queue = g.peak_queue.max(rec.ack_backlog);
        g.limit = rec.max_ack_backlog;
        let seq = self
            .changes
            .latest_seq(Some(netns), &listener_knobs(g.listen_addr, rec.port));
        g.segments.note(vals, seq, 1, at);
        *self.accept_seen.entry(netns).or_default() += 1;
        self.counters.on_drop(netns, LISTEN_OVERFLOWS, at);
    }

    /// Takes a full snapshot in: the global values and their changes, then
    /// every namespace as [`Diagnosis::on_netns_snapshot`] does.
    pub fn on_snapshot(&mut self, snap: Snapshot) {
        let is_first = self.first.is_none();
        self.now_s = self.now_s.max(snap.at_s);
        for (t, gc) in [snap.gc_thresh4, snap.gc_thresh6].into_iter().enumerate() {
            self.take_gc(t, gc, snap.at_s);
            let entries = if t == 0 { &snap.arp } else { &snap.ndisc };
            if let Some(a) = entries {
                self.table[t].peak_entries = self.table[t].peak_entries.max(a.entries);
            }
        }
        for ns in &snap.netns {
            self.take_ns(snap.at_s, ns.clone(), is_first);
        }
        self.declared.on_snapshot(&snap);
        for id in self.counters.prune(&snap) {
            self.declared.forget(id);
            // It counted nothing: its unclassified drops guard no count.
            self.other_seen.remove(&id);
            self.tcp_rcv_unreasoned.remove(&id);
            // A group's namespace keeps its last read (name, values) while the
            // group is reported, gone or not.
            if self.has_group_in(id) {
                continue;
            }
            self.latest_ns.remove(&id);
            self.peak_listener.retain(|(ns, _), _| *ns != id);
        }
        if is_first {
            self.first = Some(snap.clone());
        }
        self.last = Some(snap);
        self.retire_gone();
    }

    /// One namespace read between full snapshots (the session reads one right
    /// after its first drops, and again shortly after its latest ones, so that
    /// a namespace that lives for a second still has its values and counts).
    /// Updates everything a full snapshot does for it, but not `first`/`last`.
    pub fn on_netns_snapshot(&mut self, at_s: f64, ns: NetnsSnapshot) {
        self.now_s = self.now_s.max(at_s);
        self.take_ns(at_s, ns, false);
    }

    /// The global gc_thresh1..3 of family `t` (0: ipv4, 1: ipv6) as read at `at_s`.
    fn take_gc(&mut self, t: usize, gc: [Option<u64>; 3], at_s: f64) {
        // Older than a read already taken in (a full snapshot started before it).
        if at_s < self.gc_read_s[t] {
            return;
        }
        self.gc_read_s[t] = at_s;
        for (i, v) in gc.into_iter().enumerate() {
            let Some(v) = v else { continue };
            if let Some(old) = self.gc_known[t][i]
                && old != v
            {
                let knob = Knob::GcThresh {
                    ipv6: t == 1,
                    n: i as u8 + 1,
                };
                self.changes.record(None, knob, old as i64, v as i64, at_s);
            }
            self.gc_known[t][i] = Some(v);
        }
    }

    fn take_ns(&mut self, at_s: f64, ns: NetnsSnapshot, is_first: bool) {
        let id = ns.id();
        // A full snapshot taken in after a later read of one of its namespaces
        // (read between its start and its end): that one is already newer.
        if self
            .counters
            .get(id)
            .and_then(|t| t.last_read_s)
            .is_some_and(|r| r > at_s)
        {
            return;
        }
        // The initial namespace shows the (global) IPv4 gc_thresh*: a read of
        // it at a table drop gives the values in force then.
        let s = &ns.sysctls;
        let gc4 = [s.gc_thresh1, s.gc_thresh2, s.gc_thresh3].map(|v| v.map(|v| v.max(0) as u64));
        if gc4.iter().all(Option::is_some) {
            self.take_gc(0, gc4, at_s);
        }
        match self.latest_ns.get(&id) {
            Some(prev) => {
                for (knob, from, to) in values::ns_changes(prev, &ns) {
                    self.changes.record(Some(id), knob, from, to, at_s);
                }
            }
            None => self.backfill(id, &ns),
        }
        for l in &ns.listeners {
            let e = self.peak_listener.entry((id, l.port)).or_default();
            *e = (e.0.max(l.accept_queue), l.backlog);
        }
        let moved = self
            .counters
            .on_read(at_s, &ns, self.first.as_ref(), is_first);
        if let Some(t) = self.counters.get(id) {
            self.declared.on_ns(&ns, t.start);
        }
        // ListenOverflows that moved since its previous read beyond what the
        // hooks saw there: attributed to the listeners full now.
        let seen_now = self.accept_seen.get(&id).copied().unwrap_or(0);
        let unseen = self.counters.get_mut(id).map_or(0, |t| {
            let seen_since = seen_now.saturating_sub(t.seen_at_read);
            t.seen_at_read = seen_now;
            moved.saturating_sub(seen_since)
        });
        if unseen > 0 {
            self.attribute_unseen(at_s, &ns, unseen);
        }
        self.latest_ns.insert(id, ns);
    }

    /// A namespace's first read: the drops taken in before it (their values
    /// unknown then) get the values it shows.
    fn backfill(&mut self, id: NetnsId, ns: &NetnsSnapshot) {
        for ((_, port), g) in self.accept.iter_mut().filter(|((n, _), _)| *n == id) {
            let live = live_listener(ns, *port, g.addr);
            g.listen_addr = g.listen_addr.or(live.map(|l| l.addr));
            g.segments
                .backfill(listener_vals(Some(ns), live.map(|l| l.backlog)));
        }
        for ((_, dev, _), g) in self.neigh_queue.iter_mut().filter(|((n, ..), _)| *n == id) {
            g.segments.backfill(neigh_vals(Some(ns), dev));
        }
        for ((_, dev), g) in self.rp.iter_mut().filter(|((n, _), _)| *n == id) {
            g.segments.backfill(rp_vals(Some(ns), dev));
        }
    }

    /// Whether a group of any cause is in namespace `id`.
    fn has_group_in(&self, id: NetnsId) -> bool {
        self.accept.keys().any(|(ns, _)| *ns == id)
            || self.neigh_queue.keys().any(|(ns, ..)| *ns == id)
            || self.rp.keys().any(|(ns, _)| *ns == id)
            || self.declared.has_group_in(id)
    }

    /// Its namespace no longer existed at the end: absent from the latest full
    /// snapshot (a complete one), and not read since.
    pub fn gone(&self, id: NetnsId) -> bool {
        let Some(last) = &self.last else {
            return false;
        };
        if last.netns_skipped > 0 || last.netns(id).is_some() {
            return false;
        }
        self.counters
            .get(id)
            .and_then(|t| t.last_read_s)
            .is_none_or(|r| r <= last.at_s)
    }

    /// Groups shown per cause for the first four causes (the report's
    /// readers: 8; the exporter sets its `--top`).
    pub fn group_limit(&self) -> usize {
        self.report_groups.unwrap_or(DEFAULT_REPORT_GROUPS)
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

/// A drop freed in TCP's receive path with no reason of its own: on kernels
/// before TCP_LISTEN_OVERFLOW, an ACK refused by a full accept queue is one.
pub(crate) fn unreasoned_tcp_rcv(reason: &str, location: &str) -> bool {
    let sym = location.split('+').next().unwrap_or_default();
    let sym = sym.split('.').next().unwrap_or_default();
    matches!(reason, "NOT_SPECIFIED" | "UNKNOWN")
        && matches!(
            sym,
            "tcp_v4_rcv" | "tcp_v6_rcv" | "tcp_v4_do_rcv" | "tcp_v6_do_rcv"
        )
}

#[cfg(test)]
mod unreasoned_tests {
    #[test]
    fn only_tcp_receive_drops_without_a_reason_are_overflow_candidates() {
        use super::unreasoned_tcp_rcv as u;
        assert!(u("NOT_SPECIFIED", "tcp_v4_rcv+0x9c2"));
        assert!(u("UNKNOWN", "tcp_v6_rcv+0x10"));
        assert!(!u("NO_SOCKET", "tcp_v4_rcv+0x9c2"));
        assert!(u("NOT_SPECIFIED", "tcp_v4_do_rcv+0x40"));
        assert!(!u("NOT_SPECIFIED", "tcp_rcv_established+0x40"));
        assert!(!u("NOT_SPECIFIED", ""));
    }
}
