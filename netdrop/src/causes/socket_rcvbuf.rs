//! A socket's receive buffer is full: datagrams (or segments) arrive faster
//! than the application reads them, and the kernel frees what does not fit
//! in SO_RCVBUF (capped by net.core.rmem_max; net.core.rmem_default when the
//! application sets none).

use super::{
    Cause, CauseSpec, Counter, Finding, GroupBy, GroupFacts, KnobAdvice, KnobSpec, Reason, Source,
};

pub static SPEC: CauseSpec = CauseSpec {
    cause: Cause::SocketRcvbuf,
    name: "socket_rcvbuf",
    meaning: "socket receive buffer full: the application reads too slowly (SO_RCVBUF / net.core.rmem_max)",
    reasons: &[Reason {
        name: "SOCKET_RCVBUFF",
        seen: "6.18 (this CI host)",
    }],
    own_slots: &[],
    freed_in: &[],
    location_slot: None,
    counters: &[
        Counter {
            name: "Udp:RcvbufErrors",
            source: Source::Netstat("Udp:RcvbufErrors"),
        },
        Counter {
            name: "Udp6:RcvbufErrors",
            source: Source::Netstat("Udp6:RcvbufErrors"),
        },
    ],
    knobs: &[
        KnobSpec::setting("SO_RCVBUF"),
        KnobSpec::sysctl("net.core.rmem_max"),
        KnobSpec::sysctl("net.core.rmem_default"),
    ],
    group_by: GroupBy::Socket,
    advise: Some(advise),
};

fn advise(g: &GroupFacts<'_>) -> Finding {
    let (max, default) = (
        g.value("net.core.rmem_max"),
        g.value("net.core.rmem_default"),
    );
    let show = |v: Option<i64>| v.map_or("?".to_string(), |v| v.to_string());
    // A buffer of 4x what is in force by default: room for bursts; the
    // application's SO_RCVBUF is capped by rmem_max, so that goes first.
    let suggested = max.max(default).map(|v| (v.max(212_992) * 4).min(1 << 26));
    Finding {
        subject: format!("{} in {}", g.key, g.netns),
        knobs: vec![
            KnobAdvice {
                name: "SO_RCVBUF".into(),
                current: None,
                suggested: None,
            },
            KnobAdvice {
                name: "net.core.rmem_max".into(),
                current: max,
                suggested,
            },
            KnobAdvice {
                name: "net.core.rmem_default".into(),
                current: default,
                suggested: None,
            },
        ],
        action: format!(
            "{} datagrams did not fit in the receive buffer of {}: the application reads more slowly than packets arrive. Read faster (more threads, recvmmsg), or raise its SO_RCVBUF (capped by net.core.rmem_max = {}; net.core.rmem_default = {} when it sets none)",
            g.drops,
            g.key,
            show(max),
            show(default)
        ),
    }
}
