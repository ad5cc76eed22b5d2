//! A device's queueing discipline refused a packet: its queue (limit, or
//! txqueuelen for the default qdiscs) was full, or a shaper (tbf, htb)
//! holds more than it can send. Freed in __dev_queue_xmit with QDISC_DROP
//! (tbf overflow and a child fifo's alike), in the sending namespace, the
//! qdisc's; the sender sees ENOBUFS only with IP_RECVERR. Grouped by device;
//! the counter is each namespace's root qdiscs' `dropped` (a child's drops
//! are in its root's); the group's details (context/qdisc.rs) hold the root
//! qdisc's kind, limit (`5` packets, `5000b` bytes), drops and the device's
//! txqueuelen, which the advice reads.

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

/// A group's `limit` detail (`5` packets, `5000b` bytes): the number and
/// its unit.
fn parse_limit(v: &str) -> Option<(i64, &'static str)> {
    match v.strip_suffix('b') {
        Some(n) => n.parse().ok().map(|n| (n, "bytes")),
        None => v.parse().ok().map(|n| (n, "packets")),
    }
}

/// Four times what is in force: room for the bursts that overflowed it.
fn four_times(v: i64) -> i64 {
    v.saturating_mul(4).min(i64::from(u32::MAX))
}

fn advise(g: &GroupFacts<'_>) -> Finding {
    let detail = |k: &str| {
        g.details
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let kind = detail("qdisc").unwrap_or("?");
    let dev = g.key.dev().unwrap_or("DEV");
    let limit = detail("limit").and_then(parse_limit);
    let txqueuelen: Option<i64> = detail("txqueuelen").and_then(|v| v.parse().ok());
    let show_tx = txqueuelen.map_or("?".to_string(), |v| v.to_string());
    let limit_text = limit.map_or("no limit of its own".to_string(), |(n, unit)| {
        format!("limit {n} {unit}")
    });
    // pfifo_fast (and a qdisc whose limit netdrop cannot read) queues up to
    // txqueuelen packets: then that is the knob.
    let by_txqueuelen = limit.is_none();
    let what = match (kind, limit) {
        ("tbf" | "htb", Some((n, unit))) => format!(
            "the {kind} shaper holds what it cannot send at its rate, up to its limit: raise the limit from {n} to {} {unit} (tc qdisc change dev {dev} root {kind} … limit {}) to absorb bursts, or raise the rate",
            four_times(n),
            four_times(n)
        ),
        (_, Some((n, unit))) => format!(
            "its queue is full at {n} {unit}: the device is asked to send more than it can; raise the limit to {} {unit} (tc qdisc change dev {dev} root {kind} limit {}), or send less in bursts",
            four_times(n),
            four_times(n)
        ),
        (_, None) => format!(
            "its queue is bounded by the device's txqueuelen = {show_tx} packets: raise it (ip link set dev {dev} txqueuelen {}), or send less in bursts",
            txqueuelen.map_or("N".to_string(), |v| four_times(v.max(1)).to_string())
        ),
    };
    Finding {
        subject: format!("{} in {}", g.key, g.netns),
        knobs: vec![
            KnobAdvice {
                name: "qdisc limit".into(),
                current: limit.map(|(n, _)| n),
                suggested: limit.map(|(n, _)| four_times(n)),
            },
            KnobAdvice {
                name: "txqueuelen".into(),
                current: txqueuelen,
                suggested: txqueuelen
                    .filter(|_| by_txqueuelen)
                    .map(|v| four_times(v.max(1))),
            },
        ],
        action: format!(
            "{} packets were refused by the {kind} qdisc of {} ({limit_text}, txqueuelen {show_tx}): {what}. A sender sees these drops only with IP_RECVERR (ENOBUFS) or in Udp:SndbufErrors",
            g.drops, g.key
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::causes::GroupKey;

    fn facts_advice(details: &[(&str, &str)]) -> Finding {
        let key = GroupKey::Device { dev: "vA".into() };
        let values = BTreeMap::new();
        let details: Vec<(String, String)> = details
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        advise(&GroupFacts {
            key: &key,
            drops: 95,
            netns: "nqA (4026532177)".into(),
            values: &values,
            details: &details,
            counter: Some(95),
        })
    }

    #[test]
    fn tbf_limit_in_bytes() {
        let f = facts_advice(&[
            ("qdisc", "tbf"),
            ("limit", "5000b"),
            ("txqueuelen", "1000"),
            ("dropped", "95"),
        ]);
        assert_eq!(f.subject, "device vA in nqA (4026532177)");
        assert_eq!(
            (f.knobs[0].current, f.knobs[0].suggested),
            (Some(5000), Some(20000))
        );
        assert_eq!(
            (f.knobs[1].current, f.knobs[1].suggested),
            (Some(1000), None)
        );
        assert!(
            f.action.starts_with(
                "95 packets were refused by the tbf qdisc of device vA (limit 5000 bytes, txqueuelen 1000): the tbf shaper"
            ),
            "{}",
            f.action
        );
        assert!(
            f.action.contains(
                "limit from 5000 to 20000 bytes (tc qdisc change dev vA root tbf … limit 20000)"
            ),
            "{}",
            f.action
        );
    }

    #[test]
    fn fifo_limit_in_packets() {
        let f = facts_advice(&[("qdisc", "pfifo"), ("limit", "5"), ("txqueuelen", "1000")]);
        assert_eq!(
            (f.knobs[0].current, f.knobs[0].suggested),
            (Some(5), Some(20))
        );
        assert!(
            f.action
                .contains("(limit 5 packets, txqueuelen 1000): its queue is full at 5 packets"),
            "{}",
            f.action
        );
        assert!(
            f.action
                .contains("tc qdisc change dev vA root pfifo limit 20"),
            "{}",
            f.action
        );
    }

    #[test]
    fn txqueuelen_when_no_limit() {
        let f = facts_advice(&[("qdisc", "pfifo_fast"), ("txqueuelen", "10")]);
        assert_eq!((f.knobs[0].current, f.knobs[0].suggested), (None, None));
        assert_eq!(
            (f.knobs[1].current, f.knobs[1].suggested),
            (Some(10), Some(40))
        );
        assert!(
            f.action.contains("no limit of its own, txqueuelen 10"),
            "{}",
            f.action
        );
        assert!(
            f.action.contains("ip link set dev vA txqueuelen 40"),
            "{}",
            f.action
        );
        // Nothing known (the namespace was never read): no number invented.
        let f = facts_advice(&[]);
        assert_eq!((f.knobs[1].current, f.knobs[1].suggested), (None, None));
        assert!(f.action.contains("the ? qdisc"), "{}", f.action);
        assert!(f.action.contains("txqueuelen N"), "{}", f.action);
    }

    #[test]
    fn limits_parsed() {
        assert_eq!(parse_limit("5000b"), Some((5000, "bytes")));
        assert_eq!(parse_limit("7"), Some((7, "packets")));
        assert_eq!(parse_limit("x"), None);
        assert_eq!(parse_limit("b"), None);
    }
}
