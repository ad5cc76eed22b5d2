//! What to change, with the live values. Pure: every rule takes a snapshot of
//! values (read by `context` in the right namespace) and returns advice; the
//! unit tests below pin each rule and its edge cases.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::classify::Cause;

/// One setting and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knob {
    /// sysctl name (`net.core.somaxconn`) or a description (`listen() backlog of 0.0.0.0:80`).
    pub name: String,
    pub current: Option<u64>,
    pub suggested: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advice {
    pub cause: Cause,
    /// Where: the listener, neighbour, table or device it is about.
    pub subject: String,
    pub knobs: Vec<Knob>,
    /// The one line to act on.
    pub action: String,
    /// Why, from the observed values.
    pub reason: String,
}

fn next_pow2(v: u64) -> u64 {
    v.max(1).checked_next_power_of_two().unwrap_or(v)
}

/// A listener whose accept queue overflowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptQueueFacts {
    /// `198.18.0.1:8080` or `*:8080`.
    pub listener: String,
    pub netns: String,
    /// Current accept queue and its limit (sock_diag Recv-Q / Send-Q of the listener).
    pub queue: u32,
    pub limit: u32,
    /// Largest queue seen during the observation.
    pub peak_queue: u32,
    /// net.core.somaxconn of the listener's namespace.
    pub somaxconn: Option<u64>,
    /// The backlog the application passed to listen(), when known.
    pub requested_backlog: Option<u32>,
    pub drops: u64,
}

/// Which of the two bounds on an accept queue is the smaller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptBound {
    /// The application's listen() backlog.
    Application,
    /// net.core.somaxconn (the kernel silently takes the smaller of the two).
    Somaxconn,
    Unknown,
}

pub fn accept_bound(f: &AcceptQueueFacts) -> AcceptBound {
    match (f.somaxconn, f.requested_backlog) {
        (Some(s), Some(req)) if u64::from(req) > s => AcceptBound::Somaxconn,
        (Some(_), Some(_)) => AcceptBound::Application,
        (Some(s), None) if u64::from(f.limit) < s => AcceptBound::Application,
        (Some(s), None) if u64::from(f.limit) == s => AcceptBound::Somaxconn,
        _ => AcceptBound::Unknown,
    }
}

pub fn advise_accept(f: &AcceptQueueFacts) -> Advice {
    let limit = u64::from(f.limit);
    let suggested = next_pow2((limit * 4).max(1024)).min(65535);
    let somaxconn_knob = Knob {
        name: "net.core.somaxconn".into(),
        current: f.somaxconn,
        suggested: f.somaxconn.map(|s| s.max(suggested)),
    };
    let backlog_knob = Knob {
        name: format!("listen() backlog of {}", f.listener),
        current: Some(f.requested_backlog.map_or(limit, u64::from)),
        suggested: Some(suggested),
    };
    let bound = accept_bound(f);
    let action = match bound {
        AcceptBound::Application => format!(
            "raise the listen() backlog of {} from {} to {suggested} (net.core.somaxconn = {} is not the limit){}",
            f.listener,
            f.requested_backlog.map_or(limit, u64::from),
            f.somaxconn.map_or("?".into(), |s| s.to_string()),
            if f.somaxconn.is_some_and(|s| s < suggested) {
                format!(
                    ", and net.core.somaxconn to {suggested} in netns {}",
                    f.netns
                )
            } else {
                String::new()
            }
        ),
        AcceptBound::Somaxconn => format!(
            "raise net.core.somaxconn in netns {} from {} to {suggested}, and make sure {}'s listen() backlog is at least {suggested}{}",
            f.netns,
            f.somaxconn.unwrap_or(limit),
            f.listener,
            match f.requested_backlog {
                Some(req) => format!(" (it asks for {req}; the kernel takes the smaller)"),
                None => " (the kernel takes the smaller of the two)".into(),
            }
        ),
        AcceptBound::Unknown => format!(
            "raise the accept queue limit of {} ({limit}): both the application's listen() backlog and net.core.somaxconn bound it",
            f.listener
        ),
    };
    let reason = format!(
        "{} connection attempts dropped; accept queue {}/{} now, peaked at {}: the application does not accept() fast enough for its bursts",
        f.drops, f.queue, f.limit, f.peak_queue
    );
    Advice {
        cause: Cause::AcceptQueueFull,
        subject: format!("listener {} (netns {})", f.listener, f.netns),
        knobs: vec![backlog_knob, somaxconn_knob],
        action,
        reason,
    }
}

/// A neighbour whose unresolved queue overflowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighQueueFacts {
    pub neighbour: IpAddr,
    pub dev: String,
    pub netns: String,
    /// INCOMPLETE, FAILED, REACHABLE, ... or None if the entry is gone.
    pub state: Option<String>,
    pub unres_qlen_bytes: Option<u64>,
    pub unres_qlen: Option<u64>,
    pub drops: u64,
}

/// Default unres_qlen_bytes since 3.3 (SK_WMEM_MAX on most systems).
const DEFAULT_UNRES_QLEN_BYTES: u64 = 212_992;

pub fn advise_neigh_queue(f: &NeighQueueFacts) -> Advice {
    let fam = if f.neighbour.is_ipv4() {
        "ipv4"
    } else {
        "ipv6"
    };
    let knob = format!("net.{fam}.neigh.{}.unres_qlen_bytes", f.dev);
    let suggested = f
        .unres_qlen_bytes
        .map(|b| (b * 4).max(DEFAULT_UNRES_QLEN_BYTES));
    let mut action = match (f.unres_qlen_bytes, suggested) {
        (Some(cur), Some(s)) => format!("raise {knob} in netns {} from {cur} to {s}", f.netns),
        _ => format!("raise {knob} in netns {}", f.netns),
    };
    let unanswered = matches!(f.state.as_deref(), Some("INCOMPLETE") | Some("FAILED"));
    if unanswered {
        action.push_str(&format!(
            "; but first find why {} does not answer ARP/ND: its entry is {}",
            f.neighbour,
            f.state.as_deref().unwrap_or("?")
        ));
    }
    let qlen = f
        .unres_qlen
        .map(|q| format!(" (≈{q} packets)"))
        .unwrap_or_default();
    let reason = format!(
        "{} packets to {} dropped while it was being resolved on {}; the queue holds {} bytes{qlen} per neighbour",
        f.drops,
        f.neighbour,
        f.dev,
        f.unres_qlen_bytes.map_or("?".into(), |b| b.to_string())
    );
    Advice {
        cause: Cause::NeighQueueFull,
        subject: format!(
            "neighbour {} dev {} (netns {})",
            f.neighbour, f.dev, f.netns
        ),
        knobs: vec![Knob {
            name: knob,
            current: f.unres_qlen_bytes,
            suggested,
        }],
        action,
        reason,
    }
}

/// The neighbour table of one family (it is global: all namespaces share it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighTableFacts {
    pub ipv6: bool,
    pub entries: u64,
    pub peak: u64,
    /// gc_thresh1, 2, 3.
    pub gc_thresh: [Option<u64>; 3],
    /// Entries that cannot be collected yet.
    pub incomplete: u64,
    pub failed: u64,
    pub drops: u64,
    pub refused_creates: u64,
}

pub fn advise_neigh_table(f: &NeighTableFacts) -> Advice {
    let fam = if f.ipv6 { "ipv6" } else { "ipv4" };
    let name = |i: usize| format!("net.{fam}.neigh.default.gc_thresh{i}");
    let g3 = f.gc_thresh[2];
    let target = next_pow2(
        (f.peak.max(f.entries) * 2)
            .max(g3.unwrap_or(0) * 2)
            .max(1024),
    );
    let suggested = [target / 4, target / 2, target];
    let knobs = (0..3)
        .map(|i| Knob {
            name: name(i + 1),
            current: f.gc_thresh[i],
            suggested: Some(suggested[i].max(f.gc_thresh[i].unwrap_or(0))),
        })
        .collect::<Vec<_>>();
    let action = format!(
        "{} = {}, table peaked at {} entries → raise to {} (and gc_thresh2 = {}, gc_thresh1 = {})",
        name(3),
        g3.map_or("?".into(), |v| v.to_string()),
        f.peak.max(f.entries),
        knobs[2].suggested.unwrap_or(target),
        knobs[1].suggested.unwrap_or(target / 2),
        knobs[0].suggested.unwrap_or(target / 4),
    );
    let mut reason = format!(
        "{} packets dropped and {} neighbour entries refused: the table is global (all namespaces) and was full",
        f.drops, f.refused_creates
    );
    if let Some(g3) = g3
        && f.entries >= g3
    {
        reason.push_str(&format!(
            " (it holds {} entries now, gc_thresh3 is {g3})",
            f.entries
        ));
    }
    let stuck = f.incomplete + f.failed;
    if stuck > 0 && stuck * 4 >= f.entries.max(1) {
        reason.push_str(&format!(
            "; {} entries are INCOMPLETE ({}) or FAILED ({}): peers that never answer (a scan, dead hosts, a very large on-link subnet) and cannot be collected until they fail",
            stuck, f.incomplete, f.failed
        ));
    }
    Advice {
        cause: Cause::NeighTableOverflow,
        subject: format!("{fam} neighbour table"),
        knobs,
        action,
        reason,
    }
}

/// A device whose reverse-path filter dropped packets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpFilterFacts {
    pub dev: String,
    pub netns: String,
    /// net.ipv4.conf.all.rp_filter and net.ipv4.conf.<dev>.rp_filter.
    pub all: Option<u64>,
    pub dev_value: Option<u64>,
    pub drops: u64,
    pub sources: Vec<IpAddr>,
}

impl RpFilterFacts {
    /// The kernel uses the larger of all and the device's value.
    pub fn effective(&self) -> Option<u64> {
        match (self.all, self.dev_value) {
            (Some(a), Some(d)) => Some(a.max(d)),
            (a, d) => a.or(d),
        }
    }
}

pub fn advise_rp_filter(f: &RpFilterFacts) -> Advice {
    let all_name = "net.ipv4.conf.all.rp_filter".to_string();
    let dev_name = format!("net.ipv4.conf.{}.rp_filter", f.dev);
    let (all, dev) = (f.all.unwrap_or(0), f.dev_value.unwrap_or(0));
    let eff = f.effective().unwrap_or(0);
    let (action, sugg_all, sugg_dev) = match eff {
        1 if all == 0 => (
            format!(
                "{dev_name} = 1 (strict) decides (all = 0): set it to 2 (loose: accept a source reachable through any interface) or 0 (off), in netns {}",
                f.netns
            ),
            all,
            2,
        ),
        1 if all == 1 && dev == 0 => (
            format!(
                "{all_name} = 1 decides ({dev_name} = 0, and the larger wins): set {dev_name} = 2 for loose mode on {} only (max(1, 2) = 2), or lower all to 2/0 (affects every interface), in netns {}",
                f.dev, f.netns
            ),
            all,
            2,
        ),
        1 => (
            format!(
                "{all_name} and {dev_name} are both 1 (strict): set {dev_name} = 2 (loose) — the larger of the two wins — or set both to 0 to turn the filter off, in netns {}",
                f.netns
            ),
            all,
            2,
        ),
        2 => (
            format!(
                "rp_filter is already loose (2) on {}: these sources are not routable through ANY interface in netns {}; add a route back to them, or set both {all_name} and {dev_name} to 0",
                f.dev, f.netns
            ),
            0,
            0,
        ),
        _ => (
            format!("check {all_name} and {dev_name} in netns {}", f.netns),
            all,
            dev,
        ),
    };
    let sources: Vec<String> = f.sources.iter().map(|s| s.to_string()).collect();
    let reason = format!(
        "{} packets from {} dropped on {}: the route back to the source does not go out through {} (asymmetric routing, LVS/DR, tunnels); effective rp_filter = max(all {}, {} {}) = {eff}",
        f.drops,
        if sources.is_empty() {
            "?".into()
        } else {
            sources.join(", ")
        },
        f.dev,
        f.dev,
        all,
        f.dev,
        dev
    );
    Advice {
        cause: Cause::RpFilter,
        subject: format!("dev {} (netns {})", f.dev, f.netns),
        knobs: vec![
            Knob {
                name: all_name,
                current: f.all,
                suggested: Some(sugg_all),
            },
            Knob {
                name: dev_name,
                current: f.dev_value,
                suggested: Some(sugg_dev),
            },
        ],
        action,
        reason,
    }
}

#[cfg(test)]
mod tests;
