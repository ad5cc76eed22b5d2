//! A listener's accept queue is full: SYNs refused in tcp_conn_request (no
//! drop reason: the tcp_conn_request hook or ListenOverflows), handshake ACKs
//! refused (TCP_LISTEN_OVERFLOW; NO_SOCKET at the full listener for syncookie
//! ACKs; before 6.14 without a reason, from ListenOverflows by fusion).

use super::{Cause, CauseSpec, Counter, GroupBy, KnobSpec, Reason, Source};

/// How the summary names netdrop's own counter slot for NO_SOCKET drops at a
/// full listener (`netdrop_common::LISTEN_FULL_NO_SOCKET_SLOT`): an accept-queue
/// overflow of a syncookie ACK.
pub const NO_SOCKET_LISTEN_FULL: &str = "NO_SOCKET(listener full)";

pub static SPEC: CauseSpec = CauseSpec {
    cause: Cause::AcceptQueueFull,
    name: "accept_queue_full",
    meaning: "listener accept queue full (listen backlog / net.core.somaxconn)",
    reasons: &[Reason {
        name: "TCP_LISTEN_OVERFLOW",
        seen: "6.18, 7.2 (not 6.12 or older)",
    }],
    own_slots: &[NO_SOCKET_LISTEN_FULL],
    // Its drops are freed in tcp_v4_rcv/tcp_v4_do_rcv with others: counter
    // fusion, not a location, classifies them there (diagnose/fusion.rs).
    freed_in: &[],
    location_slot: None,
    counters: &[Counter {
        name: "TcpExt:ListenOverflows",
        source: Source::Bespoke,
    }],
    knobs: &[
        KnobSpec::bespoke("listen() backlog"),
        KnobSpec::bespoke("net.core.somaxconn"),
    ],
    group_by: GroupBy::Bespoke,
    advise: None,
};
