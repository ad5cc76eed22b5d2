//! The diagnosis report's shape: what `report::build` fills in and the sinks,
//! recordings and JSON read (kept apart from the building, which the groups
//! of each cause feed).

use std::net::IpAddr;

use serde::Serialize;

use crate::{advice::Advice, classify::Cause, container::Labels, summary::Summary};

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
    /// The four causes with drops (or with drops the kernel counted that may
    /// be among `other`), most drops first.
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
    /// Drops the kernel's counter shows beyond what netdrop classified as this
    /// cause that may be among the `other` drops (rp_filter on a kernel
    /// without drop reasons): in no total, not in `drops`.
    pub maybe_among_other: u64,
    /// The kernel's own global counter of the cause beside netdrop's count
    /// (the neighbour tables' statistics cover every namespace: never added
    /// to a total).
    pub kernel_counter: Option<KernelCounter>,
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
        /// The container or pod living in the namespace (`pod`, `pod_namespace`,
        /// `container`, `container_name`).
        #[serde(flatten)]
        labels: Labels,
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
        /// The container or pod living in the namespace (`pod`, `pod_namespace`,
        /// `container`, `container_name`).
        #[serde(flatten)]
        labels: Labels,
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
        /// The container or pod living in the namespace (`pod`, `pod_namespace`,
        /// `container`, `container_name`).
        #[serde(flatten)]
        labels: Labels,
        dev: String,
        rp_filter_all: Option<i64>,
        rp_filter_dev: Option<i64>,
        effective: Option<i64>,
        /// drops_seen + drops_counted_only.
        drops: u64,
        drops_seen: u64,
        /// IPReversePathFilter of its namespace beyond what the hooks saw there.
        drops_counted_only: u64,
        /// IPReversePathFilter of its namespace beyond the rp_filter drops seen
        /// there that may be among the `other` drops seen there (in no total).
        maybe_among_other: u64,
        sources: Vec<IpAddr>,
        changes: Vec<ChangeReport>,
        gone: bool,
    },
    /// A group of a cause handled from its declaration (causes/): the socket,
    /// device, peer or namespace, with the values in force as last read.
    Declared {
        netns: u64,
        netns_cookie: u64,
        netns_name: Option<String>,
        /// The container or pod living in the namespace (`pod`, `pod_namespace`,
        /// `container`, `container_name`).
        #[serde(flatten)]
        labels: Labels,
        #[serde(flatten)]
        key: crate::causes::GroupKey,
        drops: u64,
        /// The cause's kernel counters over the observation, summed: in its
        /// namespace (global ones globally).
        counter: Option<u64>,
        values: std::collections::BTreeMap<String, i64>,
        details: Vec<(String, String)>,
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

/// A global kernel counter of a cause over the observation (first to last
/// full snapshot), beside what netdrop counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelCounter {
    pub name: String,
    pub delta: u64,
    /// What netdrop counted that the counter counts too.
    pub netdrop: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CounterRow {
    pub cause: Cause,
    pub counter: String,
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
