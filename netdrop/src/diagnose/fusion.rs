//! Counter fusion for the accept queue: SYNs refused by a full accept queue
//! are consumed, not dropped, and where tcp_conn_request cannot be hooked no
//! hook sees them. The kernel's per-namespace ListenOverflows beyond what the
//! hooks saw are such drops, attributed to the listeners full when it moved.
//! And what every fused counter (this one, rp_filter's: [`super::rp_fusion`])
//! gives the totals: [`KernelOnly`].

use std::collections::BTreeMap;

use super::{
    Diagnosis, ListenerKey, counters::LISTEN_OVERFLOWS, listener_knobs, listener_vals,
    snapshot::NetnsSnapshot,
};
use crate::{classify::Cause, netns_id::NetnsId, summary::KernelOnly};

impl Diagnosis {
    /// `unseen` ListenOverflows no hook saw, moved up to the read `ns` at
    /// `at_s`: weights for the listeners full in it (the exact split is made
    /// at the end, [`Diagnosis::exact_unseen`]).
    pub(super) fn attribute_unseen(&mut self, at_s: f64, ns: &NetnsSnapshot, unseen: u64) {
        let netns = ns.id();
        let full: Vec<_> = ns
            .listeners
            .iter()
            .filter(|l| l.accept_queue >= l.backlog)
            .collect();
        // With no full listener the report leaves them unattributed.
        if full.is_empty() {
            return;
        }
        let share = unseen / full.len() as u64;
        let mut rest = unseen % full.len() as u64;
        for l in full {
            let n = share + u64::from(rest > 0);
            rest = rest.saturating_sub(1);
            let g = self.accept.entry((netns, l.port)).or_default();
            g.addr = g.addr.or(Some(l.addr));
            g.listen_addr = g.listen_addr.or(Some(l.addr));
            g.unseen += n;
            let seq = self
                .changes
                .latest_seq(Some(netns), &listener_knobs(g.listen_addr, l.port));
            g.segments
                .note(listener_vals(Some(ns), Some(l.backlog)), seq, n, at_s);
        }
    }

    /// Per namespace, the kernel's ListenOverflows that no hook saw, exactly:
    /// what it counted (from its first read, or from zero if it was born during
    /// the observation, to its last read) minus what the hooks saw there. Split
    /// over the listeners in proportion to what was attributed to them while
    /// observing (the ones full when the counter moved), else over those full
    /// at its last read, else left unattributed (second map).
    #[allow(clippy::type_complexity)]
    pub(crate) fn exact_unseen(&self) -> (BTreeMap<ListenerKey, u64>, BTreeMap<NetnsId, u64>) {
        let mut by_key = BTreeMap::new();
        let mut unattributed = BTreeMap::new();
        for (netns, delta) in self.counters.deltas(LISTEN_OVERFLOWS) {
            let seen = self.accept_seen.get(&netns).copied().unwrap_or(0);
            let unseen = delta.saturating_sub(seen);
            if unseen == 0 {
                continue;
            }
            let mut weights: Vec<(ListenerKey, u64)> = self
                .accept
                .iter()
                .filter(|((ns, _), g)| *ns == netns && g.unseen > 0)
                .map(|(k, g)| (*k, g.unseen))
                .collect();
            if weights.is_empty() {
                weights = self
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

    /// What the kernel's counters show beyond the drops the hooks saw, per
    /// cause, with what the summary needs to add it without counting a drop
    /// twice ([`KernelOnly`], `Summary::with_kernel_only`): the accept queue's
    /// ListenOverflows, and the rp_filter drops of IPReversePathFilter beyond
    /// both the rp_filter and the unclassified (`other`) drops seen in the
    /// same namespace.
    pub fn kernel_only(&self) -> KernelOnly {
        let mut k = self.kernel_only_live();
        k.add(&self.retired.kernel_only);
        k
    }

    /// [`kernel_only`](Self::kernel_only) of the namespaces still held.
    pub(super) fn kernel_only_live(&self) -> KernelOnly {
        let (by_key, unattributed) = self.exact_unseen();
        // Where ListenOverflows moved beyond what the hooks saw and TCP freed
        // that many drops without a reason in the same namespace, those drops
        // are the overflows: moved from `other`, not added.
        let mut from_other = 0;
        for (netns, delta) in self.counters.deltas(LISTEN_OVERFLOWS) {
            let seen = self.accept_seen.get(&netns).copied().unwrap_or(0);
            let unseen = delta.saturating_sub(seen);
            let candidates = self.tcp_rcv_unreasoned.get(&netns).copied().unwrap_or(0);
            from_other += unseen.min(candidates);
        }
        let accept = by_key.values().sum::<u64>() + unattributed.values().sum::<u64>();
        let rp = self.rp_unseen();
        let known = |id: &NetnsId| id.inode != 0;
        let accept_placed = self
            .accept_seen
            .iter()
            .filter(|(id, _)| known(id))
            .map(|(_, n)| n)
            .sum();
        let rp_placed = self
            .rp
            .iter()
            .filter(|((id, _), _)| known(id))
            .map(|(_, g)| g.drops)
            .sum();
        KernelOnly {
            beyond_seen: BTreeMap::from([
                (Cause::AcceptQueueFull, accept),
                (Cause::RpFilter, rp.values().map(|u| u.beyond).sum()),
            ]),
            maybe_among_other: BTreeMap::from([(
                Cause::RpFilter,
                rp.values().map(|u| u.maybe_among_other).sum(),
            )]),
            from_other: BTreeMap::from([(Cause::AcceptQueueFull, from_other)]),
            placed: BTreeMap::from([
                (Cause::AcceptQueueFull, accept_placed),
                (Cause::RpFilter, rp_placed),
                (Cause::Other, self.other_placed),
            ]),
        }
    }
}
