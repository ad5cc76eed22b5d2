//! Reason → cause, from the cause registry (`causes/`). Pure; the reason
//! *names* come from the running kernel's BTF.

use crate::causes;

pub use crate::causes::Cause;

pub use crate::causes::NO_SOCKET_LISTEN_FULL;

/// The cause of a drop with this kernel reason name.
pub fn cause_of(reason_name: &str) -> Cause {
    // Kernels without reasons: the reason a newer kernel gives, inferred from
    // where the drop was freed (kernel/locations.rs).
    let reason_name = reason_name
        .strip_suffix(crate::kernel::locations::BY_LOCATION)
        .unwrap_or(reason_name);
    causes::by_reason_name(reason_name).map_or(Cause::Other, |spec| spec.cause)
}

/// The cause of a drop, from its reason and, where the reason is ambiguous,
/// what it hit: `accept_queue` is the drop's listener queue (length, limit)
/// when its socket was a listener. NO_SOCKET at a full listener is the ACK of
/// a syncookie handshake the accept queue had no room for (syncookies on, the
/// kernel default): an accept-queue overflow. The kernel side counts these in
/// a slot of their own by the same rule (`listener_full`).
pub fn classify(reason_name: &str, accept_queue: Option<(u32, u32)>) -> Cause {
    match (reason_name, accept_queue) {
        ("NO_SOCKET", Some((len, limit))) if len > limit => Cause::AcceptQueueFull,
        _ => cause_of(reason_name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_reasons_and_the_rest() {
        assert_eq!(cause_of("NEIGH_CREATEFAIL"), Cause::NeighTableOverflow);
        assert_eq!(cause_of("NEIGH_QUEUEFULL"), Cause::NeighQueueFull);
        assert_eq!(cause_of("TCP_LISTEN_OVERFLOW"), Cause::AcceptQueueFull);
        assert_eq!(cause_of("IP_RPFILTER"), Cause::RpFilter);
        for other in [
            "NEIGH_FAILED",
            "NO_SOCKET",
            "NOT_SPECIFIED",
            "UNKNOWN_70000",
            "",
        ] {
            assert_eq!(cause_of(other), Cause::Other, "{other}");
        }
    }

    #[test]
    fn no_socket_is_ambiguous_until_the_socket_is_known() {
        assert_eq!(classify("NO_SOCKET", None), Cause::Other);
        // A cookie ACK at a full queue (backlog 1: the queue holds 2).
        assert_eq!(classify("NO_SOCKET", Some((2, 1))), Cause::AcceptQueueFull);
        // At its limit the queue still takes one (sk_acceptq_is_full: len > limit).
        assert_eq!(classify("NO_SOCKET", Some((1, 1))), Cause::Other);
        // A listener with room: a bad cookie, not an overflow.
        assert_eq!(classify("NO_SOCKET", Some((0, 128))), Cause::Other);
        // Other reasons are not reclassified by the socket.
        assert_eq!(classify("TCP_CSUM", Some((5, 1))), Cause::Other);
        assert_eq!(
            classify("TCP_LISTEN_OVERFLOW", None),
            Cause::AcceptQueueFull
        );
        assert_eq!(cause_of(NO_SOCKET_LISTEN_FULL), Cause::AcceptQueueFull);
    }

    #[test]
    fn names_round_trip() {
        for c in Cause::ALL {
            assert_eq!(Cause::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        assert_eq!(Cause::parse("nope"), None);
    }
}
