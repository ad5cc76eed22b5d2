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
