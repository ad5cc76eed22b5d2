//! Distributions and a drops-over-time chart, for `netdrop hist` and `netdrop replay FILE --hist`. Pure.
//!
//! The caller feeds [`Hists`] with what it reads (no kernel access here):
//!
//! * [`Hists::on_interval`]: the exact drops per cause of one interval, from the kernel's
//!   counters. These give the chart (one row per interval) and the *drops per second*
//!   distribution of each cause.
//! * [`Hists::on_drop`]: one detail event. These give the *burst length* distribution: how
//!   many drops of one cause come back to back.
//! * [`Hists::on_neigh_created`] / [`Hists::on_neigh_resolved`]: neighbour entries. These give
//!   the *resolution latency* (entry created → first REACHABLE, or → FAILED), which is how long
//!   packets wait in the unresolved-neighbour queue, i.e. why that queue fills.
//! * [`Hists::on_accept_queue`]: the accept-queue length (and its limit) at a listener drop.
//!
//! Out come a [`HistReport`] (serde, for `--output json`), a human table ([`Hists::render`]),
//! the chart ([`Hists::chart_row`], [`Hists::chart`]) and HdrHistogram's percentile
//! distribution text ([`Hists::hgrm`], [`percentile_distribution`]) for plotting tools.
//!
//! Every histogram keeps everything recorded since the start (3 significant digits); only the
//! chart rows are capped ([`MAX_INTERVAL_ROWS`]). No input makes this module panic: values
//! beyond [`MAX_VALUE`] are recorded as [`MAX_VALUE`], timestamps that run backwards are
//! tolerated, and counts saturate.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::classify::Cause;

/// Chart rows kept in memory (the latest ones): an hour of 1-second intervals.
pub const MAX_INTERVAL_ROWS: usize = 3600;

/// Neighbour entries waiting for their resolution that are kept; beyond this the oldest
/// pending entry is forgotten (its resolution is then ignored), so memory stays flat.
pub const MAX_PENDING_NEIGH: usize = 65_536;

/// The largest value recorded in a histogram; larger values are recorded as this one.
/// 2^48 is about 9 years in µs, far above any real rate, burst or latency.
pub const MAX_VALUE: u64 = 1 << 48;

/// Widest bar of the chart, in cells (a larger `width` is treated as this one).
pub const MAX_BAR_WIDTH: usize = 1000;

/// Significant decimal digits the histograms keep (HdrHistogram's usual 3: values up to
/// 2048 exactly, larger ones within 0.1 %).
const SIGFIG: u8 = 3;

/// HdrHistogram's usual percentile steps: 5 ticks per half distance to 100 %.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Eighth blocks, 1/8 to 7/8 of a cell (a whole cell is `█`).
const EIGHTHS: [char; 7] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/// How histograms are built from the events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistConfig {
    /// Two drops of one cause belong to the same burst when they are less than this apart (ns).
    pub burst_gap_ns: u64,
}

impl Default for HistConfig {
    /// Bursts end after 100 ms without a drop of their cause.
    fn default() -> HistConfig {
        HistConfig {
            burst_gap_ns: 100_000_000,
        }
    }
}

/// A neighbour entry: the device it is on and the address it resolves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NeighKey {
    /// Interface name, e.g. `eth0`.
    pub dev: String,
    /// The neighbour's address (IPv4 for ARP, IPv6 for NDISC).
    pub addr: IpAddr,
}

/// How a neighbour resolution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighOutcome {
    /// The entry became REACHABLE: the neighbour answered.
    Reachable,
    /// The entry became FAILED: no answer, its queued packets are dropped.
    Failed,
}

/// Summary of one distribution. All zeros when nothing was recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Dist {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Dist {
    /// The summary of `h` (within its 3 significant digits: exact up to 2048).
    pub fn of(h: &Histogram<u64>) -> Dist {
        if h.is_empty() {
            return Dist::default();
        }
        Dist {
            count: h.len(),
            min: h.min(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// The distributions of one cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CauseHists {
    /// Drops per second, one sample per interval from the cause's first drop on.
    pub drops_per_sec: Dist,
    /// Drops per burst, one sample per (closed) burst.
    pub burst_len: Dist,
    /// All drops of the cause over the intervals (exact, from the kernel's counters).
    pub drops: u64,
}

/// Neighbour resolution latency, in µs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NeighHists {
    /// Created → REACHABLE; `None` when none was seen.
    pub reachable: Option<Dist>,
    /// Created → FAILED; `None` when none was seen.
    pub failed: Option<Dist>,
    /// Entries created and not resolved (yet).
    pub pending: u64,
    /// Pending entries forgotten because more than [`MAX_PENDING_NEIGH`] were waiting.
    pub evicted: u64,
}

/// One interval of the chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalRow {
    /// When the interval ended, in seconds since the start.
    pub at_s: f64,
    /// How long it lasted, in seconds.
    pub secs: f64,
    /// Drops in it per cause (`Cause::as_str`), for every cause that had dropped by then.
    pub drops: BTreeMap<String, u64>,
}

/// Everything [`Hists`] knows, for `--output json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistReport {
    /// The nominal interval length in seconds: the longest interval fed (a last, cut-short
    /// interval is shorter; see each row's `secs`). `None` before the first interval.
    pub interval_s: Option<f64>,
    /// Per cause (`Cause::as_str`), for each cause that dropped or had a burst.
    pub causes: BTreeMap<String, CauseHists>,
    /// Neighbour resolution latency.
    pub neigh_resolution_us: NeighHists,
    /// Accept-queue length at drops of full listeners; `None` when none was seen.
    pub accept_queue_at_drop: Option<Dist>,
    /// The largest accept-queue limit (backlog) seen at those drops.
    pub accept_queue_limit: Option<u32>,
    /// The latest intervals, oldest first (at most [`MAX_INTERVAL_ROWS`]).
    pub intervals: Vec<IntervalRow>,
    /// Older intervals no longer kept in `intervals` (still in the distributions).
    pub intervals_omitted: u64,
}

/// A burst still going on: how many drops so far, and when the latest came.
#[derive(Debug, Clone, Copy)]
struct OpenBurst {
    len: u64,
    last_ns: u64,
}

/// The state of one cause.
#[derive(Debug, Clone)]
struct CauseState {
    /// True once an interval counted a drop of this cause: from then on every interval
    /// is a sample of its rate (zero included).
    seen: bool,
    /// Sum over the intervals.
    drops: u64,
    drops_per_sec: Histogram<u64>,
    burst_len: Histogram<u64>,
    burst: Option<OpenBurst>,
}

impl CauseState {
    fn new() -> CauseState {
        CauseState {
            seen: false,
            drops: 0,
            drops_per_sec: new_hist(),
            burst_len: new_hist(),
            burst: None,
        }
    }

    /// Ends the open burst, if any, and records its length.
    fn close_burst(&mut self) {
        if let Some(b) = self.burst.take() {
            record(&mut self.burst_len, b.len);
        }
    }
}

/// One kept interval.
#[derive(Debug, Clone)]
struct Row {
    at_s: f64,
    secs: f64,
    /// Drops per cause, for every cause seen by then.
    drops: BTreeMap<Cause, u64>,
}

impl Row {
    /// Drops per second of `cause` in this row (0 when it had no drops or no duration).
    fn rate(&self, cause: Cause) -> u64 {
        rate(self.drops.get(&cause).copied().unwrap_or(0), self.secs).unwrap_or(0)
    }
}

/// A created neighbour entry waiting for its resolution.
#[derive(Debug, Clone, Copy)]
struct Pending {
    created_ns: u64,
    /// Order of creation, the key into `Hists::pending_order`.
    seq: u64,
}

/// All histograms of a session, fed event by event. See the module documentation.
#[derive(Debug, Clone)]
pub struct Hists {
    cfg: HistConfig,
    causes: BTreeMap<Cause, CauseState>,
    rows: VecDeque<Row>,
    rows_omitted: u64,
    /// Longest interval fed, in seconds.
    interval_s: Option<f64>,
    /// Largest rate of any cause in any interval: the full length of a chart bar.
    max_rate: u64,
    pending: HashMap<NeighKey, Pending>,
    /// Pending entries by creation order, to evict the oldest.
    pending_order: BTreeMap<u64, NeighKey>,
    next_seq: u64,
    pending_cap: usize,
    evicted: u64,
    reachable_us: Histogram<u64>,
    failed_us: Histogram<u64>,
    accept_queue: Histogram<u64>,
    accept_limit: Option<u32>,
}

impl Hists {
    /// Empty histograms.
    pub fn new(cfg: HistConfig) -> Hists {
        Hists {
            cfg,
            causes: BTreeMap::new(),
            rows: VecDeque::new(),
            rows_omitted: 0,
            interval_s: None,
            max_rate: 0,
            pending: HashMap::new(),
            pending_order: BTreeMap::new(),
            next_seq: 0,
            pending_cap: MAX_PENDING_NEIGH,
            evicted: 0,
            reachable_us: new_hist(),
            failed_us: new_hist(),
            accept_queue: new_hist(),
            accept_limit: None,
        }
    }

    /// The exact drops per cause in one interval of `secs` seconds that ended `at_s` seconds
    /// after start (from the kernel's counters, so they hold even when detail events were
    /// lost): records each cause's rate (drops/s, rounded) into its drops-per-second
    /// histogram — also zero rates for causes that had drops earlier in the session (a quiet
    /// second is a sample too; causes never seen are not recorded) — and keeps the row for
    /// the chart.
    ///
    /// A cause listed twice counts the sum. An interval whose `secs` is not a positive
    /// number has no rate: its drops count in the totals and its row is kept, but no rate is
    /// recorded.
    pub fn on_interval(&mut self, at_s: f64, secs: f64, per_cause: &[(Cause, u64)]) {
        let mut counts: BTreeMap<Cause, u64> = BTreeMap::new();
        for &(cause, n) in per_cause {
            let sum = counts.entry(cause).or_insert(0);
            *sum = sum.saturating_add(n);
        }
        for (&cause, &n) in &counts {
            if n > 0 {
                let state = self.causes.entry(cause).or_insert_with(CauseState::new);
                state.seen = true;
                state.drops = state.drops.saturating_add(n);
            }
        }

        let mut row = Row {
            at_s,
            secs,
            drops: BTreeMap::new(),
        };
        for (&cause, state) in self.causes.iter_mut().filter(|(_, s)| s.seen) {
            let n = counts.get(&cause).copied().unwrap_or(0);
            if let Some(r) = rate(n, secs) {
                record(&mut state.drops_per_sec, r);
                self.max_rate = self.max_rate.max(r);
            }
            row.drops.insert(cause, n);
        }
        if secs.is_finite() && secs > 0.0 {
            self.interval_s = Some(self.interval_s.map_or(secs, |s| s.max(secs)));
        }

        if self.rows.len() >= MAX_INTERVAL_ROWS {
            self.rows.pop_front();
            self.rows_omitted = self.rows_omitted.saturating_add(1);
        }
        self.rows.push_back(row);
    }

    /// One drop event (detail): bursts. A burst is a maximal run of drops of one cause whose
    /// gaps are all < `burst_gap_ns`; its length is the number of drops in it. Timestamps are
    /// kernel monotonic ns and may arrive slightly out of order across CPUs (tolerated: a ts
    /// earlier than the last continues the burst).
    ///
    /// A burst's length is recorded when it closes: at the first drop of its cause that comes
    /// a gap or more later, at [`Hists::close_idle_bursts`], or at [`Hists::finish`].
    pub fn on_drop(&mut self, cause: Cause, ts_ns: u64) {
        let gap = self.cfg.burst_gap_ns;
        let state = self.causes.entry(cause).or_insert_with(CauseState::new);
        match &mut state.burst {
            Some(b) if ts_ns <= b.last_ns || ts_ns - b.last_ns < gap => {
                b.len = b.len.saturating_add(1);
                b.last_ns = b.last_ns.max(ts_ns);
            }
            _ => {
                state.close_burst();
                state.burst = Some(OpenBurst {
                    len: 1,
                    last_ns: ts_ns,
                });
            }
        }
    }

    /// Closes the bursts whose latest drop is at least `burst_gap_ns` before `now_ns` (kernel
    /// monotonic ns): they cannot continue, so a live view may count them now rather than at
    /// the next drop of their cause.
    pub fn close_idle_bursts(&mut self, now_ns: u64) {
        let gap = self.cfg.burst_gap_ns;
        for state in self.causes.values_mut() {
            if state
                .burst
                .is_some_and(|b| now_ns.saturating_sub(b.last_ns) >= gap)
            {
                state.close_burst();
            }
        }
    }

    /// A neighbour entry was created (successfully) at `ts_ns`. Creating an entry that is
    /// already pending restarts its clock. Beyond [`MAX_PENDING_NEIGH`] pending entries the
    /// oldest is forgotten.
    pub fn on_neigh_created(&mut self, key: NeighKey, ts_ns: u64) {
        if let Some(old) = self.pending.remove(&key) {
            self.pending_order.remove(&old.seq);
        }
        while self.pending.len() >= self.pending_cap {
            let Some((_, oldest)) = self.pending_order.pop_first() else {
                break;
            };
            self.pending.remove(&oldest);
            self.evicted = self.evicted.saturating_add(1);
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.pending_order.insert(seq, key.clone());
        self.pending.insert(
            key,
            Pending {
                created_ns: ts_ns,
                seq,
            },
        );
    }

    /// The entry reached REACHABLE or FAILED: records ts − created (µs, rounded down; 0 if
    /// the resolution's ts is earlier) in that outcome's histogram, once per creation (later
    /// updates of the same entry are ignored until it is created again). No matching create
    /// (or a forgotten one): ignored.
    pub fn on_neigh_resolved(&mut self, key: &NeighKey, ts_ns: u64, outcome: NeighOutcome) {
        let Some(p) = self.pending.remove(key) else {
            return;
        };
        self.pending_order.remove(&p.seq);
        let us = ts_ns.saturating_sub(p.created_ns) / 1000;
        match outcome {
            NeighOutcome::Reachable => record(&mut self.reachable_us, us),
            NeighOutcome::Failed => record(&mut self.failed_us, us),
        }
    }

    /// Accept queue length and its limit when a drop happened at a full listener.
    pub fn on_accept_queue(&mut self, queue: u32, limit: u32) {
        record(&mut self.accept_queue, u64::from(queue));
        self.accept_limit = Some(self.accept_limit.map_or(limit, |l| l.max(limit)));
    }

    /// Closes open bursts (call at the end).
    pub fn finish(&mut self) {
        for state in self.causes.values_mut() {
            state.close_burst();
        }
    }

    /// The numbers, for `--output json`. Bursts still open are not in it (see
    /// [`Hists::finish`]).
    pub fn report(&self) -> HistReport {
        let causes = self
            .causes
            .iter()
            .filter(|(_, s)| s.seen || !s.burst_len.is_empty())
            .map(|(c, s)| {
                let hists = CauseHists {
                    drops_per_sec: Dist::of(&s.drops_per_sec),
                    burst_len: Dist::of(&s.burst_len),
                    drops: s.drops,
                };
                (c.as_str().to_string(), hists)
            })
            .collect();
        let intervals = self
            .rows
            .iter()
            .map(|r| IntervalRow {
                at_s: r.at_s,
                secs: r.secs,
                drops: r
                    .drops
                    .iter()
                    .map(|(c, n)| (c.as_str().to_string(), *n))
                    .collect(),
            })
            .collect();
        HistReport {
            interval_s: self.interval_s,
            causes,
            neigh_resolution_us: NeighHists {
                reachable: non_empty(&self.reachable_us),
                failed: non_empty(&self.failed_us),
                pending: self.pending.len() as u64,
                evicted: self.evicted,
            },
            accept_queue_at_drop: non_empty(&self.accept_queue),
            accept_queue_limit: self.accept_limit,
            intervals,
            intervals_omitted: self.rows_omitted,
        }
    }
}

/// An empty auto-resizing histogram with [`SIGFIG`] digits.
fn new_hist() -> Histogram<u64> {
    Histogram::new(SIGFIG).expect("3 significant digits is a valid histogram")
}

/// Records `value` (at most [`MAX_VALUE`]); never fails.
fn record(h: &mut Histogram<u64>, value: u64) {
    let value = value.min(MAX_VALUE);
    if h.record(value).is_err() {
        // Only if growing failed: clamp into the current range instead.
        h.saturating_record(value);
    }
}

/// Drops per second, rounded; `None` when `secs` is not a positive number.
fn rate(drops: u64, secs: f64) -> Option<u64> {
    if secs.is_finite() && secs > 0.0 {
        // `as` saturates: a rate too large for u64 becomes u64::MAX.
        Some((drops as f64 / secs).round() as u64)
    } else {
        None
    }
}

/// `Some(summary)` of a non-empty histogram.
fn non_empty(h: &Histogram<u64>) -> Option<Dist> {
    (!h.is_empty()).then(|| Dist::of(h))
}

mod text;
pub use text::percentile_distribution;

#[cfg(test)]
mod tests;
