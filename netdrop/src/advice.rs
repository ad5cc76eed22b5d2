//! What to change, with the live values. Pure: every rule takes a snapshot of
//! values (read by `context` in the right namespace) and returns advice; the
//! unit tests below pin each rule and its edge cases.

use std::{collections::BTreeMap, net::IpAddr};

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
    /// The change made during the observation that stopped the drops (the
    /// action is then "none: …").
    #[serde(default)]
    pub stopped_by: Option<KnobChange>,
}

fn next_pow2(v: u64) -> u64 {
    v.max(1).checked_next_power_of_two().unwrap_or(v)
}

/// A change of one of a group's knobs during the observation, and how the
/// group's drops fell around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnobChange {
    /// The sysctl's name (`net.ipv4.neigh.default.gc_thresh3`), or
    /// `listen() backlog of <listener>`.
    pub knob: String,
    pub from: i64,
    pub to: i64,
    /// When a read first showed it, `HH:MM:SS`.
    pub at: String,
    pub drops_before: u64,
    pub drops_after: u64,
}

/// `HH:MM:SS` (UTC) of a unix time.
pub fn clock(unix: f64) -> String {
    let secs = unix.max(0.0) as u64;
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

/// A knob's name in a sentence: `gc_thresh3` for the neighbour tables' (the
/// family is in the subject), the full name otherwise.
pub fn short_knob(name: &str) -> &str {
    ["net.ipv4.neigh.default.", "net.ipv6.neigh.default."]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name)
}

/// Knob values by name.
type Values = BTreeMap<String, i64>;

/// The change that stopped the drops: made after the group's latest drop
/// (drops before it, none after), the first that `relieves` the cause, given
/// the values before and after it (from `in_force`, the values at the latest
/// drops, with the changes applied in order).
fn stopped_by(
    in_force: &[(String, Option<u64>)],
    changes: &[KnobChange],
    relieves: impl Fn(&Values, &Values, &KnobChange) -> bool,
) -> Option<KnobChange> {
    let mut values: Values = in_force
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), (*v)? as i64)))
        .collect();
    for c in changes
        .iter()
        .filter(|c| c.drops_after == 0 && c.drops_before > 0)
    {
        let mut before = values.clone();
        before.entry(c.knob.clone()).or_insert(c.from);
        let mut after = before.clone();
        after.insert(c.knob.clone(), c.to);
        if relieves(&before, &after, c) {
            return Some(c.clone());
        }
        values = after;
    }
    None
}

/// A knob raised by the change (its name ends with `suffix`).
fn raised(c: &KnobChange, suffix: &str) -> bool {
    c.knob.ends_with(suffix) && c.to > c.from
}

/// The advice when a change stopped the drops: nothing to do.
fn stopped(cause: Cause, subject: String, c: KnobChange, reason: &str) -> Advice {
    Advice {
        cause,
        subject,
        knobs: vec![Knob {
            name: c.knob.clone(),
            current: u64::try_from(c.to).ok(),
            suggested: None,
        }],
        action: format!(
            "none: {} {} → {} at {} stopped the drops ({} before, 0 after)",
            short_knob(&c.knob),
            c.from,
            c.to,
            c.at,
            c.drops_before
        ),
        reason: format!(
            "{reason}; none since {} became {} at {}",
            short_knob(&c.knob),
            c.to,
            c.at
        ),
        stopped_by: Some(c),
    }
}

/// Changes the drops went on after, for the reason.
fn went_on(changes: &[KnobChange]) -> String {
    changes
        .iter()
        .filter(|c| c.drops_before > 0 && c.drops_after > 0)
        .map(|c| {
            format!(
                "; {} {} → {} at {} did not stop them ({} before, {} after)",
                short_knob(&c.knob),
                c.from,
                c.to,
                c.at,
                c.drops_before,
                c.drops_after
            )
        })
        .collect()
}

/// A listener whose accept queue overflowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptQueueFacts {
    /// `198.18.0.1:8080` or `*:8080`.
    pub listener: String,
    pub netns: String,
    /// The accept queue now (sock_diag Recv-Q of the listener); None when it
    /// is closed (or was never read).
    pub queue: Option<u32>,
    /// The accept queue's limit in force at the drops (sock_diag Send-Q).
    pub limit: u32,
    /// Largest queue seen during the observation.
    pub peak_queue: u32,
    /// net.core.somaxconn of the listener's namespace, at the drops.
    pub somaxconn: Option<u64>,
    /// The backlog the application passed to listen(), when known.
    pub requested_backlog: Option<u32>,
    pub drops: u64,
    /// The listener (or its namespace) no longer exists.
    #[serde(default)]
    pub closed: bool,
    /// Changes of its knobs during the observation, oldest first.
    #[serde(default)]
    pub changes: Vec<KnobChange>,
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

/// A new accept queue limit: four times the current, at least 1024, above
/// the peak; capped at 65535 unless the queue is already that large.
fn accept_suggestion(limit: u64, peak: u64) -> u64 {
    let s = next_pow2((limit * 4).max(peak * 2).max(1024));
    let capped = s.min(65535);
    if capped > limit && capped > peak {
        capped
    } else {
        s
    }
}

pub fn advise_accept(f: &AcceptQueueFacts) -> Advice {
    let limit = u64::from(f.limit);
    let peak = u64::from(f.peak_queue);
    let subject = format!("listener {} (netns {})", f.listener, f.netns);
    let backlog_name = format!("listen() backlog of {}", f.listener);
    let full = peak >= limit;
    let state = match (f.queue.filter(|_| !f.closed), full) {
        (Some(q), true) => format!("accept queue {q}/{limit} now, peaked at {peak}"),
        (Some(q), false) => format!(
            "accept queue {q}/{limit} now; the reads saw at most {peak} of {limit} (it fills between reads)"
        ),
        (None, true) => format!(
            "the accept queue peaked at {peak} (limit {limit} at the drops); the listener is closed now"
        ),
        (None, false) => format!(
            "the reads saw the accept queue at most at {peak} of {limit} (it fills between reads); the listener is closed now"
        ),
    };
    let reason = format!(
        "{} connection attempts dropped; {state}: the application does not accept() fast enough for its bursts{}",
        f.drops,
        went_on(&f.changes)
    );
    let in_force = [
        ("net.core.somaxconn".to_string(), f.somaxconn),
        (backlog_name.clone(), Some(limit)),
    ];
    // A larger limit only takes effect when the application listens again
    // (somaxconn is applied at listen()): the listener's own limit decides.
    if let Some(c) = stopped_by(&in_force, &f.changes, |_, _, c| {
        c.knob == backlog_name && c.to > c.from
    }) {
        return stopped(Cause::AcceptQueueFull, subject, c, &reason);
    }
    let suggested = accept_suggestion(limit, peak);
    let somaxconn_knob = Knob {
        name: "net.core.somaxconn".into(),
        current: f.somaxconn,
        suggested: f.somaxconn.map(|s| s.max(suggested)),
    };
    let backlog_knob = Knob {
        name: backlog_name,
        current: Some(f.requested_backlog.map_or(limit, u64::from)),
        suggested: Some(suggested),
    };
    let action = match accept_bound(f) {
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
    Advice {
        cause: Cause::AcceptQueueFull,
        subject,
        knobs: vec![backlog_knob, somaxconn_knob],
        action,
        reason,
        stopped_by: None,
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
    /// The device's values at the drops.
    pub unres_qlen_bytes: Option<u64>,
    pub unres_qlen: Option<u64>,
    pub drops: u64,
    /// Changes of its knobs during the observation, oldest first.
    #[serde(default)]
    pub changes: Vec<KnobChange>,
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
    let subject = format!(
        "neighbour {} dev {} (netns {})",
        f.neighbour, f.dev, f.netns
    );
    let qlen = f
        .unres_qlen
        .map(|q| format!(" (≈{q} packets)"))
        .unwrap_or_default();
    let reason = format!(
        "{} packets to {} dropped while it was being resolved on {}; the queue held {} bytes{qlen} per neighbour{}",
        f.drops,
        f.neighbour,
        f.dev,
        f.unres_qlen_bytes.map_or("?".into(), |b| b.to_string()),
        went_on(&f.changes)
    );
    let in_force = [
        (knob.clone(), f.unres_qlen_bytes),
        (
            format!("net.{fam}.neigh.{}.unres_qlen", f.dev),
            f.unres_qlen,
        ),
    ];
    if let Some(c) = stopped_by(&in_force, &f.changes, |_, _, c| {
        raised(c, ".unres_qlen_bytes") || raised(c, ".unres_qlen")
    }) {
        return stopped(Cause::NeighQueueFull, subject, c, &reason);
    }
    // Always above the current value.
    let suggested = f.unres_qlen_bytes.map(|b| {
        b.saturating_mul(4)
            .max(DEFAULT_UNRES_QLEN_BYTES)
            .max(b.saturating_add(1))
    });
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
    Advice {
        cause: Cause::NeighQueueFull,
        subject,
        knobs: vec![Knob {
            name: knob,
            current: f.unres_qlen_bytes,
            suggested,
        }],
        action,
        reason,
        stopped_by: None,
    }
}

/// The neighbour table of one family (it is global: all namespaces share it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighTableFacts {
    pub ipv6: bool,
    pub entries: u64,
    pub peak: u64,
    /// gc_thresh1, 2, 3 at the drops.
    pub gc_thresh: [Option<u64>; 3],
    /// Entries that cannot be collected yet.
    pub incomplete: u64,
    pub failed: u64,
    pub drops: u64,
    pub refused_creates: u64,
    /// Changes of gc_thresh1..3 during the observation, oldest first.
    #[serde(default)]
    pub changes: Vec<KnobChange>,
}

pub fn advise_neigh_table(f: &NeighTableFacts) -> Advice {
    let fam = if f.ipv6 { "ipv6" } else { "ipv4" };
    let name = |i: usize| format!("net.{fam}.neigh.default.gc_thresh{i}");
    let g3 = f.gc_thresh[2];
    let peak = f.peak.max(f.entries);
    let subject = format!("{fam} neighbour table");
    let mut reason = format!(
        "{} packets dropped and {} neighbour entries refused: the table is global (all namespaces) and was full",
        f.drops, f.refused_creates
    );
    if let Some(g3) = g3 {
        reason.push_str(&format!(" (gc_thresh3 was {g3} at the drops"));
        if f.entries >= g3 {
            reason.push_str(&format!(", it holds {} entries now", f.entries));
        }
        reason.push(')');
    }
    let stuck = f.incomplete + f.failed;
    if stuck > 0 && stuck * 4 >= f.entries.max(1) {
        reason.push_str(&format!(
            "; {} entries are INCOMPLETE ({}) or FAILED ({}): peers that never answer (a scan, dead hosts, a very large on-link subnet) and cannot be collected until they fail",
            stuck, f.incomplete, f.failed
        ));
    }
    reason.push_str(&went_on(&f.changes));
    let in_force: Vec<(String, Option<u64>)> =
        (0..3).map(|i| (name(i + 1), f.gc_thresh[i])).collect();
    if let Some(c) = stopped_by(&in_force, &f.changes, |_, _, c| raised(c, ".gc_thresh3")) {
        return stopped(Cause::NeighTableOverflow, subject, c, &reason);
    }
    // Twice the peak and twice gc_thresh3, at least 1024: above both.
    let target = next_pow2((peak * 2).max(g3.unwrap_or(0) * 2).max(1024));
    let suggested = [target / 4, target / 2, target];
    let knobs = (0..3)
        .map(|i| Knob {
            name: name(i + 1),
            current: f.gc_thresh[i],
            suggested: Some(suggested[i].max(f.gc_thresh[i].unwrap_or(0))),
        })
        .collect::<Vec<_>>();
    let seen = match g3 {
        _ if peak == 0 => "the table's size was not read".to_string(),
        Some(g3) if peak < g3 => format!(
            "refused entries although the reads saw at most {peak} (it fills between reads)"
        ),
        _ => format!("table peaked at {peak} entries"),
    };
    let action = format!(
        "{} = {}, {seen} → raise to {} (and gc_thresh2 = {}, gc_thresh1 = {})",
        name(3),
        g3.map_or("?".into(), |v| v.to_string()),
        knobs[2].suggested.unwrap_or(target),
        knobs[1].suggested.unwrap_or(target / 2),
        knobs[0].suggested.unwrap_or(target / 4),
    );
    Advice {
        cause: Cause::NeighTableOverflow,
        subject,
        knobs,
        action,
        reason,
        stopped_by: None,
    }
}

/// A device whose reverse-path filter dropped packets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpFilterFacts {
    pub dev: String,
    pub netns: String,
    /// net.ipv4.conf.all.rp_filter and net.ipv4.conf.<dev>.rp_filter at the drops.
    pub all: Option<u64>,
    pub dev_value: Option<u64>,
    pub drops: u64,
    pub sources: Vec<IpAddr>,
    /// Changes of the two during the observation, oldest first.
    #[serde(default)]
    pub changes: Vec<KnobChange>,
}

/// The kernel uses the larger of conf/all and conf/<dev>.
fn effective(all: Option<u64>, dev: Option<u64>) -> Option<u64> {
    match (all, dev) {
        (Some(a), Some(d)) => Some(a.max(d)),
        (a, d) => a.or(d),
    }
}

impl RpFilterFacts {
    /// The kernel uses the larger of all and the device's value.
    pub fn effective(&self) -> Option<u64> {
        effective(self.all, self.dev_value)
    }
}

pub fn advise_rp_filter(f: &RpFilterFacts) -> Advice {
    let all_name = "net.ipv4.conf.all.rp_filter".to_string();
    let dev_name = format!("net.ipv4.conf.{}.rp_filter", f.dev);
    let subject = format!("dev {} (netns {})", f.dev, f.netns);
    let (all, dev) = (f.all.unwrap_or(0), f.dev_value.unwrap_or(0));
    let eff = f.effective().unwrap_or(0);
    let sources: Vec<String> = f.sources.iter().map(|s| s.to_string()).collect();
    let reason = format!(
        "{} packets from {} dropped on {}: the route back to the source does not go out through {} (asymmetric routing, LVS/DR, tunnels); effective rp_filter = max(all {}, {} {}) = {eff}{}",
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
        dev,
        went_on(&f.changes)
    );
    let in_force = [(all_name.clone(), f.all), (dev_name.clone(), f.dev_value)];
    let eff_of = |v: &Values| {
        let get = |k: &str| v.get(k).map(|x| (*x).max(0) as u64);
        effective(get(&all_name), get(&dev_name))
    };
    // Off, or strict → loose.
    if let Some(c) = stopped_by(&in_force, &f.changes, |before, after, _| {
        match (eff_of(before), eff_of(after)) {
            (Some(b), Some(a)) => b != 0 && (a == 0 || (b == 1 && a == 2)),
            _ => false,
        }
    }) {
        return stopped(Cause::RpFilter, subject, c, &reason);
    }
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
    Advice {
        cause: Cause::RpFilter,
        subject,
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
        stopped_by: None,
    }
}

#[cfg(test)]
mod tests;
