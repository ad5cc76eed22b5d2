//! A socket's receive buffer is full: datagrams (or segments) arrive faster
//! than the application reads them, and the kernel frees what does not fit
//! in SO_RCVBUF (capped by net.core.rmem_max; net.core.rmem_default when the
//! application sets none).

use super::{Cause, CauseSpec, Reason};

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
    counters: &["Udp/Udp6 RcvbufErrors (per namespace)"],
    knobs: &["SO_RCVBUF", "net.core.rmem_max", "net.core.rmem_default"],
    advice: "the application reads more slowly than packets arrive: read faster (more threads, recvmmsg), or raise its SO_RCVBUF (capped by net.core.rmem_max; net.core.rmem_default when it sets none)",
};
