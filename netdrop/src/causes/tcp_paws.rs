//! TCP segments refused by PAWS (RFC 7323): their timestamp is older than
//! the one the connection (or its TIME_WAIT) last saw. The field case:
//! clients behind one NAT address, each with its own timestamp clock,
//! reusing ports towards one server.

use super::{
    Cause, CauseSpec, Counter, Finding, GroupBy, GroupFacts, KnobAdvice, KnobSpec, Reason, Source,
};

pub static SPEC: CauseSpec = CauseSpec {
    cause: Cause::TcpPaws,
    name: "tcp_paws",
    meaning: "TCP timestamps older than the connection's (PAWS): clients behind one NAT address",
    reasons: &[
        Reason {
            name: "TCP_RFC7323_PAWS",
            seen: "6.18 (this CI host)",
        },
        Reason {
            name: "TCP_RFC7323_PAWS_ACK",
            seen: "6.18 (this CI host)",
        },
        Reason {
            name: "TCP_RFC7323_TW_PAWS",
            seen: "6.18 (this CI host)",
        },
        Reason {
            name: "TCP_RFC7323_TSECR",
            seen: "6.18 (not reproduced)",
        },
    ],
    own_slots: &[],
    freed_in: &[],
    location_slot: None,
    counters: &[
        Counter {
            name: "TcpExt:PAWSEstab",
            source: Source::Netstat("TcpExt:PAWSEstab"),
        },
        Counter {
            name: "TcpExt:PAWSOldAck",
            source: Source::Netstat("TcpExt:PAWSOldAck"),
        },
        Counter {
            name: "TcpExt:PAWSTimewait",
            source: Source::Netstat("TcpExt:PAWSTimewait"),
        },
        Counter {
            name: "TcpExt:TSEcrRejected",
            source: Source::Netstat("TcpExt:TSEcrRejected"),
        },
    ],
    knobs: &[
        KnobSpec::sysctl("net.ipv4.tcp_timestamps"),
        KnobSpec::sysctl("net.ipv4.tcp_tw_reuse"),
    ],
    group_by: GroupBy::Peer,
    advise: Some(advise),
};

fn advise(g: &GroupFacts<'_>) -> Finding {
    let ts = g.value("net.ipv4.tcp_timestamps");
    let show = |v: Option<i64>| v.map_or("?".to_string(), |v| v.to_string());
    Finding {
        subject: format!("{} in {}", g.key, g.netns),
        knobs: vec![
            KnobAdvice {
                name: "net.ipv4.tcp_timestamps".into(),
                current: ts,
                suggested: None,
            },
            KnobAdvice {
                name: "net.ipv4.tcp_tw_reuse".into(),
                current: g.value("net.ipv4.tcp_tw_reuse"),
                suggested: None,
            },
        ],
        action: format!(
            "{} segments from {} carried TCP timestamps older than the connection (or its TIME_WAIT) had seen: typically several clients behind one NAT address, each with its own timestamp clock, reusing ports. Fix the NAT first (more source addresses or ports, no port reuse across clients); net.ipv4.tcp_timestamps = {} here (turning it off on the clients or the server avoids PAWS but loses its protection and RTT measurements); tcp_tw_recycle, often blamed, was removed in Linux 4.12",
            g.drops,
            g.key,
            show(ts)
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::causes::GroupKey;

    fn facts<'a>(key: &'a GroupKey, values: &'a BTreeMap<String, i64>) -> GroupFacts<'a> {
        GroupFacts {
            key,
            drops: 15,
            netns: "web (4026532246)".into(),
            values,
            details: &[],
            counter: Some(15),
        }
    }

    #[test]
    fn advice_names_the_peer_and_the_values_in_force() {
        let key = GroupKey::Peer {
            addr: "198.18.75.1".parse().unwrap(),
        };
        let values = [
            ("net.ipv4.tcp_timestamps".to_string(), 1),
            ("net.ipv4.tcp_tw_reuse".to_string(), 2),
        ]
        .into();
        let f = advise(&facts(&key, &values));
        assert_eq!(f.subject, "peer 198.18.75.1 in web (4026532246)");
        assert!(
            f.action.starts_with("15 segments from peer 198.18.75.1 "),
            "{}",
            f.action
        );
        for want in [
            "NAT",
            "net.ipv4.tcp_timestamps = 1 here",
            "tcp_tw_recycle",
            "removed in Linux 4.12",
        ] {
            assert!(f.action.contains(want), "{want}: {}", f.action);
        }
        let current: Vec<_> = f
            .knobs
            .iter()
            .map(|k| (k.name.as_str(), k.current))
            .collect();
        assert_eq!(
            current,
            [
                ("net.ipv4.tcp_timestamps", Some(1)),
                ("net.ipv4.tcp_tw_reuse", Some(2))
            ]
        );
        assert!(f.knobs.iter().all(|k| k.suggested.is_none()));
    }

    #[test]
    fn advice_without_values_says_unknown() {
        let key = GroupKey::Rest;
        let values = BTreeMap::new();
        let f = advise(&facts(&key, &values));
        assert!(
            f.action.contains("net.ipv4.tcp_timestamps = ? here"),
            "{}",
            f.action
        );
        assert!(f.knobs.iter().all(|k| k.current.is_none()));
    }
}
