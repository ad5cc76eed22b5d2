//! Nothing listens on the address and port a packet was for: a TCP SYN or
//! segment, or a UDP datagram, to a closed port (NO_SOCKET). Often an
//! application that crashed or restarted; the diagnosis says whether a
//! TCP listener was seen on that port earlier in the session.

use super::{Cause, CauseSpec, Counter, Finding, GroupBy, GroupFacts, KnobSpec, Reason, Source};

pub static SPEC: CauseSpec = CauseSpec {
    cause: Cause::NoListener,
    name: "no_listener",
    meaning: "nothing listens on the packet's port (closed port: a stopped or restarting application)",
    reasons: &[Reason {
        name: "NO_SOCKET",
        seen: "6.1, 6.12, 6.18, 7.2 (not 5.10: no reasons)",
    }],
    own_slots: &[],
    freed_in: &[],
    location_slot: None,
    // UDP counts them; TCP has no counter of its own for them (a RST is
    // sent: Tcp:OutRsts counts every RST).
    counters: &[
        Counter {
            name: "Udp:NoPorts",
            source: Source::Netstat("Udp:NoPorts"),
        },
        Counter {
            name: "Udp6:NoPorts",
            source: Source::Netstat("Udp6:NoPorts"),
        },
    ],
    knobs: &[KnobSpec::setting(
        "the application that should listen on the port",
    )],
    group_by: GroupBy::Socket,
    advise: Some(advise),
};

/// The detail the diagnosis gives a TCP port's group when a listener was
/// seen on it earlier in the session (its value: until when).
pub const LISTENED_EARLIER: &str = "listener seen until";
/// The detail when a listener is there at the end (it came back).
pub const LISTENING_NOW: &str = "listening again";

fn advise(g: &GroupFacts<'_>) -> Finding {
    let detail = |k: &str| g.details.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let history = match (detail(LISTENED_EARLIER), detail(LISTENING_NOW)) {
        (Some(until), Some(_)) => format!(
            "; a listener was there earlier (seen until {until}) and is back now: the application restarted"
        ),
        (Some(until), None) => format!(
            "; a listener was there earlier (seen until {until}) and is gone: the application stopped or crashed"
        ),
        _ => String::new(),
    };
    Finding {
        subject: format!("{} in {}", g.key, g.netns),
        knobs: Vec::new(),
        action: format!(
            "{} packets were for {} in {}, where nothing listens{history}. Start (or fix) the application that should listen there, or stop the clients sending to it",
            g.drops, g.key, g.netns
        ),
    }
}
