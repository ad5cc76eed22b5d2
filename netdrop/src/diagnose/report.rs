//! The diagnosis report: causes ranked by drops, each with its groups (the
//! listener, neighbour, table or device), the live values, the advice, and the
//! kernel's own counters beside what netdrop saw.

use std::{collections::BTreeMap, net::IpAddr};

use serde::Serialize;

use super::Diagnosis;
use crate::{
    advice::{self, Advice},
    classify::{Cause, cause_of},
    context::nud_state_name,
    netns_id::NetnsId,
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
    },
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
    },
    Table {
        family: &'static str,
        entries: Option<u64>,
        peak: u64,
        gc_thresh: [Option<u64>; 3],
        incomplete: u64,
        failed: u64,
        drops: u64,
        refused_creates: u64,
    },
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
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct CounterRow {
    pub cause: Cause,
    pub counter: &'static str,
    /// Change of the kernel's counter during the observation (None: not readable).
    pub kernel: Option<u64>,
    /// What netdrop attributed to the cause from its hooks.
    pub netdrop_seen: u64,
}

/// Groups shown (and advised) per cause; the rest are summed in the totals.
const MAX_GROUPS: usize = 8;

const NUD_INCOMPLETE: u16 = 0x01;
const NUD_FAILED: u16 = 0x20;

pub(super) fn ns_label(netns: impl std::fmt::Display, name: &Option<String>) -> String {
    match name {
        Some(n) => format!("{n} ({netns})"),
        None => netns.to_string(),
    }
}

fn to_u64(v: Option<i64>) -> Option<u64> {
    v.map(|v| v.max(0) as u64)
}

pub fn build(d: &Diagnosis, summary: &Summary, session: &Session, hooks: Hooks) -> Report {
    let name_of = |ns: NetnsId| d.latest_ns.get(&ns).and_then(|n| n.name.clone());
    let mut causes = Vec::new();

    // accept queue: hooks + the kernel's ListenOverflows per namespace.
    let kernel_overflows = match (&d.first, &d.last) {
        (Some(a), Some(b)) => super::snapshot::deltas(a, b, |n| n.listen_overflows),
        _ => BTreeMap::new(),
    };
    let (unseen_by_key, unattributed) = exact_unseen(d, &kernel_overflows);
    let mut accept_groups = Vec::new();
    let mut accept_advice = Vec::new();
    let mut unseen_total = 0;
    let mut seen_total = 0;
    let mut keys: BTreeMap<(NetnsId, u16), (u64, super::AcceptGroup)> = BTreeMap::new();
    for (k, g) in &d.accept {
        keys.insert(*k, (0, g.clone()));
    }
    for (k, n) in &unseen_by_key {
        keys.entry(*k)
            .or_insert_with(|| (0, d.accept.get(k).cloned().unwrap_or_default()))
            .0 = *n;
    }
    let mut groups: Vec<_> = keys.into_iter().collect();
    groups.sort_by_key(|(_, (unseen, g))| std::cmp::Reverse(g.ack_drops + g.syn_drops + unseen));
    for ((netns, port), (unseen, g)) in groups {
        let seen = g.ack_drops + g.syn_drops;
        seen_total += seen;
        unseen_total += unseen;
        let ns = d.latest_ns.get(&netns);
        let live = ns.and_then(|n| {
            n.listeners.iter().find(|l| {
                l.port == port
                    && g.addr
                        .is_none_or(|a| a == l.addr || l.addr.is_unspecified())
            })
        });
        let peak = d
            .listener_peak((netns, port))
            .map(|p| p.0)
            .max(Some(g.peak_queue).filter(|&p| p > 0));
        let addr = live.map(|l| l.addr).or(g.addr);
        let listener = match addr {
            Some(a) if a.is_ipv6() => format!("[{a}]:{port}"),
            Some(a) => format!("{a}:{port}"),
            None => format!("*:{port}"),
        };
        let limit = live.map(|l| l.backlog).or((g.limit > 0).then_some(g.limit));
        let somaxconn = ns.and_then(|n| n.sysctls.somaxconn);
        let drops = seen + unseen;
        if accept_groups.len() < MAX_GROUPS {
            accept_advice.push(advice::advise_accept(&advice::AcceptQueueFacts {
                listener: listener.clone(),
                netns: ns_label(netns, &name_of(netns)),
                queue: live.map_or(0, |l| l.accept_queue),
                limit: limit.unwrap_or(0),
                peak_queue: peak.unwrap_or(0),
                somaxconn: to_u64(somaxconn),
                requested_backlog: None,
                drops,
            }));
            accept_groups.push(Group::Listener {
                netns: netns.inode.into(),
                netns_cookie: netns.cookie,
                netns_name: name_of(netns),
                listener,
                queue: live.map(|l| l.accept_queue),
                limit,
                peak_queue: peak,
                somaxconn,
                drops,
                drops_seen: seen,
                drops_counted_only: unseen,
            });
        }
    }
    for (&netns, &n) in &unattributed {
        unseen_total += n;
        accept_groups.push(Group::Listener {
            netns: netns.inode.into(),
            netns_cookie: netns.cookie,
            netns_name: name_of(netns),
            listener: "(no listener full when the counter moved)".into(),
            queue: None,
            limit: None,
            peak_queue: None,
            somaxconn: d.latest_ns.get(&netns).and_then(|n| n.sysctls.somaxconn),
            drops: n,
            drops_seen: 0,
            drops_counted_only: n,
        });
    }
    let accept_exact = summary.cause(Cause::AcceptQueueFull);
    push_cause(
        &mut causes,
        Cause::AcceptQueueFull,
        accept_exact.max(seen_total),
        unseen_total,
        accept_groups,
        accept_advice,
    );

    // neighbour queue.
    let mut nq: Vec<_> = d.neigh_queue.iter().collect();
    nq.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
    let (mut groups, mut adv) = (Vec::new(), Vec::new());
    for ((netns, dev, neighbour), &drops) in nq.into_iter().take(MAX_GROUPS) {
        let ns = d.latest_ns.get(netns);
        let state = ns
            .and_then(|n| {
                n.neighbours
                    .iter()
                    .find(|e| e.addr == *neighbour && e.dev == *dev)
            })
            .map(|e| nud_state_name(e.state).to_string());
        let devs = ns.and_then(|n| n.sysctls.devs.get(dev));
        let (bytes, qlen) = (
            devs.and_then(|s| s.unres_qlen_bytes),
            devs.and_then(|s| s.unres_qlen),
        );
        adv.push(advice::advise_neigh_queue(&advice::NeighQueueFacts {
            neighbour: *neighbour,
            dev: dev.clone(),
            netns: ns_label(*netns, &name_of(*netns)),
            state: state.clone(),
            unres_qlen_bytes: to_u64(bytes),
            unres_qlen: to_u64(qlen),
            drops,
        }));
        groups.push(Group::Neighbour {
            netns: netns.inode.into(),
            netns_cookie: netns.cookie,
            netns_name: name_of(*netns),
            neighbour: *neighbour,
            dev: dev.clone(),
            state,
            unres_qlen_bytes: bytes,
            unres_qlen: qlen,
            drops,
        });
    }
    push_cause(
        &mut causes,
        Cause::NeighQueueFull,
        summary.cause(Cause::NeighQueueFull),
        0,
        groups,
        adv,
    );

    // neighbour tables (global).
    let (mut groups, mut adv) = (Vec::new(), Vec::new());
    for (i, t) in d.table.iter().enumerate() {
        if t.drops == 0 && t.refused == 0 {
            continue;
        }
        let ipv6 = i == 1;
        let last = d.last.as_ref();
        let entries = last
            .and_then(|s| {
                if ipv6 {
                    s.ndisc.as_ref()
                } else {
                    s.arp.as_ref()
                }
            })
            .map(|a| a.entries);
        let gc = last.map_or(
            [None; 3],
            |s| if ipv6 { s.gc_thresh6 } else { s.gc_thresh4 },
        );
        let want_family = if ipv6 { 10u16 } else { 2 };
        let (mut incomplete, mut failed) = (0, 0);
        for e in d.latest_ns.values().flat_map(|n| n.neighbours.iter()) {
            if u16::from(e.addr.is_ipv6()) * 8 + 2 != want_family {
                continue;
            }
            incomplete += u64::from(e.state & NUD_INCOMPLETE != 0);
            failed += u64::from(e.state & NUD_FAILED != 0);
        }
        let facts = advice::NeighTableFacts {
            ipv6,
            entries: entries.unwrap_or(t.peak_entries),
            peak: t.peak_entries,
            gc_thresh: gc,
            incomplete,
            failed,
            drops: t.drops,
            refused_creates: t.refused,
        };
        adv.push(advice::advise_neigh_table(&facts));
        groups.push(Group::Table {
            family: if ipv6 { "ipv6" } else { "ipv4" },
            entries,
            peak: t.peak_entries,
            gc_thresh: gc,
            incomplete,
            failed,
            drops: t.drops,
            refused_creates: t.refused,
        });
    }
    push_cause(
        &mut causes,
        Cause::NeighTableOverflow,
        summary.cause(Cause::NeighTableOverflow),
        0,
        groups,
        adv,
    );

    // rp_filter.
    let mut rp: Vec<_> = d.rp.iter().collect();
    rp.sort_by_key(|(_, g)| std::cmp::Reverse(g.drops));
    let (mut groups, mut adv) = (Vec::new(), Vec::new());
    for ((netns, dev), g) in rp.into_iter().take(MAX_GROUPS) {
        let sys = d.latest_ns.get(netns).map(|n| &n.sysctls);
        let all = sys.and_then(|s| s.rp_filter_all);
        let devv = sys.and_then(|s| s.devs.get(dev)).and_then(|d| d.rp_filter);
        let facts = advice::RpFilterFacts {
            dev: dev.clone(),
            netns: ns_label(*netns, &name_of(*netns)),
            all: to_u64(all),
            dev_value: to_u64(devv),
            drops: g.drops,
            sources: g.sources.iter().copied().collect(),
        };
        let effective = facts.effective().map(|v| v as i64);
        adv.push(advice::advise_rp_filter(&facts));
        groups.push(Group::Device {
            netns: netns.inode.into(),
            netns_cookie: netns.cookie,
            netns_name: name_of(*netns),
            dev: dev.clone(),
            rp_filter_all: all,
            rp_filter_dev: devv,
            effective,
            drops: g.drops,
            sources: facts.sources,
        });
    }
    push_cause(
        &mut causes,
        Cause::RpFilter,
        summary.cause(Cause::RpFilter),
        0,
        groups,
        adv,
    );
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
        kernel_counters: counter_rows(d, summary),
        totals: summary.clone(),
    }
}

/// Per namespace, the kernel's ListenOverflows that no hook saw, exactly:
/// delta(first, last) minus what the hooks saw there. It is split over the
/// listeners in proportion to what was attributed to them while observing (the
/// ones full when the counter moved), else over those full at the end, else left
/// unattributed.
#[allow(clippy::type_complexity)]
fn exact_unseen(
    d: &Diagnosis,
    kernel: &BTreeMap<NetnsId, u64>,
) -> (BTreeMap<(NetnsId, u16), u64>, BTreeMap<NetnsId, u64>) {
    let mut by_key = BTreeMap::new();
    let mut unattributed = BTreeMap::new();
    for (&netns, &delta) in kernel {
        let seen: u64 = d
            .accept
            .iter()
            .filter(|((ns, _), _)| *ns == netns)
            .map(|(_, g)| g.ack_drops + g.syn_drops)
            .sum();
        let unseen = delta.saturating_sub(seen);
        if unseen == 0 {
            continue;
        }
        let mut weights: Vec<((NetnsId, u16), u64)> = d
            .accept
            .iter()
            .filter(|((ns, _), g)| *ns == netns && g.unseen > 0)
            .map(|(k, g)| (*k, g.unseen))
            .collect();
        if weights.is_empty() {
            weights = d
                .latest_ns
                .get(&netns)
                .map(|n| {
                    n.listeners
                        .iter()
                        .filter(|l| l.accept_queue >= l.backlog)
                        .map(|l| ((netns, l.port), 1))
                        .collect()
                })
                .unwrap_or_default();
        }
        let total: u64 = weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            unattributed.insert(netns, unseen);
            continue;
        }
        let mut given = 0;
        for (i, (k, w)) in weights.iter().enumerate() {
            let share = if i + 1 == weights.len() {
                unseen - given
            } else {
                unseen * w / total
            };
            given += share;
            *by_key.entry(*k).or_default() += share;
        }
    }
    (by_key, unattributed)
}

fn push_cause(
    out: &mut Vec<CauseReport>,
    cause: Cause,
    seen: u64,
    unseen: u64,
    groups: Vec<Group>,
    advice: Vec<Advice>,
) {
    if seen + unseen == 0 {
        return;
    }
    out.push(CauseReport {
        cause,
        meaning: cause.meaning(),
        drops: seen + unseen,
        seen_by_hooks: seen,
        counted_by_kernel_only: unseen,
        groups,
        advice,
    });
}

fn counter_rows(d: &Diagnosis, s: &Summary) -> Vec<CounterRow> {
    let (Some(a), Some(b)) = (&d.first, &d.last) else {
        return Vec::new();
    };
    let sum = |f: fn(&super::snapshot::NetnsSnapshot) -> Option<u64>| -> Option<u64> {
        let any = b.netns.iter().any(|n| f(n).is_some());
        any.then(|| super::snapshot::deltas(a, b, f).values().sum())
    };
    let arp = |f: fn(&crate::context::ArpCacheStats) -> u64| -> Option<u64> {
        let get = |s: &super::Snapshot| {
            s.arp.as_ref().map(f).unwrap_or(0) + s.ndisc.as_ref().map(f).unwrap_or(0)
        };
        b.arp.as_ref().map(|_| get(b).saturating_sub(get(a)))
    };
    vec![
        CounterRow {
            cause: Cause::AcceptQueueFull,
            counter: "TcpExt:ListenOverflows",
            kernel: sum(|n| n.listen_overflows),
            netdrop_seen: s.cause(Cause::AcceptQueueFull),
        },
        CounterRow {
            cause: Cause::RpFilter,
            counter: "TcpExt:IPReversePathFilter",
            kernel: sum(|n| n.rp_filter_drops),
            netdrop_seen: s.cause(Cause::RpFilter),
        },
        CounterRow {
            cause: Cause::NeighQueueFull,
            counter: "arp_cache+ndisc_cache unresolved_discards",
            kernel: arp(|c| c.unresolved_discards),
            netdrop_seen: s.cause(Cause::NeighQueueFull),
        },
        CounterRow {
            cause: Cause::NeighTableOverflow,
            counter: "arp_cache+ndisc_cache table_fulls",
            kernel: arp(|c| c.table_fulls),
            netdrop_seen: s.neigh_create_failures,
        },
    ]
}

pub(crate) fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
