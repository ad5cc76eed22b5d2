//! The connection-tracking table of a namespace is full: a packet that
//! needs a new entry finds nf_conntrack_count at nf_conntrack_max and no
//! entry it may evict, and conntrack refuses it (NF_DROP: NETFILTER_DROP,
//! freed in nf_hook_slow with no conntrack entry attached). The kernel logs
//! "nf_conntrack: table full, dropping packet", rate limited.

use super::{
    Cause, CauseSpec, Counter, Finding, GroupBy, GroupFacts, KnobAdvice, KnobSpec, Source,
};

/// How the summary names netdrop's own slot for NETFILTER_DROP drops of a
/// packet without a conntrack entry in a namespace whose table is full.
pub const NETFILTER_DROP_CONNTRACK_FULL: &str = "NETFILTER_DROP(conntrack full)";

pub static SPEC: CauseSpec = CauseSpec {
    cause: Cause::ConntrackFull,
    name: "conntrack_full",
    meaning: "connection-tracking table full (net.netfilter.nf_conntrack_max)",
    // NETFILTER_DROP is firewall_rule's: these are told apart in the probe.
    reasons: &[],
    own_slots: &[NETFILTER_DROP_CONNTRACK_FULL],
    freed_in: &[],
    location_slot: None,
    counters: &[Counter {
        name: "nf_conntrack:drop",
        source: Source::ProcStat {
            file: "nf_conntrack",
            column: "drop",
        },
    }],
    knobs: &[
        KnobSpec::sysctl("net.netfilter.nf_conntrack_max"),
        KnobSpec::sysctl("net.netfilter.nf_conntrack_count"),
        KnobSpec::sysctl("net.netfilter.nf_conntrack_buckets"),
    ],
    group_by: GroupBy::Netns,
    advise: Some(advise),
};

fn advise(g: &GroupFacts<'_>) -> Finding {
    let max = g.value("net.netfilter.nf_conntrack_max");
    let count = g.value("net.netfilter.nf_conntrack_count");
    let show = |v: Option<i64>| v.map_or("?".to_string(), |v| v.to_string());
    Finding {
        subject: format!("conntrack table of {}", g.netns),
        knobs: vec![
            KnobAdvice {
                name: "net.netfilter.nf_conntrack_max".into(),
                current: max,
                suggested: max.map(|v| (v.max(1024) * 2).min(1 << 24)),
            },
            KnobAdvice {
                name: "net.netfilter.nf_conntrack_buckets".into(),
                current: g.value("net.netfilter.nf_conntrack_buckets"),
                suggested: None,
            },
        ],
        action: format!(
            "{} packets found the connection-tracking table of {} full (nf_conntrack_count {} of nf_conntrack_max {}): raise net.netfilter.nf_conntrack_max (global, set in the initial namespace; each namespace may hold that many) with nf_conntrack_buckets near max/4..max, or track less (NOTRACK / shorter timeouts for short-lived flows)",
            g.drops,
            g.netns,
            show(count),
            show(max)
        ),
    }
}
