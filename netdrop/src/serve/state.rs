//! What the exporter knows between scrapes, fed by the session like any sink
//! ([`MetricsSink`]) and read by the encoder (encode.rs) at each scrape.
//!
//! Everything here is bounded whatever the node does: per-namespace and
//! per-group series are capped at `top` per cause (the rest add up in one
//! `other` series), and a namespace's series go once it has been gone (absent
//! from the snapshots, without drops) for `--retain` ([`RETAIN_S`]).

use std::{
    collections::BTreeMap,
    io,
    sync::{Arc, Mutex},
    time::Instant,
};

use crate::{
    container::Identity,
    decode::ListenRecord,
    diagnose::{
        Report,
        model::{CounterRow, Group},
    },
    event::DropView,
    netns_id::NetnsId,
    owner::Owner,
    sink::Sink,
    snapshot::{NetnsSnapshot, Snapshot},
    summary::{Session, Summary},
};

/// How long a namespace's series outlive it (absent from snapshots, no
/// drops), unless `serve --retain` says.
pub const RETAIN_S: f64 = 600.0;

/// The labels of a namespace (its pod and container where known).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct NsLabels {
    pub netns: String,
    /// Tells apart namespaces that had the same inode (the kernel reuses
    /// them): the kernel's `net_cookie`, or netdrop's generation of the inode.
    pub netns_cookie: String,
    pub netns_name: String,
    pub pod: String,
    pub pod_namespace: String,
    pub container: String,
}

impl NsLabels {
    fn of(id: NetnsId) -> NsLabels {
        NsLabels {
            netns: id.inode.to_string(),
            netns_cookie: id.cookie.to_string(),
            ..NsLabels::default()
        }
    }

    pub fn other_row() -> NsLabels {
        NsLabels {
            netns: "other".into(),
            ..NsLabels::default()
        }
    }
}

/// A count per key, at most `cap` keys; the rest in `other`.
#[derive(Debug, Default)]
pub struct Bounded<K: Ord> {
    pub keys: BTreeMap<K, (u64, f64)>,
    pub other: u64,
    /// Increments that went to `other` because the cap was reached.
    pub folded: u64,
}

impl<K: Ord> Bounded<K> {
    /// Adds `n` to `k` (or to `other` when `k` is new and `cap` keys are
    /// kept); `now` marks it alive.
    fn add(&mut self, k: K, n: u64, now: f64, cap: usize) {
        if let Some(e) = self.keys.get_mut(&k) {
            e.0 += n;
            e.1 = now;
        } else if self.keys.len() < cap {
            self.keys.insert(k, (n, now));
        } else {
            self.other += n;
            self.folded += n;
        }
    }

    /// Sets `k` to at least `v` (a total read elsewhere, kept monotonic).
    fn raise(&mut self, k: K, v: u64, now: f64, cap: usize) -> bool {
        if let Some(e) = self.keys.get_mut(&k) {
            e.0 = e.0.max(v);
            e.1 = now;
            true
        } else if self.keys.len() < cap {
            self.keys.insert(k, (v, now));
            true
        } else {
            false
        }
    }

    /// Drops the keys not alive since `before`; what they counted moves to
    /// `other`, so the sum over a cause's series never goes down.
    fn expire(&mut self, before: f64) {
        let mut moved = 0;
        self.keys.retain(|_, (n, seen)| {
            let keep = *seen >= before;
            if !keep {
                moved += *n;
            }
            keep
        });
        self.other += moved;
    }
}

/// An accept queue as last read, with its peak since the previous scrape.
#[derive(Debug, Clone, Default)]
pub struct ListenerGauge {
    pub labels: NsLabels,
    pub queue: u32,
    pub peak: u32,
    pub limit: u32,
}

/// A namespace's saturation as last read.
#[derive(Debug, Clone, Default)]
pub struct NsGauges {
    pub labels: NsLabels,
    pub conntrack: Option<(i64, i64)>,
    /// Device → effective rp_filter.
    pub rp_filter: BTreeMap<String, i64>,
    pub seen: f64,
}

#[derive(Debug)]
pub struct State {
    pub top: usize,
    /// Seconds a gone namespace's series are kept.
    pub retain_s: f64,
    pub started: Instant,
    pub version: String,
    pub kernel: String,
    pub hooks_attached: Vec<String>,
    pub hooks_missing: Vec<String>,
    pub summary: Summary,
    pub session: Session,
    /// (cause, netns identity) → drops seen there.
    pub netns_drops: BTreeMap<&'static str, Bounded<NetnsId>>,
    /// (kind, netns, group) of a cause → its drops in the latest report.
    pub group_drops: BTreeMap<&'static str, Bounded<(String, NetnsId, String)>>,
    /// The cause's drops in groups the report did not show (beyond its top).
    pub group_rest: BTreeMap<&'static str, u64>,
    /// (cause, counter) → the kernel's count during the observation.
    pub kernel_counters: BTreeMap<(&'static str, String), u64>,
    pub advice: Vec<[String; 5]>,
    /// The latest labels of each namespace seen.
    pub labels: BTreeMap<NetnsId, NsLabels>,
    pub ns: BTreeMap<NetnsId, NsGauges>,
    pub listeners: BTreeMap<(NetnsId, String), ListenerGauge>,
    /// (netns, device) → unres_qlen_bytes in force where its queue dropped.
    pub unres_qlen_bytes: BTreeMap<(NetnsId, String), i64>,
    pub last_snapshot: Option<Instant>,
    pub snapshot_errors: u64,
    /// Seconds since the start of the latest event or read taken in.
    now: f64,
}

impl State {
    pub fn new(top: usize) -> State {
        State {
            top,
            retain_s: RETAIN_S,
            started: Instant::now(),
            version: env!("CARGO_PKG_VERSION").into(),
            kernel: String::new(),
            hooks_attached: Vec::new(),
            hooks_missing: Vec::new(),
            summary: Summary::default(),
            session: Session::default(),
            netns_drops: BTreeMap::new(),
            group_drops: BTreeMap::new(),
            group_rest: BTreeMap::new(),
            kernel_counters: BTreeMap::new(),
            advice: Vec::new(),
            labels: BTreeMap::new(),
            ns: BTreeMap::new(),
            listeners: BTreeMap::new(),
            unres_qlen_bytes: BTreeMap::new(),
            last_snapshot: None,
            snapshot_errors: 0,
            now: 0.0,
        }
    }

    fn tick_now(&mut self) -> f64 {
        self.now = self.now.max(self.started.elapsed().as_secs_f64());
        self.now
    }

    pub fn ns_labels(&self, id: NetnsId) -> NsLabels {
        self.labels
            .get(&id)
            .cloned()
            .unwrap_or_else(|| NsLabels::of(id))
    }

    /// Notes a namespace's name and the pod or container living in it.
    fn learn(&mut self, id: NetnsId, name: Option<&str>, identity: Option<&Identity>) {
        let l = self.labels.entry(id).or_insert_with(|| NsLabels::of(id));
        if let Some(n) = name {
            l.netns_name = n.to_string();
        }
        if let Some(i) = identity {
            let c = i.labels();
            l.pod_namespace = c.pod_namespace.unwrap_or_default();
            // The name where the runtime says, else the short id; a pod's
            // namespace belongs to its sandbox, which is no container of note.
            let id = c.container.filter(|_| c.pod.is_none());
            l.container = c.container_name.or(id).unwrap_or_default();
            l.pod = c.pod.unwrap_or_default();
        }
    }

    /// One namespace's read: its gauges and listeners replace the previous.
    fn take_ns(&mut self, ns: &NetnsSnapshot) {
        let id = ns.id();
        // The read's time: every namespace of one snapshot is alive at it.
        let now = self.now;
        self.learn(id, ns.name.as_deref(), ns.identity.as_ref());
        let labels = self.ns_labels(id);
        if ns.listen_overflows.is_none() {
            self.snapshot_errors += 1;
        }
        let knob = |k: &str| ns.knobs.get(k).copied();
        let conntrack = knob("net.netfilter.nf_conntrack_count")
            .zip(knob("net.netfilter.nf_conntrack_max"))
            .filter(|(_, max)| *max > 0);
        let rp_filter = ns
            .sysctls
            .devs
            .keys()
            .filter_map(|d| Some((d.clone(), ns.sysctls.effective_rp_filter(d)?)))
            .filter(|(_, v)| *v != 0)
            .collect();
        self.ns.insert(
            id,
            NsGauges {
                labels: labels.clone(),
                conntrack,
                rp_filter,
                seen: now,
            },
        );
        let mut fresh: BTreeMap<(NetnsId, String), ListenerGauge> = ns
            .listeners
            .iter()
            .map(|l| {
                let key = (id, listener_name(l.addr, l.port));
                let peak = self
                    .listeners
                    .get(&key)
                    .map_or(0, |g| g.peak)
                    .max(l.accept_queue);
                let g = ListenerGauge {
                    labels: labels.clone(),
                    queue: l.accept_queue,
                    peak,
                    limit: l.backlog,
                };
                (key, g)
            })
            .collect();
        self.listeners.retain(|(n, _), _| *n != id);
        self.listeners.append(&mut fresh);
        for b in self.netns_drops.values_mut() {
            if let Some(e) = b.keys.get_mut(&id) {
                e.1 = now;
            }
        }
        for b in self.group_drops.values_mut() {
            for ((_, n, _), e) in b.keys.iter_mut() {
                if *n == id {
                    e.1 = now;
                }
            }
        }
    }

    /// Forgets the namespaces not alive for `retain_s`.
    fn expire(&mut self) {
        let before = self.now - self.retain_s;
        for b in self.netns_drops.values_mut() {
            b.expire(before);
        }
        for b in self.group_drops.values_mut() {
            b.expire(before);
        }
        self.ns.retain(|_, g| g.seen >= before);
        let alive: std::collections::BTreeSet<NetnsId> = self
            .ns
            .keys()
            .copied()
            .chain(
                self.netns_drops
                    .values()
                    .flat_map(|b| b.keys.keys().copied()),
            )
            .chain(
                self.group_drops
                    .values()
                    .flat_map(|b| b.keys.keys().map(|(_, n, _)| *n)),
            )
            .collect();
        self.labels.retain(|id, _| alive.contains(id));
        self.listeners.retain(|(id, _), _| alive.contains(id));
        self.unres_qlen_bytes
            .retain(|(id, _), _| alive.contains(id));
    }

    /// After a scrape: peaks start again from the queues now.
    pub fn scraped(&mut self) {
        for g in self.listeners.values_mut() {
            g.peak = g.queue;
        }
    }

    fn take_report(&mut self, r: &Report) {
        let now = self.tick_now();
        let top = self.top;
        self.advice = r
            .causes
            .iter()
            .flat_map(|c| &c.advice)
            .flat_map(|a| {
                a.knobs.iter().map(|k| {
                    let show = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
                    [
                        a.cause.as_str().to_string(),
                        k.name.clone(),
                        show(k.current),
                        show(k.suggested),
                        a.subject.clone(),
                    ]
                })
            })
            .take(top * 4)
            .collect();
        for c in &r.causes {
            let cause = c.cause.as_str();
            let groups = self.group_drops.entry(cause).or_default();
            let mut shown = 0;
            for g in &c.groups {
                let (kind, netns, name, drops) = group_key(g);
                if groups.raise((kind.into(), netns, name), drops, now, top) {
                    shown += drops;
                }
            }
            let rest = self.group_rest.entry(cause).or_default();
            *rest = (*rest).max(c.drops.saturating_sub(shown));
            // The cause's own global counter where no counter row has it.
            if let Some(k) = &c.kernel_counter
                && !r.kernel_counters.iter().any(|row| row.cause == c.cause)
            {
                self.raise_counter(cause, &k.name, k.delta);
            }
            for g in &c.groups {
                if let Group::Neighbour {
                    netns,
                    netns_cookie,
                    dev,
                    unres_qlen_bytes: Some(v),
                    ..
                } = g
                {
                    let id = NetnsId::new(*netns as u32, *netns_cookie);
                    if self.unres_qlen_bytes.len() < top
                        || self.unres_qlen_bytes.contains_key(&(id, dev.clone()))
                    {
                        self.unres_qlen_bytes.insert((id, dev.clone()), *v);
                    }
                }
            }
        }
        for CounterRow {
            cause,
            counter,
            kernel,
            ..
        } in &r.kernel_counters
        {
            if let Some(v) = kernel {
                self.raise_counter(cause.as_str(), counter, *v);
            }
        }
    }

    fn raise_counter(&mut self, cause: &'static str, counter: &str, v: u64) {
        let e = self
            .kernel_counters
            .entry((cause, counter.to_string()))
            .or_default();
        *e = (*e).max(v);
    }
}

/// A report group as (kind, namespace, name, drops).
fn group_key(g: &Group) -> (&'static str, NetnsId, String, u64) {
    let id = |n: &u64, c: &u64| NetnsId::new(*n as u32, *c);
    match g {
        Group::Listener {
            netns,
            netns_cookie,
            listener,
            drops,
            ..
        } => (
            "listener",
            id(netns, netns_cookie),
            listener.clone(),
            *drops,
        ),
        Group::Neighbour {
            netns,
            netns_cookie,
            neighbour,
            dev,
            drops,
            ..
        } => (
            "neighbour",
            id(netns, netns_cookie),
            format!("{neighbour} dev {dev}"),
            *drops,
        ),
        Group::Table { family, drops, .. } => {
            ("table", NetnsId::default(), family.to_string(), *drops)
        }
        Group::Device {
            netns,
            netns_cookie,
            dev,
            drops,
            ..
        } => ("device", id(netns, netns_cookie), dev.clone(), *drops),
        Group::Declared {
            netns,
            netns_cookie,
            key,
            drops,
            ..
        } => {
            let (kind, name) = key.metric_label();
            (kind, id(netns, netns_cookie), name, *drops)
        }
    }
}

fn listener_name(addr: std::net::IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}

/// The session's sink for `serve`: every event and read goes into the shared
/// [`State`] the scrapes read.
pub struct MetricsSink {
    pub state: Arc<Mutex<State>>,
}

impl MetricsSink {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A panic while holding the lock poisons it; the state is still
        // counts and gauges, good to serve.
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }
}

impl Sink for MetricsSink {
    fn on_drop(&mut self, ev: &DropView<'_>) -> io::Result<()> {
        self.with(|s| {
            let id = ev.rec.netns_id();
            s.learn(id, ev.netns_name.as_deref(), ev.netns_identity.as_ref());
            let (now, top) = (s.tick_now(), s.top);
            s.netns_drops
                .entry(ev.cause.as_str())
                .or_default()
                .add(id, 1, now, top);
        });
        Ok(())
    }

    fn on_listen_drop(
        &mut self,
        rec: &ListenRecord,
        owner: Option<&Owner>,
        _ts: f64,
    ) -> io::Result<()> {
        self.with(|s| {
            let id = rec.netns_id();
            // A listener's owner lives in the listener's namespace.
            s.learn(id, None, owner.and_then(Owner::identity));
            let (now, top) = (s.tick_now(), s.top);
            s.netns_drops
                .entry(crate::classify::Cause::AcceptQueueFull.as_str())
                .or_default()
                .add(id, 1, now, top);
            let labels = s.ns_labels(id);
            let g = s
                .listeners
                .entry((id, listener_name(rec.addr, rec.port)))
                .or_insert_with(|| ListenerGauge {
                    labels,
                    ..ListenerGauge::default()
                });
            g.peak = g.peak.max(rec.ack_backlog);
            g.limit = rec.max_ack_backlog;
        });
        Ok(())
    }

    fn tick(&mut self, summary: &Summary, session: &Session) -> io::Result<()> {
        self.with(|s| {
            s.summary = summary.clone();
            s.session = *session;
        });
        Ok(())
    }

    fn finish(&mut self, summary: &Summary, session: &Session) -> io::Result<()> {
        self.tick(summary, session)
    }

    fn wants_live_report(&self) -> bool {
        true
    }

    fn on_report(&mut self, report: &Report) -> io::Result<()> {
        self.with(|s| s.take_report(report));
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn on_start(&mut self, header: &crate::record::Header) -> io::Result<()> {
        self.with(|s| {
            s.kernel = header.kernel_release.clone();
            s.hooks_attached = header.hooks.attached.clone();
            s.hooks_missing = header
                .hooks
                .unavailable
                .iter()
                .map(|u| u.split(':').next().unwrap_or(u).trim().to_string())
                .collect();
        });
        Ok(())
    }

    fn on_snapshot(&mut self, snap: &Snapshot) -> io::Result<()> {
        self.with(|s| {
            s.tick_now();
            for ns in &snap.netns {
                s.take_ns(ns);
            }
            if snap.arp.is_none() {
                s.snapshot_errors += 1;
            }
            // Namespaces beyond the snapshot's cap were not read: none of
            // them is taken for gone.
            if snap.netns_skipped == 0 {
                s.expire();
            }
            s.last_snapshot = Some(Instant::now());
        });
        Ok(())
    }

    fn on_netns_snapshot(&mut self, _at_s: f64, ns: &NetnsSnapshot) -> io::Result<()> {
        self.with(|s| {
            s.tick_now();
            s.take_ns(ns);
        });
        Ok(())
    }
}
