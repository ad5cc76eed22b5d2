//! Each cause's groups (listener, neighbour, table, device) with the values in
//! force at their latest drops, the changes made to their knobs, and the advice
//! computed from those values.

use std::collections::BTreeMap;

use crate::container::Labels;

use super::{
    AcceptGroup, Diagnosis, ListenerKey, RpGroup, listener_knobs, listener_vals, live_listener,
    model::{ChangeReport, Group, ns_label},
    neigh_knobs, neigh_vals,
    rp_fusion::{UNKNOWN_DEV, unknown_dev_advice},
    rp_knobs, rp_vals, table_knobs,
    values::{Knob, Scope, Segments, Vals, listener_name},
};
use crate::{
    advice::{self, Advice},
    context::nud_state_name,
    netns_id::NetnsId,
};

const NUD_INCOMPLETE: u16 = 0x01;
const NUD_FAILED: u16 = 0x20;

fn to_u64(v: Option<i64>) -> Option<u64> {
    v.map(|v| v.max(0) as u64)
}

/// The values at the group's latest drops; what was unknown then, from `now`.
fn in_force(segs: &Segments, now: Vals) -> Vals {
    match segs.latest() {
        Some(s) => [0, 1, 2].map(|i| s.values[i].or(now[i])),
        None => now,
    }
}

/// The changes of a group's knobs, with its drops before and after each.
fn changes(d: &Diagnosis, scope: Scope, knobs: &[Knob], segs: &Segments) -> Vec<ChangeReport> {
    d.changes
        .of(scope, knobs)
        .map(|c| {
            let (before, after) = segs.split(c.seq);
            ChangeReport {
                knob: c.knob.name(),
                from: c.from,
                to: c.to,
                at: d.start_unix + c.at_s,
                drops_before: before,
                drops_after: after,
                stopped: false,
            }
        })
        .collect()
}

fn for_advice(changes: &[ChangeReport]) -> Vec<advice::KnobChange> {
    changes
        .iter()
        .map(|c| advice::KnobChange {
            knob: c.knob.clone(),
            from: c.from,
            to: c.to,
            at: advice::clock(c.at),
            drops_before: c.drops_before,
            drops_after: c.drops_after,
        })
        .collect()
}

/// Marks the change the advice credits with stopping the drops.
fn mark_stopped(changes: &mut [ChangeReport], a: &Advice) {
    let Some(s) = &a.stopped_by else { return };
    if let Some(c) = changes.iter_mut().find(|c| {
        c.knob == s.knob && c.from == s.from && c.to == s.to && advice::clock(c.at) == s.at
    }) {
        c.stopped = true;
    }
}

fn name_of(d: &Diagnosis, ns: NetnsId) -> Option<String> {
    d.latest_ns.get(&ns).and_then(|n| n.name.clone())
}

fn labels_of(d: &Diagnosis, ns: NetnsId) -> Labels {
    Labels::of(d.latest_ns.get(&ns).and_then(|n| n.identity.as_ref()))
}

pub(super) fn accept(d: &Diagnosis) -> (Vec<Group>, Vec<Advice>) {
    let (unseen_by_key, unattributed) = d.exact_unseen();
    let mut keys: BTreeMap<ListenerKey, (u64, AcceptGroup)> = BTreeMap::new();
    for (k, g) in &d.accept {
        keys.insert(*k, (0, g.clone()));
    }
    for (k, n) in &unseen_by_key {
        keys.entry(*k)
            .or_insert_with(|| (0, d.accept.get(k).cloned().unwrap_or_default()))
            .0 = *n;
    }
    let mut sorted: Vec<_> = keys.into_iter().collect();
    sorted.sort_by_key(|(_, (unseen, g))| std::cmp::Reverse(g.ack_drops + g.syn_drops + unseen));
    let (mut groups, mut adv) = (Vec::new(), Vec::new());
    for ((netns, port), (unseen, g)) in sorted.into_iter().take(d.group_limit()) {
        let seen = g.ack_drops + g.syn_drops;
        let drops = seen + unseen;
        let ns = d.latest_ns.get(&netns);
        let gone = d.gone(netns);
        let live = ns
            .filter(|_| !gone)
            .and_then(|n| live_listener(n, port, g.addr));
        let closed = live.is_none();
        let listen_addr = g.listen_addr.or(live.map(|l| l.addr));
        let listener = listener_name(listen_addr.or(g.addr), port);
        let segs = g.segments.fit(drops);
        let now_limit = live.map(|l| l.backlog).or((g.limit > 0).then_some(g.limit));
        let vals = in_force(&segs, listener_vals(ns, now_limit));
        let (somaxconn, limit) = (vals[0], vals[1].map(|v| v.max(0) as u32));
        let peak = d
            .listener_peak((netns, port))
            .map(|p| p.0)
            .max(Some(g.peak_queue).filter(|&p| p > 0));
        let mut ch = changes(d, Some(netns), &listener_knobs(listen_addr, port), &segs);
        let a = advice::advise_accept(&advice::AcceptQueueFacts {
            listener: listener.clone(),
            netns: ns_label(netns, &name_of(d, netns)),
            queue: live.map(|l| l.accept_queue),
            limit: limit.unwrap_or(0),
            peak_queue: peak.unwrap_or(0),
            somaxconn: to_u64(somaxconn),
            requested_backlog: None,
            drops,
            closed,
            changes: for_advice(&ch),
        });
        mark_stopped(&mut ch, &a);
        adv.push(a);
        groups.push(Group::Listener {
            netns: netns.inode.into(),
            netns_cookie: netns.cookie,
            netns_name: name_of(d, netns),
            labels: labels_of(d, netns),
            listener,
            queue: live.map(|l| l.accept_queue),
            limit,
            peak_queue: peak,
            somaxconn,
            drops,
            drops_seen: seen,
            drops_counted_only: unseen,
            closed,
            changes: ch,
            gone,
        });
    }
    for (&netns, &n) in &unattributed {
        groups.push(Group::Listener {
            netns: netns.inode.into(),
            netns_cookie: netns.cookie,
            netns_name: name_of(d, netns),
            labels: labels_of(d, netns),
            listener: "(no listener full when the counter moved)".into(),
            queue: None,
            limit: None,
            peak_queue: None,
            somaxconn: d.latest_ns.get(&netns).and_then(|n| n.sysctls.somaxconn),
            drops: n,
            drops_seen: 0,
            drops_counted_only: n,
            closed: false,
            changes: Vec::new(),
            gone: d.gone(netns),
        });
    }
    (groups, adv)
}

pub(super) fn neigh_queue(d: &Diagnosis) -> (Vec<Group>, Vec<Advice>) {
    let mut nq: Vec<_> = d.neigh_queue.iter().collect();
    nq.sort_by_key(|(_, g)| std::cmp::Reverse(g.drops));
    let (mut groups, mut adv) = (Vec::new(), Vec::new());
    for ((netns, dev, neighbour), g) in nq.into_iter().take(d.group_limit()) {
        let ns = d.latest_ns.get(netns);
        let state = ns
            .and_then(|n| {
                n.neighbours
                    .iter()
                    .find(|e| e.addr == *neighbour && e.dev == *dev)
            })
            .map(|e| nud_state_name(e.state).to_string());
        let vals = in_force(&g.segments, neigh_vals(ns, dev));
        let (bytes, qlen) = (vals[0], vals[1]);
        let mut ch = changes(d, Some(*netns), &neigh_knobs(dev), &g.segments);
        let a = advice::advise_neigh_queue(&advice::NeighQueueFacts {
            neighbour: *neighbour,
            dev: dev.clone(),
            netns: ns_label(*netns, &name_of(d, *netns)),
            state: state.clone(),
            unres_qlen_bytes: to_u64(bytes),
            unres_qlen: to_u64(qlen),
            drops: g.drops,
            changes: for_advice(&ch),
        });
        mark_stopped(&mut ch, &a);
        adv.push(a);
        groups.push(Group::Neighbour {
            netns: netns.inode.into(),
            netns_cookie: netns.cookie,
            netns_name: name_of(d, *netns),
            labels: labels_of(d, *netns),
            neighbour: *neighbour,
            dev: dev.clone(),
            state,
            unres_qlen_bytes: bytes,
            unres_qlen: qlen,
            drops: g.drops,
            changes: ch,
            gone: d.gone(*netns),
        });
    }
    (groups, adv)
}

pub(super) fn tables(d: &Diagnosis) -> (Vec<Group>, Vec<Advice>) {
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
        let now = last.map_or(
            [None; 3],
            |s| if ipv6 { s.gc_thresh6 } else { s.gc_thresh4 },
        );
        // The packet drops when there are any, else the refused creates.
        let segs = if t.drops > 0 {
            &t.segments
        } else {
            &t.refused_segments
        };
        let gc = in_force(segs, now.map(|v| v.map(|v| v as i64))).map(to_u64);
        let (mut incomplete, mut failed) = (0, 0);
        for (_, n) in d.latest_ns.iter().filter(|(id, _)| !d.gone(**id)) {
            for e in n.neighbours.iter().filter(|e| e.addr.is_ipv6() == ipv6) {
                incomplete += u64::from(e.state & NUD_INCOMPLETE != 0);
                failed += u64::from(e.state & NUD_FAILED != 0);
            }
        }
        let mut ch = changes(d, None, &table_knobs(ipv6), segs);
        let a = advice::advise_neigh_table(&advice::NeighTableFacts {
            ipv6,
            entries: entries.unwrap_or(t.peak_entries),
            peak: t.peak_entries,
            gc_thresh: gc,
            incomplete,
            failed,
            drops: t.drops,
            refused_creates: t.refused,
            changes: for_advice(&ch),
        });
        mark_stopped(&mut ch, &a);
        adv.push(a);
        groups.push(Group::Table {
            family: if ipv6 { "ipv6" } else { "ipv4" },
            entries,
            peak: t.peak_entries,
            gc_thresh: gc,
            incomplete,
            failed,
            drops: t.drops,
            refused_creates: t.refused,
            changes: ch,
            gone: false,
        });
    }
    (groups, adv)
}

/// The devices of rp_filter drops: those the hooks saw, and those the kernel
/// counted in a namespace beyond them (`kernel_only`: what the summary added
/// as counted by the kernel only, split by [`Diagnosis::rp_kernel_only`]).
pub(super) fn devices(d: &Diagnosis, kernel_only: u64) -> (Vec<Group>, Vec<Advice>) {
    // (netns, dev) → (seen, counted by the kernel only, maybe among other).
    let mut keys: BTreeMap<(NetnsId, String), (Option<&RpGroup>, u64, u64)> = BTreeMap::new();
    for (k, g) in &d.rp {
        keys.insert(k.clone(), (Some(g), 0, 0));
    }
    for (k, (only, maybe)) in d.rp_kernel_only(kernel_only) {
        let e = keys.entry(k).or_default();
        (e.1, e.2) = (only, maybe);
    }
    let mut rp: Vec<_> = keys.into_iter().collect();
    rp.sort_by_key(|(_, (g, only, maybe))| {
        std::cmp::Reverse(g.map_or(0, |g| g.drops) + only + maybe)
    });
    let (mut groups, mut adv) = (Vec::new(), Vec::new());
    for ((netns, dev), (g, only, maybe)) in rp.into_iter().take(d.group_limit()) {
        let ns = d.latest_ns.get(&netns);
        let label = ns_label(netns, &name_of(d, netns));
        let seen = g.map_or(0, |g| g.drops);
        let now = rp_vals(ns, &dev);
        let vals = g.map_or(now, |g| in_force(&g.segments, now));
        let (all, devv) = (vals[0], vals[1]);
        // Kernel-only drops have no time: no drops before or after a change.
        let mut ch = match g {
            Some(g) => changes(d, Some(netns), &rp_knobs(&dev), &g.segments),
            None => Vec::new(),
        };
        let facts = advice::RpFilterFacts {
            dev: dev.clone(),
            netns: label.clone(),
            all: to_u64(all),
            dev_value: to_u64(devv),
            drops: seen + only + maybe,
            sources: g
                .map(|g| g.sources.iter().copied().collect())
                .unwrap_or_default(),
            changes: for_advice(&ch),
        };
        let effective = facts.effective().map(|v| v as i64);
        let a = if dev == UNKNOWN_DEV {
            unknown_dev_advice(&label, ns, only + maybe)
        } else {
            let mut a = advice::advise_rp_filter(&facts);
            if seen == 0 {
                a.reason = format!(
                    "counted by the kernel (TcpExt:IPReversePathFilter), not classified by a hook; {dev} is the only device filtering in netns {label}: {}",
                    a.reason
                );
            }
            a
        };
        mark_stopped(&mut ch, &a);
        adv.push(a);
        groups.push(Group::Device {
            netns: netns.inode.into(),
            netns_cookie: netns.cookie,
            netns_name: name_of(d, netns),
            labels: labels_of(d, netns),
            dev,
            rp_filter_all: all,
            rp_filter_dev: devv,
            effective,
            drops: seen + only,
            drops_seen: seen,
            drops_counted_only: only,
            maybe_among_other: maybe,
            sources: facts.sources,
            changes: ch,
            gone: d.gone(netns),
        });
    }
    (groups, adv)
}
