//! A device's queueing discipline refused a packet: its queue (limit, or
//! txqueuelen for the default qdiscs) was full, or a shaper (tbf, htb)
//! holds more than it can send. Freed in __dev_queue_xmit with QDISC_DROP;
//! the sender sees ENOBUFS only with IP_RECVERR.

use super::{
    Cause, CauseSpec, Counter, Finding, GroupBy, GroupFacts, KnobAdvice, KnobSpec, Reason, Source,
};

pub static SPEC: CauseSpec = CauseSpec {
    cause: Cause::QdiscDrop,
    name: "qdisc_drop",
    meaning: "a device's qdisc queue full (qdisc limit / txqueuelen, a shaper's rate)",
    reasons: &[
        Reason {
            name: "QDISC_DROP",
            seen: "6.18 (this CI host)",
        },
        Reason {
            name: "QDISC_OVERLIMIT",
            seen: "6.16+ (not reproduced: no qdisc here gives it)",
        },
        Reason {
            name: "QDISC_CONGESTED",
            seen: "6.16+ (not reproduced: no qdisc here gives it)",
        },
    ],
    own_slots: &[],
    freed_in: &[],
    location_slot: None,
    counters: &[Counter {
        name: "qdisc:dropped",
        source: Source::QdiscDrops,
    }],
    knobs: &[
        KnobSpec::setting("qdisc limit"),
        KnobSpec::setting("txqueuelen"),
    ],
    group_by: GroupBy::Device,
    advise: Some(advise),
};

fn advise(g: &GroupFacts<'_>) -> Finding {
    let detail = |k: &str| {
        g.details
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let kind = detail("qdisc").unwrap_or_else(|| "?".into());
    let limit = detail("limit").unwrap_or_else(|| "?".into());
    Finding {
        subject: format!("{} in {}", g.key, g.netns),
        knobs: vec![
            KnobAdvice {
                name: "qdisc limit".into(),
                current: detail("limit").and_then(|v| v.parse().ok()),
                suggested: None,
            },
            KnobAdvice {
                name: "txqueuelen".into(),
                current: detail("txqueuelen").and_then(|v| v.parse().ok()),
                suggested: None,
            },
        ],
        action: format!(
            "{} packets were refused by the {kind} qdisc of {} (limit {limit}): the device is asked to send more than it can (a shaper's rate, a slow link) — raise the qdisc's limit (tc qdisc change … limit) or txqueuelen to absorb bursts, or raise the rate; a sender sees these drops only with IP_RECVERR (ENOBUFS) or in Udp:SndbufErrors",
            g.drops, g.key
        ),
    }
}
