//! The diagnosis report: causes ranked by drops, each with its groups (the
//! listener, neighbour, table or device), the values in force at their drops
//! and the changes made to them, the advice, and the kernel's own counters
//! beside what netdrop saw.

use std::net::IpAddr;

use serde::Serialize;

use super::{Diagnosis, counters, groups};
use crate::{
    advice::Advice,
    classify::{Cause, cause_of},
    sink::Session,
    summary::Summary,
};

/// Which hooks ran, for the report header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Hooks {
    pub attached: Vec<String>,
    /// `slot: what replaces it`.
    pub unavailable: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub duration_s: f64,
    pub kernel: String,
    pub hooks: Hooks,
    /// The four causes with drops, most drops first.
    pub causes: Vec<CauseReport>,
    /// Everything else, by kernel reason, most first.
    pub other_reasons: Vec<(String, u64)>,
    pub kernel_counters: Vec<CounterRow>,
    pub totals: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct CauseReport {
    pub cause: Cause,
    pub meaning: &'static str,
    /// seen_by_hooks + counted_by_kernel_only.
    pub drops: u64,
    pub seen_by_hooks: u64,
    /// Drops the kernel's counters show that no hook saw (e.g. SYNs refused by a
    /// full accept queue where tcp_conn_request cannot be hooked).
    pub counted_by_kernel_only: u64,
    pub groups: Vec<Group>,
    pub advice: Vec<Advice>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Group {
    /// Values in force at its latest drops; `queue` is now (None once closed).
    Listener {
        netns: u64,
        netns_cookie: u64,
        netns_name: Option<String>,
        listener: String,
        queue: Option<u32>,
        limit: Option<u32>,
        peak_queue: Option<u32>,
        somaxconn: Option<i64>,
        drops: u64,
        drops_seen: u64,
        drops_counted_only: u64,
        /// The listener no longer existed at the end (or its namespace).
        closed: bool,
        changes: Vec<ChangeReport>,
        gone: bool,
    },
    /// Values in force at its latest drops; `state` is the entry's latest.
    Neighbour {
        netns: u64,
        netns_cookie: u64,
        netns_name: Option<String>,
        neighbour: IpAddr,
        dev: String,
        state: Option<String>,
        unres_qlen_bytes: Option<i64>,
        unres_qlen: Option<i64>,
        drops: u64,
        changes: Vec<ChangeReport>,
        gone: bool,
    },
    /// `gc_thresh` in force at its latest drops; `entries` now.
    Table {
        family: &'static str,
        entries: Option<u64>,
        peak: u64,
        gc_thresh: [Option<u64>; 3],
        incomplete: u64,
        failed: u64,
        drops: u64,
        refused_creates: u64,
        changes: Vec<ChangeReport>,
        gone: bool,
    },
    /// Values in force at its latest drops.
    Device {
        netns: u64,
        netns_cookie: u64,
        netns_name: Option<String>,
        dev: String,
        rp_filter_all: Option<i64>,
        rp_filter_dev: Option<i64>,
        effective: Option<i64>,
        drops: u64,
        sources: Vec<IpAddr>,
        changes: Vec<ChangeReport>,
        gone: bool,
    },
}

/// A knob of a group that changed during the observation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeReport {
    /// The sysctl's name, or `listen() backlog of <listener>`.
    pub knob: String,
    pub from: i64,
    pub to: i64,
    /// When a read first showed the new value, unix seconds.
    pub at: f64,
    /// The group's drops taken in before and after it.
    pub drops_before: u64,
    pub drops_after: u64,
    /// The advice credits it with stopping the drops.
    pub stopped: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CounterRow {
    pub cause: Cause,
    pub counter: &'static str,
    /// Change of the kernel's counter during the observation, summed over the
    /// namespaces, each up to its last read (None: not readable).
    pub kernel: Option<u64>,
    /// What netdrop attributed to the cause from its hooks.
    pub netdrop_seen: u64,
    /// Some namespace's count may be short (it vanished after drops made after
    /// its last read, or it may have counted before its first): `kernel` is a
    /// lower bound.
    pub incomplete: bool,
}

pub(super) fn ns_label(netns: impl std::fmt::Display, name: &Option<String>) -> String {
    match name {
        Some(n) => format!("{n} ({netns})"),
        None => netns.to_string(),
    }
}

pub fn build(d: &Diagnosis, summary: &Summary, session: &Session, hooks: Hooks) -> Report {
    // Drops known only from the kernel's counters: already in the summary when
    // the session added them (Summary::with_kernel_only), else added here, so
    // the totals are the same either way.
    let ours = d.kernel_only();
    let count = |c: Cause| -> (u64, u64) {
        let in_summary = summary.kernel_only(c);
        let mine = ours.get(&c).copied().unwrap_or(0);
        if in_summary > 0 || mine == 0 {
            (summary.cause(c), in_summary)
        } else {
            (summary.cause(c) + mine, mine)
        }
    };
    let mut causes = Vec::new();
    let (g, a) = groups::accept(d);
    push_cause(&mut causes, Cause::AcceptQueueFull, count, g, a);
    let (g, a) = groups::neigh_queue(d);
    push_cause(&mut causes, Cause::NeighQueueFull, count, g, a);
    let (g, a) = groups::tables(d);
    push_cause(&mut causes, Cause::NeighTableOverflow, count, g, a);
    let (g, a) = groups::devices(d);
    push_cause(&mut causes, Cause::RpFilter, count, g, a);
    causes.sort_by_key(|c| std::cmp::Reverse(c.drops));

    let mut other_reasons: Vec<(String, u64)> = summary
        .reasons
        .iter()
        .filter(|(r, _)| cause_of(r) == Cause::Other)
        .map(|(r, n)| (r.clone(), *n))
        .collect();
    other_reasons.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    other_reasons.truncate(10);

    Report {
        duration_s: session.duration_s,
        kernel: d.kernel_release.clone().unwrap_or_else(kernel_release),
        hooks,
        causes,
        other_reasons,
        kernel_counters: counter_rows(d, summary, count),
        totals: summary.clone(),
    }
}

fn push_cause(
    out: &mut Vec<CauseReport>,
    cause: Cause,
    count: impl Fn(Cause) -> (u64, u64),
    groups: Vec<Group>,
    advice: Vec<Advice>,
) {
    let (drops, kernel_only) = count(cause);
    if drops == 0 {
        return;
    }
    out.push(CauseReport {
        cause,
        meaning: cause.meaning(),
        drops,
        seen_by_hooks: drops.saturating_sub(kernel_only),
        counted_by_kernel_only: kernel_only,
        groups,
        advice,
    });
}

fn counter_rows(
    d: &Diagnosis,
    s: &Summary,
    count: impl Fn(Cause) -> (u64, u64),
) -> Vec<CounterRow> {
    let seen = |c: Cause| {
        let (drops, kernel_only) = count(c);
        drops.saturating_sub(kernel_only)
    };
    let ns_row = |cause: Cause, counter: &'static str, index: usize| {
        let (kernel, incomplete) = d.counters.total(index);
        CounterRow {
            cause,
            counter,
            kernel,
            netdrop_seen: seen(cause),
            incomplete,
        }
    };
    // The neighbour tables are global: first and last full snapshots.
    let arp = |f: fn(&crate::context::ArpCacheStats) -> u64| -> Option<u64> {
        let (a, b) = (d.first.as_ref()?, d.last.as_ref()?);
        let get = |s: &super::Snapshot| {
            s.arp.as_ref().map(f).unwrap_or(0) + s.ndisc.as_ref().map(f).unwrap_or(0)
        };
        b.arp.as_ref().map(|_| get(b).saturating_sub(get(a)))
    };
    vec![
        ns_row(
            Cause::AcceptQueueFull,
            "TcpExt:ListenOverflows",
            counters::LISTEN_OVERFLOWS,
        ),
        ns_row(
            Cause::RpFilter,
            "TcpExt:IPReversePathFilter",
            counters::RP_FILTER_DROPS,
        ),
        CounterRow {
            cause: Cause::NeighQueueFull,
            counter: "arp_cache+ndisc_cache unresolved_discards",
            kernel: arp(|c| c.unresolved_discards),
            netdrop_seen: seen(Cause::NeighQueueFull),
            incomplete: false,
        },
        CounterRow {
            cause: Cause::NeighTableOverflow,
            counter: "arp_cache+ndisc_cache table_fulls",
            kernel: arp(|c| c.table_fulls),
            netdrop_seen: s.neigh_create_failures,
            incomplete: false,
        },
    ]
}

pub(crate) fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
