//! The diagnosis report: causes ranked by drops, each with its groups (the
//! listener, neighbour, table or device), the values in force at their drops
//! and the changes made to them, the advice, and the kernel's own counters
//! beside what netdrop saw.

use std::collections::BTreeMap;

use super::{Diagnosis, counters, groups};
use crate::{
    advice::Advice,
    causes::{CauseSpec, GroupFacts},
    classify::{Cause, cause_of},
    context::ArpCacheStats,
    netns_id::NetnsId,
    summary::{Session, Summary},
};

pub use super::model::{
    CauseReport, ChangeReport, CounterRow, Group, Hooks, KernelCounter, Report,
};

/// A declarative cause's groups, most drops first, with the values in force
/// as last read, and its advice for each of the first few.
fn declared_groups(d: &Diagnosis, spec: &CauseSpec) -> (Vec<Group>, Vec<Advice>) {
    let mut rows: Vec<_> = d
        .declared
        .groups
        .iter()
        .filter(|((c, ..), _)| *c == spec.cause)
        .collect();
    rows.sort_by_key(|(_, g)| std::cmp::Reverse(g.drops));
    let (mut groups, mut advice) = (Vec::new(), Vec::new());
    for (i, ((_, netns, key), g)) in rows.into_iter().enumerate() {
        let ns = d.latest_ns.get(netns);
        let dev = key.dev();
        let mut values = BTreeMap::new();
        for k in spec.knobs {
            let name = k.name_for(dev);
            let v = ns
                .and_then(|n| n.knobs.get(&name))
                .or_else(|| d.last.as_ref().and_then(|s| s.knobs.get(&name)));
            if let Some(v) = v {
                values.insert(name, *v);
            }
        }
        let mut details = dev
            .and_then(|dev| ns?.dev_details.get(dev).cloned())
            .unwrap_or_default();
        // Per-item counters of the cause's sources that moved in its
        // namespace (each nftables drop rule's), as `+delta`.
        for prefix in spec.counters.iter().filter_map(|c| c.source.item_prefix()) {
            details.extend(
                d.declared
                    .moved_items(*netns, prefix, MAX_ITEMS_PER_GROUP)
                    .into_iter()
                    .map(|(item, delta)| (item, format!("+{delta}"))),
            );
        }
        let counter = declared_counter(d, spec, Some(*netns));
        let netns_name = ns.and_then(|n| n.name.clone());
        if i < MAX_ADVICE_PER_CAUSE
            && let Some(advise) = spec.advise
        {
            let f = advise(&GroupFacts {
                key,
                drops: g.drops,
                netns: super::model::ns_label(netns.inode, &netns_name),
                values: &values,
                details: &details,
                counter,
            });
            advice.push(Advice {
                cause: spec.cause,
                subject: f.subject,
                knobs: f
                    .knobs
                    .into_iter()
                    .map(|k| crate::advice::Knob {
                        name: k.name,
                        current: k.current.map(|v| v.max(0) as u64),
                        suggested: k.suggested.map(|v| v.max(0) as u64),
                    })
                    .collect(),
                action: f.action,
                reason: g
                    .reasons
                    .iter()
                    .map(|(r, n)| format!("{n} {r}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                stopped_by: None,
            });
        }
        groups.push(Group::Declared {
            netns: netns.inode as u64,
            netns_cookie: netns.cookie,
            netns_name,
            labels: crate::container::Labels::of(ns.and_then(|n| n.identity.as_ref())),
            key: key.clone(),
            drops: g.drops,
            counter,
            values,
            details,
            gone: d.gone(*netns),
        });
    }
    (groups, advice)
}

/// How a declarative cause's counters are named together: `A + B`.
fn counter_name(spec: &CauseSpec) -> String {
    spec.counters
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(" + ")
}

/// A declarative cause's counters summed over the observation (None: none
/// readable): in `netns` for per-namespace ones, else all of them.
fn declared_counter(d: &Diagnosis, spec: &CauseSpec, netns: Option<NetnsId>) -> Option<u64> {
    spec.counters
        .iter()
        .filter_map(|c| {
            let ns = netns.filter(|_| c.source.per_netns());
            d.declared.counter(c.name, ns)
        })
        .reduce(|a, b| a + b)
}

/// Per-item counters listed per group, at most.
const MAX_ITEMS_PER_GROUP: usize = 16;

/// Advice given per declarative cause (its groups with most drops).
const MAX_ADVICE_PER_CAUSE: usize = 3;

pub fn build(d: &Diagnosis, summary: &Summary, session: &Session, hooks: Hooks) -> Report {
    // Drops known only from the kernel's counters: already in the summary when
    // the session added them (Summary::with_kernel_only), else added here, so
    // the totals are the same either way.
    let totals = if summary.kernel_only_applied {
        summary.clone()
    } else {
        summary.clone().with_kernel_only(&d.kernel_only())
    };
    let t = &totals;
    let count = |c: Cause| -> (u64, u64) { (t.cause(c), t.kernel_only(c)) };
    let neigh = neigh_counters(d, t);
    let mut causes = Vec::new();
    let (g, a) = groups::accept(d);
    push_cause(&mut causes, Cause::AcceptQueueFull, t, None, g, a);
    let (g, a) = groups::neigh_queue(d);
    push_cause(
        &mut causes,
        Cause::NeighQueueFull,
        t,
        neigh[0].clone(),
        g,
        a,
    );
    let (g, a) = groups::tables(d);
    push_cause(
        &mut causes,
        Cause::NeighTableOverflow,
        t,
        neigh[1].clone(),
        g,
        a,
    );
    let (g, a) = groups::devices(d, t.kernel_only(Cause::RpFilter));
    push_cause(&mut causes, Cause::RpFilter, t, None, g, a);
    // The causes handled from their declarations (causes/).
    for spec in crate::causes::REGISTRY.iter().filter(|s| s.declarative()) {
        let (g, a) = declared_groups(d, spec);
        let counter = declared_counter(d, spec, None).map(|delta| KernelCounter {
            name: counter_name(spec),
            delta,
            netdrop: t.cause(spec.cause),
        });
        push_cause(&mut causes, spec.cause, t, counter, g, a);
    }
    causes.sort_by_key(|c| std::cmp::Reverse(c.drops));

    let mut other_reasons: Vec<(String, u64)> = t
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
        kernel_counters: counter_rows(d, t, count),
        totals,
    }
}

/// A cause with drops, or with drops the kernel counted that may be among
/// `other` (shown so the difference is not hidden).
fn push_cause(
    out: &mut Vec<CauseReport>,
    cause: Cause,
    totals: &Summary,
    kernel_counter: Option<KernelCounter>,
    groups: Vec<Group>,
    advice: Vec<Advice>,
) {
    let (drops, kernel_only) = (totals.cause(cause), totals.kernel_only(cause));
    let maybe_among_other = totals.maybe_among_other(cause);
    if drops == 0 && maybe_among_other == 0 {
        return;
    }
    out.push(CauseReport {
        cause,
        meaning: cause.meaning(),
        drops,
        seen_by_hooks: drops.saturating_sub(kernel_only),
        counted_by_kernel_only: kernel_only,
        maybe_among_other,
        kernel_counter,
        groups,
        advice,
    });
}

/// The neighbour tables' statistics over the observation, summed over the
/// families read in both the first and the last full snapshot (None: neither).
fn table_delta(d: &Diagnosis, f: fn(&ArpCacheStats) -> u64) -> Option<u64> {
    let (a, b) = (d.first.as_ref()?, d.last.as_ref()?);
    let per = [(&a.arp, &b.arp), (&a.ndisc, &b.ndisc)]
        .into_iter()
        .filter_map(|(x, y)| Some(f(y.as_ref()?).saturating_sub(f(x.as_ref()?))));
    per.reduce(|x, y| x + y)
}

const UNRESOLVED_DISCARDS: &str = "arp_cache+ndisc_cache unresolved_discards";
const TABLE_FULLS: &str = "arp_cache+ndisc_cache table_fulls";

/// [neigh_queue_full, neigh_table_overflow]: the global counters beside what
/// netdrop counted (all namespaces): packets dropped on a full unresolved
/// queue, and refused neighbour creates.
fn neigh_counters(d: &Diagnosis, t: &Summary) -> [Option<KernelCounter>; 2] {
    let queue = table_delta(d, |c| c.unresolved_discards).map(|delta| KernelCounter {
        name: "arp_cache+ndisc_cache unresolved_discards (all namespaces)".into(),
        delta,
        netdrop: t.cause(Cause::NeighQueueFull),
    });
    let table = table_delta(d, |c| c.table_fulls).map(|delta| KernelCounter {
        name: "arp_cache+ndisc_cache table_fulls (all namespaces)".into(),
        delta,
        netdrop: t.neigh_create_failures,
    });
    [queue, table]
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
    let ns_row = |cause: Cause, counter: &str, index: usize| {
        let (kernel, incomplete) = d.counters.total(index);
        CounterRow {
            cause,
            counter: counter.to_string(),
            kernel,
            netdrop_seen: seen(cause),
            incomplete,
        }
    };
    // One row per declarative cause: its counters summed (each alone would
    // stand beside all of netdrop's count).
    let declared = crate::causes::REGISTRY
        .iter()
        .filter(|s| s.declarative())
        .map(|s| CounterRow {
            cause: s.cause,
            counter: counter_name(s),
            kernel: declared_counter(d, s, None),
            netdrop_seen: seen(s.cause),
            incomplete: false,
        })
        .filter(|r| r.kernel.unwrap_or(0) > 0 || r.netdrop_seen > 0);
    let mut rows = vec![
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
            counter: UNRESOLVED_DISCARDS.to_string(),
            kernel: table_delta(d, |c| c.unresolved_discards),
            netdrop_seen: seen(Cause::NeighQueueFull),
            incomplete: false,
        },
        CounterRow {
            cause: Cause::NeighTableOverflow,
            counter: TABLE_FULLS.to_string(),
            kernel: table_delta(d, |c| c.table_fulls),
            netdrop_seen: s.neigh_create_failures,
            incomplete: false,
        },
    ];
    rows.extend(declared);
    rows
}

pub(crate) fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
