//! The per-CPU input backlog is full: packets handed to the stack by
//! netif_rx (veth, tunnels, RPS steering) faster than softirq processing
//! drains them; beyond net.core.netdev_max_backlog the kernel frees them in
//! enqueue_to_backlog.

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
    Finding {
        subject: format!("{} in {}", g.key, g.netns),
        knobs: vec![KnobAdvice {
            name: "net.core.netdev_max_backlog".into(),
            current: max,
            suggested,
        }],
        action: format!(
            "{} packets arrived on {} while the CPU's input backlog held net.core.netdev_max_backlog = {show} packets: raise it (global), and spread the load over more CPUs (RPS/RFS: rps_cpus, rps_flow_cnt); for a veth, GRO on its peer moves it off the backlog",
            g.drops, g.key
        ),
    }
}
