//! Exact totals: per-reason kernel counters → per-cause summary. Pure.

use std::collections::BTreeMap;

use netdrop_common::{
    LISTEN_FULL_NO_SOCKET_SLOT, NETFILTER_DROP_CONNTRACK_FULL_SLOT, REASON_OVERFLOW_SLOT, stat,
};
use serde::Serialize;

use crate::{
    classify::{Cause, cause_of},
    kernel::reasons::ReasonTable,
};

mod kernel_only;
pub use kernel_only::KernelOnly;

/// Totals the sinks print beside the kernel's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Session {
    pub duration_s: f64,
    /// Detail events read from the ring buffer.
    pub events_read: u64,
    /// Ring buffer records that could not be decoded.
    pub undecodable: u64,
}

/// A read of the kernel's counters (summed over CPUs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Drops per reason slot (index = reason value; the last slot gathers larger values).
    pub drops: Vec<u64>,
    /// Detail events lost per reason slot (counts are not lost).
    pub lost: Vec<u64>,
    /// Detail events sent per reason slot. Drops − sent − lost were held back
    /// by the kernel's event limit (`--events-per-sec`).
    pub sent: Vec<u64>,
    /// Indexed by `netdrop_common::stat`.
    pub stats: Vec<u64>,
}

impl Counts {
    fn stat(&self, i: u32) -> u64 {
        self.stats.get(i as usize).copied().unwrap_or(0)
    }

    /// Drops of reason slot `slot` whose detail event the event limit held back.
    pub fn held_back(&self, slot: usize) -> u64 {
        let at = |v: &[u64]| v.get(slot).copied().unwrap_or(0);
        at(&self.drops).saturating_sub(at(&self.sent) + at(&self.lost))
    }

    /// The same for a counted stat and its sent and lost stats.
    fn stat_held_back(&self, total: u32, sent: u32, lost: u32) -> u64 {
        self.stat(total)
            .saturating_sub(self.stat(sent) + self.stat(lost))
    }
}

/// The name of a counter slot: a kernel reason, or one of netdrop's own slots.
pub fn slot_name(reasons: &ReasonTable, has_reason_field: bool, slot: u32) -> String {
    if !has_reason_field {
        crate::kernel::locations::slot_name(slot).unwrap_or_else(|| "UNKNOWN".into())
    } else if slot == LISTEN_FULL_NO_SOCKET_SLOT {
        crate::classify::NO_SOCKET_LISTEN_FULL.into()
    } else if slot == NETFILTER_DROP_CONNTRACK_FULL_SLOT {
        crate::causes::NETFILTER_DROP_CONNTRACK_FULL.into()
    } else if slot == REASON_OVERFLOW_SLOT {
        format!("UNKNOWN_GE_{REASON_OVERFLOW_SLOT}")
    } else {
        reasons.name(slot)
    }
}

/// How the agent names reason slots on this kernel.
#[derive(Debug, Clone)]
pub struct Naming {
    pub reasons: ReasonTable,
    /// False on kernels before 5.17: every drop is in slot 0, reason unknown.
    pub has_reason_field: bool,
}

impl Naming {
    pub fn slot_name(&self, slot: u32) -> String {
        slot_name(&self.reasons, self.has_reason_field, slot)
    }

    pub fn reason_name(&self, reason: u32) -> String {
        if self.has_reason_field {
            self.reasons.name(reason)
        } else {
            "UNKNOWN".into()
        }
    }

    /// A drop's reason name; on kernels without reasons, inferred from where
    /// it was freed (`location`: `symbol+0xoff`) where the table knows it.
    /// The probe gives drops it counted in netdrop's conntrack-full slot that
    /// slot as their reason.
    pub fn drop_reason_name(&self, reason: u32, location: &str) -> String {
        if self.has_reason_field && reason == NETFILTER_DROP_CONNTRACK_FULL_SLOT {
            crate::causes::NETFILTER_DROP_CONNTRACK_FULL.into()
        } else if self.has_reason_field {
            self.reasons.name(reason)
        } else {
            crate::kernel::locations::reason_at(location).unwrap_or_else(|| "UNKNOWN".into())
        }
    }
}

/// The summary line of `watch` and the totals of every report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Every cause, zero included.
    pub causes: BTreeMap<&'static str, u64>,
    /// Non-zero reasons by kernel name.
    pub reasons: BTreeMap<String, u64>,
    /// neigh:neigh_create refusals (a full neighbour table), whether or not a packet was dropped.
    pub neigh_create_failures: u64,
    /// Detail events the ring buffer could not take (the counts above still include them).
    pub lost_events: u64,
    pub lost_by_cause: BTreeMap<&'static str, u64>,
    /// Detail events the kernel held back because their reason had already
    /// sent `--events-per-sec` this second (the counts above still include them).
    pub sampled_events: u64,
    pub sampled_by_cause: BTreeMap<&'static str, u64>,
    /// SYNs refused by a full accept queue, seen by the tcp_conn_request hook
    /// (they carry no drop reason); included in causes.accept_queue_full.
    pub accept_syn_drops: u64,
    /// Drops no hook saw that the kernel's own counters show (e.g. SYNs refused
    /// by a full accept queue where tcp_conn_request cannot be hooked: the
    /// namespaces' ListenOverflows beyond what the hooks saw). Included in
    /// `causes` and `total_drops`, so every output gives the same totals.
    pub kernel_only: BTreeMap<&'static str, u64>,
    /// Drops the kernel's counters show beyond what netdrop classified that may
    /// be among the `other` drops (e.g. rp_filter drops on a kernel without
    /// drop reasons): in no total, shown so the difference is not hidden.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub maybe_among_other: BTreeMap<&'static str, u64>,
    /// Drops seen without a reason of their own (`other`) that the kernel's
    /// counters show to be of a cause (ACKs refused by a full accept queue on
    /// kernels before TCP_LISTEN_OVERFLOW): moved from `other` to that cause
    /// in `causes`; the total is unchanged.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub from_other: BTreeMap<&'static str, u64>,
    pub total_drops: u64,
    /// `kernel_only` was added ([`Summary::with_kernel_only`]): once only.
    #[serde(skip)]
    pub kernel_only_applied: bool,
}

impl Summary {
    pub fn from_counts(counts: &Counts, naming: &Naming) -> Summary {
        let mut s = Summary::default();
        for c in Cause::ALL {
            s.causes.insert(c.as_str(), 0);
        }
        for (slot, &n) in counts.drops.iter().enumerate() {
            let lost = counts.lost.get(slot).copied().unwrap_or(0);
            if n == 0 && lost == 0 {
                continue;
            }
            let held = counts.held_back(slot);
            let name = naming.slot_name(slot as u32);
            let cause = cause_of(&name).as_str();
            *s.causes.entry(cause).or_default() += n;
            if n > 0 {
                *s.reasons.entry(name).or_default() += n;
            }
            if lost > 0 {
                *s.lost_by_cause.entry(cause).or_default() += lost;
            }
            if held > 0 {
                *s.sampled_by_cause.entry(cause).or_default() += held;
            }
            s.total_drops += n;
            s.lost_events += lost;
            s.sampled_events += held;
        }
        s.neigh_create_failures = counts.stat(stat::NEIGH_CREATE_FAIL);
        let neigh_lost = counts.stat(stat::NEIGH_CREATE_FAIL_LOST);
        s.lost_events += neigh_lost;
        if neigh_lost > 0 {
            *s.lost_by_cause
                .entry(Cause::NeighTableOverflow.as_str())
                .or_default() += neigh_lost;
        }
        s.add_held_back(
            Cause::NeighTableOverflow,
            counts.stat_held_back(
                stat::NEIGH_CREATE_FAIL,
                stat::NEIGH_CREATE_FAIL_SENT,
                stat::NEIGH_CREATE_FAIL_LOST,
            ),
        );
        s.add_held_back(
            Cause::AcceptQueueFull,
            counts.stat_held_back(
                stat::ACCEPT_SYN_DROP,
                stat::ACCEPT_SYN_DROP_SENT,
                stat::ACCEPT_SYN_DROP_LOST,
            ),
        );
        s.accept_syn_drops = counts.stat(stat::ACCEPT_SYN_DROP);
        *s.causes.entry(Cause::AcceptQueueFull.as_str()).or_default() += s.accept_syn_drops;
        s.total_drops += s.accept_syn_drops;
        let syn_lost = counts.stat(stat::ACCEPT_SYN_DROP_LOST);
        s.lost_events += syn_lost;
        if syn_lost > 0 {
            *s.lost_by_cause
                .entry(Cause::AcceptQueueFull.as_str())
                .or_default() += syn_lost;
        }
        // Without drop reasons, and no drop freed where a failed create frees
        // it (kernel/locations.rs: functions not found, or none of them freed
        // anything), the refused creates are the only sign of a full table.
        let by_location = counts
            .drops
            .get(netdrop_common::location_slot::NEIGH_TABLE_FULL as usize)
            .copied()
            .unwrap_or(0);
        if !naming.has_reason_field && by_location == 0 {
            *s.causes
                .entry(Cause::NeighTableOverflow.as_str())
                .or_default() += s.neigh_create_failures;
        }
        s
    }

    /// Adds the drops known only from kernel counters (from the diagnosis's
    /// counter fusion) to the totals, without counting a drop twice.
    ///
    /// The diagnosis's count is the kernel's beyond the drops it *placed* in a
    /// namespace; drops this summary counted that it could not place (detail
    /// event held back or lost, narrowed away by `--port`/`--addr`) may be
    /// among them, so they are taken off: those of the cause itself, and for
    /// rp_filter also the unplaced `other` drops ([`KernelOnly::guards`]).
    /// What is taken off for `other`, and the diagnosis's own
    /// `maybe_among_other`, goes to [`Summary::maybe_among_other`].
    pub fn with_kernel_only(mut self, ko: &KernelOnly) -> Summary {
        if self.kernel_only_applied {
            return self;
        }
        self.kernel_only_applied = true;
        // First what moves from `other` (seen, but given no reason): then the
        // rest is checked against what is left.
        let mut other_moved = 0;
        let mut moved = BTreeMap::new();
        for c in Cause::ALL {
            let m = ko.from_other(c).min(self.cause(Cause::Other) - other_moved);
            if m > 0 {
                other_moved += m;
                moved.insert(c, m);
                *self.causes.entry(c.as_str()).or_default() += m;
                *self.from_other.entry(c.as_str()).or_default() += m;
            }
        }
        if other_moved > 0 {
            *self.causes.entry(Cause::Other.as_str()).or_default() -= other_moved;
        }
        for c in Cause::ALL {
            let n = ko.beyond_seen(c) - moved.get(&c).copied().unwrap_or(0).min(ko.beyond_seen(c));
            let placed = |g: Cause| {
                let p = ko.placed(g);
                if g == Cause::Other {
                    p.saturating_sub(other_moved)
                } else {
                    // Moved drops were placed (as `other`) in their namespace.
                    p + moved.get(&g).copied().unwrap_or(0)
                }
            };
            let unplaced = |g: Cause| self.cause(g).saturating_sub(placed(g));
            let own = unplaced(c);
            let others: u64 = KernelOnly::guards(c)
                .iter()
                .filter(|&&g| g != c)
                .map(|&g| unplaced(g))
                .sum();
            let add = n.saturating_sub(own + others);
            let among = ko.maybe_among_other(c) + (n - add).saturating_sub(own);
            if among > 0 {
                self.maybe_among_other.insert(c.as_str(), among);
            }
            if add == 0 {
                continue;
            }
            *self.kernel_only.entry(c.as_str()).or_default() += add;
            *self.causes.entry(c.as_str()).or_default() += add;
            self.total_drops += add;
        }
        self
    }

    /// Drops the kernel counted for `c` beyond what was classified that may be
    /// among the `other` drops (in no total).
    pub fn maybe_among_other(&self, c: Cause) -> u64 {
        self.maybe_among_other.get(c.as_str()).copied().unwrap_or(0)
    }

    /// Drops of `c` counted by the kernel only (included in [`Summary::cause`]).
    pub fn kernel_only(&self, c: Cause) -> u64 {
        self.kernel_only.get(c.as_str()).copied().unwrap_or(0)
    }

    fn add_held_back(&mut self, cause: Cause, n: u64) {
        if n > 0 {
            self.sampled_events += n;
            *self.sampled_by_cause.entry(cause.as_str()).or_default() += n;
        }
    }

    pub fn cause(&self, c: Cause) -> u64 {
        self.causes.get(c.as_str()).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
