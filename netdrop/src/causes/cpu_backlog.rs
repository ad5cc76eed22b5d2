//! The per-CPU input backlog is full: packets handed to the stack by
//! netif_rx (veth, tunnels, RPS steering) faster than softirq processing
//! drains them; beyond net.core.netdev_max_backlog the kernel frees them in
//! enqueue_to_backlog. Grouped by the receiving device (its namespace is the
//! receiver's). The counter (softnet_stat column 2) and the knob are global:
//! the knob exists only in the initial namespace, whose value the report
//! shows for a group in any namespace. The device's own `rx_dropped` (in
//! the group's details) counts these drops too.

use super::{
    Cause, CauseSpec, Counter, Finding, GroupBy, GroupFacts, KnobAdvice, KnobSpec, Reason, Source,
};

pub static SPEC: CauseSpec = CauseSpec {
    cause: Cause::CpuBacklog,
    name: "cpu_backlog",
    meaning: "per-CPU input backlog full (net.core.netdev_max_backlog; RPS/RFS)",
    reasons: &[Reason {
        name: "CPU_BACKLOG",
        seen: "6.18 (this CI host)",
    }],
    own_slots: &[],
    freed_in: &[],
    location_slot: None,
    // Column 2 of /proc/net/softnet_stat: global, one row per CPU.
    counters: &[Counter {
        name: "softnet_stat:dropped",
        source: Source::Softnet { column: 1 },
    }],
    knobs: &[
        KnobSpec::sysctl("net.core.netdev_max_backlog"),
        KnobSpec::setting("rps_cpus / rps_flow_cnt of the device's receive queues"),
    ],
    group_by: GroupBy::Device,
    advise: Some(advise),
};

fn advise(g: &GroupFacts<'_>) -> Finding {
    let max = g.value("net.core.netdev_max_backlog");
    let suggested = max.map(|v| (v.max(1000) * 4).min(1 << 20));
    let show = max.map_or("?".to_string(), |v| v.to_string());
    let to = suggested.map_or(String::new(), |v| format!(" to {v}"));
    Finding {
        subject: format!("{} in {}", g.key, g.netns),
        knobs: vec![KnobAdvice {
            name: "net.core.netdev_max_backlog".into(),
            current: max,
            suggested,
        }],
        action: format!(
            "{} packets arrived on {} while the CPU's input backlog held net.core.netdev_max_backlog = {show} packets: raise it{to} (one value for the whole host, set in the initial namespace), and spread the load over more CPUs (RPS/RFS: rps_cpus, rps_flow_cnt); for a veth, GRO or XDP on the receiving end moves its packets off the backlog",
            g.drops, g.key
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::causes::GroupKey;

    fn advice(values: &[(&str, i64)]) -> Finding {
        let key = GroupKey::Device { dev: "vB".into() };
        let values: BTreeMap<String, i64> =
            values.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        advise(&GroupFacts {
            key: &key,
            drops: 140,
            netns: "nbB (4026532300)".into(),
            values: &values,
            details: &[],
            counter: Some(141),
        })
    }

    #[test]
    fn names_the_value_in_force() {
        let f = advice(&[("net.core.netdev_max_backlog", 5)]);
        assert_eq!(f.subject, "device vB in nbB (4026532300)");
        assert_eq!(
            (f.knobs[0].current, f.knobs[0].suggested),
            (Some(5), Some(4000))
        );
        assert!(
            f.action.starts_with(
                "140 packets arrived on device vB while the CPU's input backlog held net.core.netdev_max_backlog = 5 packets: raise it to 4000 (one value for the whole host"
            ),
            "{}",
            f.action
        );
        let f = advice(&[("net.core.netdev_max_backlog", 30000)]);
        assert_eq!(f.knobs[0].suggested, Some(120000));
        // Unknown (a recording without it): nothing invented.
        let f = advice(&[]);
        assert_eq!((f.knobs[0].current, f.knobs[0].suggested), (None, None));
        assert!(
            f.action.contains("= ? packets: raise it (one"),
            "{}",
            f.action
        );
    }
}
