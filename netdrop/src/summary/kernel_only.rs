//! Drops known only from the kernel's counters (what the diagnosis' counter
//! fusion found beyond what the hooks saw), and what keeps the summary from
//! counting them twice.

use std::collections::BTreeMap;

use crate::classify::Cause;

/// Drops known only from the kernel's counters, and what keeps them from being
/// counted twice. The session adds them to the summary
/// (`Summary::with_kernel_only`) so every output gives the same totals; the
/// report shows them as `counted_by_kernel_only`.
///
/// The guard against double counting: per namespace, the diagnosis takes off
/// what the hooks saw there (for rp_filter, the rp_filter drops *and* the
/// unclassified `other` drops there: on kernels without drop reasons those
/// may be the same packets). What is left may still hold drops the summary
/// counted whose namespace the diagnosis never learned (detail events held
/// back by the event limit, lost in the ring buffer, narrowed away by
/// `--port`/`--addr`): the summary takes those off too, from its exact
/// counts minus what the diagnosis [placed](KernelOnly::placed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelOnly {
    /// Per cause, what the kernel counted beyond what the hooks saw in the
    /// same namespace (rp_filter: beyond the rp_filter and `other` drops there).
    pub beyond_seen: BTreeMap<Cause, u64>,
    /// Per cause, what the kernel counted beyond the drops of that cause seen
    /// that may be among the `other` drops seen in the same namespace: in no
    /// total.
    pub maybe_among_other: BTreeMap<Cause, u64>,
    /// Per cause, the part of `beyond_seen` that the hooks did see, as
    /// `other` drops the kernel gave no reason (an ACK refused by a full
    /// accept queue before TCP_LISTEN_OVERFLOW): moved from `other` to the
    /// cause, not added.
    pub from_other: BTreeMap<Cause, u64>,
    /// Per cause, the drops the diagnosis took in with a known namespace.
    pub placed: BTreeMap<Cause, u64>,
}

impl KernelOnly {
    /// Adds `o`'s counts to these.
    pub fn add(&mut self, o: &KernelOnly) {
        for (mine, theirs) in [
            (&mut self.beyond_seen, &o.beyond_seen),
            (&mut self.maybe_among_other, &o.maybe_among_other),
            (&mut self.from_other, &o.from_other),
            (&mut self.placed, &o.placed),
        ] {
            for (c, n) in theirs {
                *mine.entry(*c).or_default() += n;
            }
        }
    }

    /// What `before` held beyond `after`, per cause (never negative).
    pub fn lost_between(before: &KernelOnly, after: &KernelOnly) -> KernelOnly {
        let diff = |b: &BTreeMap<Cause, u64>, a: &BTreeMap<Cause, u64>| {
            b.iter()
                .map(|(c, n)| (*c, n.saturating_sub(a.get(c).copied().unwrap_or(0))))
                .filter(|(_, n)| *n > 0)
                .collect()
        };
        KernelOnly {
            beyond_seen: diff(&before.beyond_seen, &after.beyond_seen),
            maybe_among_other: diff(&before.maybe_among_other, &after.maybe_among_other),
            from_other: diff(&before.from_other, &after.from_other),
            placed: diff(&before.placed, &after.placed),
        }
    }

    pub fn beyond_seen(&self, c: Cause) -> u64 {
        self.beyond_seen.get(&c).copied().unwrap_or(0)
    }

    pub fn maybe_among_other(&self, c: Cause) -> u64 {
        self.maybe_among_other.get(&c).copied().unwrap_or(0)
    }

    pub fn from_other(&self, c: Cause) -> u64 {
        self.from_other.get(&c).copied().unwrap_or(0)
    }

    pub fn placed(&self, c: Cause) -> u64 {
        self.placed.get(&c).copied().unwrap_or(0)
    }

    /// The causes whose drops, counted but not placed in a namespace, may be
    /// kernel-only drops of `c` (so are taken off them).
    pub fn guards(c: Cause) -> &'static [Cause] {
        match c {
            Cause::RpFilter => &[Cause::RpFilter, Cause::Other],
            other => std::slice::from_ref(
                Cause::ALL
                    .iter()
                    .find(|c| **c == other)
                    .unwrap_or(&Cause::Other),
            ),
        }
    }
}
