//! The cause registry: every cause netdrop knows, each in a module of its own
//! that declares, as data, what makes a drop that cause — the kernel's drop
//! reasons (with the kernel that introduced them), netdrop's own counter slots,
//! the functions that free only its drops on kernels without reasons, the
//! kernel counters that count it and the settings that govern it. Naming,
//! classification (`classify::cause_of`), `--cause`, the summary and the
//! location table of kernels without reasons read it from here.
//!
//! Registry order is report order. Adding a cause: a module here, one line in
//! [`REGISTRY`], one variant of [`Cause`] (its id).

mod accept_queue_full;
mod conntrack_full;
mod cpu_backlog;
mod firewall_rule;
mod neigh_queue_full;
mod neigh_table_overflow;
mod other;
mod qdisc_drop;
mod rp_filter;
mod socket_rcvbuf;
mod spec;
mod tcp_paws;

use serde::{Deserialize, Serialize};

pub use accept_queue_full::NO_SOCKET_LISTEN_FULL;
pub use conntrack_full::NETFILTER_DROP_CONNTRACK_FULL;
pub use spec::{
    Advise, Counter, Finding, GroupBy, GroupFacts, GroupKey, KnobAdvice, KnobSpec, Read, Reason,
    Source,
};

/// What netdrop blames a drop on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The neighbour (ARP/NDISC) table is full: gc_thresh3.
    NeighTableOverflow,
    /// Too many packets queued while a neighbour resolves: unres_qlen_bytes.
    NeighQueueFull,
    /// A listener's accept queue is full: listen() backlog / somaxconn.
    AcceptQueueFull,
    /// Strict reverse-path filtering: rp_filter.
    RpFilter,
    /// A socket's receive buffer is full: the application reads too slowly.
    SocketRcvbuf,
    /// The connection-tracking table is full: nf_conntrack_max.
    ConntrackFull,
    /// A netfilter rule dropped it.
    FirewallRule,
    /// TCP timestamps older than the connection's (PAWS): NAT.
    TcpPaws,
    /// The per-CPU input backlog is full: netdev_max_backlog.
    CpuBacklog,
    /// A device's qdisc queue is full: qdisc limit / txqueuelen.
    QdiscDrop,
    /// Anything else, still named by its kernel reason.
    Other,
}

impl Cause {
    /// Every cause, in the registry's (report) order.
    pub const ALL: [Cause; 11] = [
        Cause::NeighTableOverflow,
        Cause::NeighQueueFull,
        Cause::AcceptQueueFull,
        Cause::RpFilter,
        Cause::SocketRcvbuf,
        Cause::ConntrackFull,
        Cause::FirewallRule,
        Cause::TcpPaws,
        Cause::CpuBacklog,
        Cause::QdiscDrop,
        Cause::Other,
    ];

    /// Its name in JSON, `--cause` and recordings (from the registry).
    pub fn as_str(self) -> &'static str {
        spec(self).name
    }

    pub fn parse(s: &str) -> Option<Cause> {
        by_name(s).map(|spec| spec.cause)
    }

    /// One line on what it means, for the human view.
    pub fn meaning(self) -> &'static str {
        spec(self).meaning
    }
}

/// `--cause NAME`: the registry's names, each with its meaning as help.
impl clap::ValueEnum for Cause {
    fn value_variants<'a>() -> &'a [Self] {
        &Cause::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()).help(self.meaning()))
    }
}

/// Everything a cause declares.
#[derive(Debug)]
pub struct CauseSpec {
    pub cause: Cause,
    /// Its name in JSON, `--cause` and recordings.
    pub name: &'static str,
    /// One line on what it means, for the human view.
    pub meaning: &'static str,
    /// Kernel reasons that are this cause whatever else is known.
    pub reasons: &'static [Reason],
    /// Names of netdrop's own counter slots that are this cause (a reason
    /// made unambiguous by what the drop hit, e.g. `NO_SOCKET(listener full)`).
    pub own_slots: &'static [&'static str],
    /// Kernels without drop reasons (5.10–5.16): the functions that free only
    /// this cause's drops, and the counter slot the probe counts them in
    /// (`netdrop_common::location_slot`).
    pub freed_in: &'static [&'static str],
    pub location_slot: Option<u32>,
    /// The kernel's own counters of it (shown beside netdrop's count; the
    /// first is the one its count is checked against).
    pub counters: &'static [Counter],
    /// The settings that govern it, read where they can be.
    pub knobs: &'static [KnobSpec],
    /// How the diagnosis groups its drops (the four first causes: by their
    /// own code, diagnose/groups.rs).
    pub group_by: GroupBy,
    /// Its advice for a group (None: the diagnosis's own, advice.rs).
    pub advise: Option<Advise>,
}

impl CauseSpec {
    /// Whether the diagnosis groups, counts and advises it from what it
    /// declares here (else: the diagnosis's own code for it).
    pub fn declarative(&self) -> bool {
        self.group_by != GroupBy::Bespoke
    }
}

/// Every cause, in report order; `other` last.
pub static REGISTRY: &[&CauseSpec] = &[
    &neigh_table_overflow::SPEC,
    &neigh_queue_full::SPEC,
    &accept_queue_full::SPEC,
    &rp_filter::SPEC,
    &socket_rcvbuf::SPEC,
    &conntrack_full::SPEC,
    &firewall_rule::SPEC,
    &tcp_paws::SPEC,
    &cpu_backlog::SPEC,
    &qdisc_drop::SPEC,
    &other::SPEC,
];

/// The spec of `c`.
pub fn spec(c: Cause) -> &'static CauseSpec {
    REGISTRY
        .iter()
        .find(|s| s.cause == c)
        .expect("every Cause is registered (registry test)")
}

/// The cause whose reasons or own slots include `name`, if any.
pub fn by_reason_name(name: &str) -> Option<&'static CauseSpec> {
    REGISTRY
        .iter()
        .copied()
        .find(|s| s.reasons.iter().any(|r| r.name == name) || s.own_slots.contains(&name))
}

/// The cause of a name given on the command line or read from a recording.
pub fn by_name(name: &str) -> Option<&'static CauseSpec> {
    REGISTRY.iter().copied().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_is_registered_once_and_declares_what_it_needs() {
        for c in Cause::ALL {
            assert_eq!(REGISTRY.iter().filter(|s| s.cause == c).count(), 1, "{c:?}");
        }
        assert_eq!(REGISTRY.len(), Cause::ALL.len());
        let mut names: Vec<_> = REGISTRY.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len(), "names are unique");
        for s in REGISTRY {
            assert!(!s.meaning.is_empty(), "{}", s.name);
            if s.cause == Cause::Other {
                assert!(s.reasons.is_empty() && s.freed_in.is_empty());
                continue;
            }
            assert!(
                !s.reasons.is_empty() || !s.own_slots.is_empty(),
                "{}: a kernel reason or a slot of netdrop's own",
                s.name
            );
            assert!(!s.counters.is_empty(), "{}: a kernel counter", s.name);
            assert!(!s.knobs.is_empty(), "{}: a knob", s.name);
            assert_eq!(
                s.freed_in.is_empty(),
                s.location_slot.is_none(),
                "{}: functions and their slot go together",
                s.name
            );
            // Declarative: everything read from its declaration; else the
            // diagnosis's own code reads it all.
            let bespoke_counters = s.counters.iter().all(|c| c.source == Source::Bespoke);
            let bespoke_knobs = s.knobs.iter().all(|k| k.read == Read::Bespoke);
            if s.declarative() {
                assert!(s.advise.is_some(), "{}: its advice", s.name);
                assert!(
                    s.counters.iter().all(|c| c.source != Source::Bespoke),
                    "{}: counters it reads",
                    s.name
                );
                assert!(
                    s.knobs.iter().all(|k| k.read != Read::Bespoke),
                    "{}: knobs it reads or names",
                    s.name
                );
            } else {
                assert!(
                    s.advise.is_none() && bespoke_counters && bespoke_knobs,
                    "{}",
                    s.name
                );
            }
        }
        assert_eq!(REGISTRY.last().unwrap().cause, Cause::Other);
    }

    #[test]
    fn a_reason_belongs_to_one_cause() {
        let mut all: Vec<&str> = REGISTRY
            .iter()
            .flat_map(|s| {
                s.reasons
                    .iter()
                    .map(|r| r.name)
                    .chain(s.own_slots.iter().copied())
            })
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }
}
