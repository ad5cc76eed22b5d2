//! The causes the diagnosis handles from their declarations alone
//! (causes/<cause>.rs): their drops grouped as the cause says, their kernel
//! counters per namespace (or global) over the observation, and, in the
//! report, the values in force and the cause's own advice per group.

use std::collections::BTreeMap;

use super::counters::Start;
use super::snapshot::{NetnsSnapshot, Snapshot};
use crate::{
    causes::{Cause, GroupBy, GroupKey, Source, spec},
    event::DropView,
    netns_id::NetnsId,
};

/// Groups kept per cause; drops beyond go to [`GroupKey::Rest`] of their
/// namespace (memory stays bounded whatever the traffic).
pub const MAX_GROUPS_PER_CAUSE: usize = 256;

#[derive(Debug, Clone, Default)]
pub struct DeclGroup {
    pub drops: u64,
    /// Its latest drop, unix seconds.
    pub last_s: f64,
    /// Its drops by kernel reason (a cause has a few).
    pub reasons: BTreeMap<String, u64>,
}

/// Reasons kept per group (a cause declares a few; the rest are summed in
/// the last one kept).
const MAX_REASONS_PER_GROUP: usize = 8;

/// A counter over the observation: from its origin to its latest read.
#[derive(Debug, Clone, Copy, Default)]
struct Count {
    base: u64,
    latest: u64,
}

impl Count {
    fn delta(self) -> u64 {
        self.latest.saturating_sub(self.base)
    }
}

#[derive(Debug, Default)]
pub struct Declared {
    pub groups: BTreeMap<(Cause, NetnsId, GroupKey), DeclGroup>,
    per_cause: BTreeMap<Cause, usize>,
    /// Per-namespace counters by (namespace, counter name).
    ns: BTreeMap<(NetnsId, String), Count>,
    /// Global counters by name.
    global: BTreeMap<String, Count>,
    /// What namespaces forgotten by [`Declared::retire`] counted, by counter.
    retired: BTreeMap<String, u64>,
}

fn key_of(by: GroupBy, ev: &DropView<'_>) -> GroupKey {
    let r = ev.rec;
    let p = r.packet.as_ref();
    match by {
        GroupBy::Socket => match p {
            Some(p) => GroupKey::Socket {
                proto: p.l4,
                addr: p.daddr,
                port: p.dport.unwrap_or(0),
            },
            None => GroupKey::Rest,
        },
        GroupBy::Device if !r.dev.is_empty() => GroupKey::Device { dev: r.dev.clone() },
        GroupBy::Peer => match p {
            Some(p) => GroupKey::Peer { addr: p.saddr },
            None => GroupKey::Rest,
        },
        GroupBy::Netns => GroupKey::Netns,
        GroupBy::Device | GroupBy::Bespoke => GroupKey::Rest,
    }
}

impl Declared {
    /// A drop of a declarative cause.
    pub fn on_drop(&mut self, ev: &DropView<'_>, at_unix: f64) {
        let s = spec(ev.cause);
        let netns = ev.rec.netns_id();
        let mut at = (ev.cause, netns, key_of(s.group_by, ev));
        let n = self.per_cause.entry(ev.cause).or_default();
        if !self.groups.contains_key(&at) {
            if *n >= MAX_GROUPS_PER_CAUSE {
                // One group for every drop beyond, whatever its namespace.
                at = (ev.cause, NetnsId::new(0, 0), GroupKey::Rest);
            }
            if !self.groups.contains_key(&at) {
                *n += 1;
            }
        }
        // Rules read again while their namespace drops (context/nft.rs).
        if s.counters.iter().any(|c| c.source == Source::NftDropRules) {
            crate::context::nft::note_drop(netns.inode.into());
        }
        let g = self.groups.entry(at).or_default();
        g.drops += 1;
        g.last_s = g.last_s.max(at_unix);
        if g.reasons.len() < MAX_REASONS_PER_GROUP || g.reasons.contains_key(&ev.reason) {
            *g.reasons.entry(ev.reason.clone()).or_default() += 1;
        }
    }

    /// A namespace read; `start` says where its counts start.
    pub fn on_ns(&mut self, ns: &NetnsSnapshot, start: Start) {
        let id = ns.id();
        for (name, v) in &ns.counters {
            let c = self.ns.entry((id, name.clone())).or_insert(Count {
                base: if start == Start::BornLater { 0 } else { *v },
                latest: *v,
            });
            c.latest = c.latest.max(*v);
        }
    }

    /// A full snapshot's global counters.
    pub fn on_snapshot(&mut self, snap: &Snapshot) {
        for (name, v) in &snap.counters {
            let c = self.global.entry(name.clone()).or_insert(Count {
                base: *v,
                latest: *v,
            });
            c.latest = c.latest.max(*v);
        }
    }

    /// Forgets a namespace that counted nothing and has no group.
    pub fn forget(&mut self, id: NetnsId) {
        if self.groups.keys().any(|(_, ns, _)| *ns == id) {
            return;
        }
        if self
            .ns
            .range((id, String::new())..)
            .take_while(|((n, _), _)| *n == id)
            .all(|(_, c)| c.delta() == 0)
        {
            self.ns.retain(|(n, _), _| *n != id);
        }
    }

    /// Forgets a namespace and its groups, keeping what its counters
    /// counted in the totals.
    pub fn retire(&mut self, id: NetnsId) {
        let mut dropped: Vec<Cause> = Vec::new();
        self.groups.retain(|(c, ns, _), _| {
            let keep = *ns != id;
            if !keep {
                dropped.push(*c);
            }
            keep
        });
        for c in dropped {
            if let Some(n) = self.per_cause.get_mut(&c) {
                *n = n.saturating_sub(1);
            }
        }
        let retired = &mut self.retired;
        self.ns.retain(|(n, name), c| {
            if *n == id {
                *retired.entry(name.clone()).or_default() += c.delta();
            }
            *n != id
        });
    }

    pub fn has_group_in(&self, id: NetnsId) -> bool {
        self.groups.keys().any(|(_, ns, _)| *ns == id)
    }

    /// The per-item counters of namespace `netns` named with `prefix` that
    /// moved over the observation (name without the prefix, delta), most
    /// first, at most `max`.
    pub fn moved_items(&self, netns: NetnsId, prefix: &str, max: usize) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .ns
            .range((netns, prefix.to_string())..)
            .take_while(|((n, name), _)| *n == netns && name.starts_with(prefix))
            .filter(|(_, c)| c.delta() > 0)
            .map(|((_, name), c)| (name[prefix.len()..].to_string(), c.delta()))
            .collect();
        v.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
        v.truncate(max);
        v
    }

    /// What counter `name` moved over the observation: in `netns` for a
    /// per-namespace counter (None: summed over all), or globally. None:
    /// never read.
    pub fn counter(&self, name: &str, netns: Option<NetnsId>) -> Option<u64> {
        if let Some(c) = self.global.get(name) {
            return Some(c.delta());
        }
        let retired = netns
            .is_none()
            .then(|| self.retired.get(name).copied())
            .flatten();
        let mut any = retired.is_some();
        let sum = self
            .ns
            .iter()
            .filter(|((n, c), _)| c == name && netns.is_none_or(|id| id == *n))
            .inspect(|_| any = true)
            .map(|(_, c)| c.delta())
            .sum::<u64>()
            + retired.unwrap_or(0);
        any.then_some(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(inode: u64, counters: &[(&str, u64)]) -> NetnsSnapshot {
        NetnsSnapshot {
            inode,
            cookie: inode,
            counters: counters.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..NetnsSnapshot::default()
        }
    }

    #[test]
    fn counters_count_from_their_origin() {
        let mut d = Declared::default();
        d.on_ns(&ns(1, &[("Udp:RcvbufErrors", 10)]), Start::AtStart);
        d.on_ns(&ns(2, &[("Udp:RcvbufErrors", 7)]), Start::BornLater);
        d.on_ns(&ns(1, &[("Udp:RcvbufErrors", 15)]), Start::AtStart);
        assert_eq!(d.counter("Udp:RcvbufErrors", None), Some(12));
        assert_eq!(
            d.counter("Udp:RcvbufErrors", Some(NetnsId::new(1, 1))),
            Some(5)
        );
        assert_eq!(d.counter("TcpExt:PAWSEstab", None), None);
        // One that counted nothing is forgotten; one that counted is kept.
        d.on_ns(&ns(3, &[("Udp:RcvbufErrors", 4)]), Start::AtStart);
        d.forget(NetnsId::new(3, 3));
        d.forget(NetnsId::new(1, 1));
        assert_eq!(d.ns.len(), 2);
    }

    #[test]
    fn moved_items_of_a_namespace() {
        let mut d = Declared::default();
        let (a, b) = (NetnsId::new(1, 1), NetnsId::new(2, 2));
        d.on_ns(
            &ns(
                1,
                &[
                    ("nft:ip t c handle 2", 3),
                    ("nft:ip t c handle 3", 1),
                    ("nft:ip t c handle 4", 0),
                    ("other", 5),
                ],
            ),
            Start::AtStart,
        );
        d.on_ns(&ns(2, &[("nft:ip t c handle 2", 0)]), Start::AtStart);
        d.on_ns(
            &ns(
                1,
                &[
                    ("nft:ip t c handle 2", 13),
                    ("nft:ip t c handle 3", 2),
                    ("nft:ip t c handle 4", 0),
                    ("other", 9),
                ],
            ),
            Start::AtStart,
        );
        assert_eq!(
            d.moved_items(a, "nft:", 8),
            [
                ("ip t c handle 2".to_string(), 10),
                ("ip t c handle 3".to_string(), 1)
            ]
        );
        assert_eq!(d.moved_items(a, "nft:", 1).len(), 1);
        assert!(d.moved_items(b, "nft:", 8).is_empty());
    }

    #[test]
    fn global_counters() {
        let mut d = Declared::default();
        let snap = |v| Snapshot {
            counters: [("softnet_stat dropped".to_string(), v)].into(),
            ..Snapshot::default()
        };
        d.on_snapshot(&snap(100));
        d.on_snapshot(&snap(130));
        assert_eq!(d.counter("softnet_stat dropped", None), Some(30));
    }

    /// Groups stay bounded whatever the traffic: beyond the cap, every
    /// drop goes to one group of the rest, across namespaces.
    #[test]
    fn groups_are_bounded_across_namespaces() {
        let mut d = Declared::default();
        let mut rec = crate::decode::tests_support::drop_record();
        for i in 0..(MAX_GROUPS_PER_CAUSE as u32 + 500) {
            rec.netns = 4026531000 + i;
            rec.netns_cookie = u64::from(i) + 1;
            rec.dev = format!("veth{i}");
            let ev = DropView {
                rec: &rec,
                cause: Cause::CpuBacklog,
                reason: "CPU_BACKLOG".into(),
                location: String::new(),
                ts: 0.0,
                owner: None,
                netns_name: None,
                netns_identity: None,
            };
            d.on_drop(&ev, 0.0);
        }
        assert_eq!(d.groups.len(), MAX_GROUPS_PER_CAUSE + 1);
        let rest = &d.groups[&(Cause::CpuBacklog, NetnsId::new(0, 0), GroupKey::Rest)];
        assert_eq!(rest.drops, 500);
    }
}
