//! Counter fusion for rp_filter: the kernel counts every reverse-path drop in
//! its namespace's TcpExt:IPReversePathFilter. Where the hooks cannot classify
//! them (kernels without drop reasons: they are `other`, reason UNKNOWN) the
//! counter still shows the cause.
//!
//! Per namespace, what the counter moved beyond the rp_filter drops the hooks
//! saw there is first set against the unclassified (`other`) drops seen there:
//! those may be the same packets, so that part is only reported as *maybe
//! among other*, never added to a total. The rest is counted by the kernel
//! only (the summary may take off more: [`super::KernelOnly`]).

use std::collections::BTreeMap;

use super::{Diagnosis, counters::RP_FILTER_DROPS, snapshot::NetnsSnapshot};
use crate::{
    advice::{Advice, Knob},
    classify::Cause,
    netns_id::NetnsId,
};

/// The device of a kernel-only group when the namespace has more than one
/// (or no) device filtering: an interface name never has a space.
pub(super) const UNKNOWN_DEV: &str = "(unknown device)";

/// One namespace's IPReversePathFilter beside what the hooks saw there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RpUnseen {
    /// What the kernel counted (first read, or zero if born since, to last read).
    pub kernel: u64,
    /// rp_filter drops the hooks saw there.
    pub seen: u64,
    /// Drops the hooks saw there but could not classify.
    pub other: u64,
    /// Beyond both: counted by the kernel only.
    pub beyond: u64,
    /// Beyond the rp_filter drops seen, but maybe among the `other` ones.
    pub maybe_among_other: u64,
}

impl Diagnosis {
    /// Per namespace whose IPReversePathFilter moved beyond the rp_filter
    /// drops the hooks saw there: how far, and how much of it may be among
    /// the unclassified drops seen there.
    pub(crate) fn rp_unseen(&self) -> BTreeMap<NetnsId, RpUnseen> {
        let mut out = BTreeMap::new();
        for (netns, kernel) in self.counters.deltas(RP_FILTER_DROPS) {
            let seen: u64 = self
                .rp
                .iter()
                .filter(|((ns, _), _)| *ns == netns)
                .map(|(_, g)| g.drops)
                .sum();
            let unseen = kernel.saturating_sub(seen);
            if unseen == 0 {
                continue;
            }
            let other = self.other_seen.get(&netns).copied().unwrap_or(0);
            let maybe = unseen.min(other);
            out.insert(
                netns,
                RpUnseen {
                    kernel,
                    seen,
                    other,
                    beyond: unseen - maybe,
                    maybe_among_other: maybe,
                },
            );
        }
        out
    }

    /// The kernel-only rp_filter drops per (namespace, device): `added` (what
    /// the summary added, at most the sum of the namespaces' `beyond`) split
    /// over the namespaces in proportion to their `beyond`, each with its
    /// `maybe_among_other`; the device is the only one filtering in the
    /// namespace's latest read, else [`UNKNOWN_DEV`].
    pub(super) fn rp_kernel_only(&self, added: u64) -> BTreeMap<(NetnsId, String), (u64, u64)> {
        let unseen = self.rp_unseen();
        let total: u64 = unseen.values().map(|u| u.beyond).sum();
        let added = added.min(total);
        let mut out = BTreeMap::new();
        let (mut given, mut left) = (0, total);
        for (netns, u) in unseen {
            left -= u.beyond;
            // The last with a share takes the rest: the shares sum to `added`.
            let share = if left == 0 {
                added - given
            } else {
                (u128::from(added) * u128::from(u.beyond) / u128::from(total.max(1))) as u64
            };
            given += share;
            if share + u.maybe_among_other == 0 {
                continue;
            }
            let dev = self
                .latest_ns
                .get(&netns)
                .and_then(only_filtering_dev)
                .unwrap_or_else(|| UNKNOWN_DEV.to_string());
            let e: &mut (u64, u64) = out.entry((netns, dev)).or_default();
            e.0 += share;
            e.1 += u.maybe_among_other;
        }
        out
    }
}

/// The devices (loopback aside: its packets are never routed in) where
/// rp_filter is on in a read, with the value in force (the larger of
/// conf/all and the device's).
pub(super) fn filtering_devs(ns: &NetnsSnapshot) -> Vec<(String, i64)> {
    let all = ns.sysctls.rp_filter_all;
    ns.sysctls
        .devs
        .iter()
        .filter(|(dev, _)| dev.as_str() != "lo")
        .filter_map(|(dev, d)| {
            let eff = match (all, d.rp_filter) {
                (Some(a), Some(v)) => a.max(v),
                (a, v) => a.or(v)?,
            };
            (eff > 0).then(|| (dev.clone(), eff))
        })
        .collect()
}

fn only_filtering_dev(ns: &NetnsSnapshot) -> Option<String> {
    match filtering_devs(ns).as_slice() {
        [(dev, _)] => Some(dev.clone()),
        _ => None,
    }
}

/// At most this many devices named in the advice of an unknown device.
const MAX_DEVS: usize = 8;

/// The advice for rp_filter drops counted by the kernel in namespace `label`
/// whose device is not known (several devices filter, or none in its latest
/// read): where to look.
pub(super) fn unknown_dev_advice(label: &str, ns: Option<&NetnsSnapshot>, n: u64) -> Advice {
    let all_name = "net.ipv4.conf.all.rp_filter";
    let all = ns.and_then(|n| n.sysctls.rp_filter_all);
    let devs = ns.map(filtering_devs).unwrap_or_default();
    let mode = |v: i64| if v == 1 { "strict" } else { "loose" };
    let list: Vec<String> = devs
        .iter()
        .take(MAX_DEVS)
        .map(|(d, v)| format!("{d} {v} ({})", mode(*v)))
        .collect();
    let more = devs.len().saturating_sub(MAX_DEVS);
    let action = if devs.is_empty() {
        format!(
            "rp_filter is off (or unread) on every device in the latest read of netns {label}: it was on when these drops happened, or check {all_name} and net.ipv4.conf.<dev>.rp_filter there"
        )
    } else {
        format!(
            "find the device receiving these packets among {}{} (rp_filter in force, the larger of {all_name} and the device's) in netns {label}: set its rp_filter to 2 (loose) or 0 (off), or add a route back to their sources",
            list.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    };
    let mut knobs = vec![Knob {
        name: all_name.into(),
        current: all.map(|v| v.max(0) as u64),
        suggested: None,
    }];
    knobs.extend(devs.iter().take(MAX_DEVS).map(|(d, _)| {
        Knob {
            name: format!("net.ipv4.conf.{d}.rp_filter"),
            current: ns
                .and_then(|n| n.sysctls.devs.get(d))
                .and_then(|v| v.rp_filter)
                .map(|v| v.max(0) as u64),
            suggested: None,
        }
    }));
    Advice {
        cause: Cause::RpFilter,
        subject: format!("netns {label}"),
        knobs,
        action,
        reason: format!(
            "the kernel counted {n} reverse-path drops (TcpExt:IPReversePathFilter) in netns {label} that no hook classified as rp_filter: their device and sources are not known"
        ),
        stopped_by: None,
    }
}
