//! Reason → cause. Pure; the reason *names* come from the running kernel's BTF.

use serde::{Deserialize, Serialize};

/// What netdrop blames a drop on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The neighbour (ARP/NDISC) table is full: gc_thresh3.
    NeighTableOverflow,
    /// Too many packets queued while a neighbour resolves: unres_qlen_bytes.
    NeighQueueFull,
    /// A listener's accept queue is full: listen() backlog / somaxconn.
    AcceptQueueFull,
    /// Strict reverse-path filtering: rp_filter.
    RpFilter,
    /// Anything else, still named by its kernel reason.
    Other,
}

impl Cause {
    pub const ALL: [Cause; 5] = [
        Cause::NeighTableOverflow,
        Cause::NeighQueueFull,
        Cause::AcceptQueueFull,
        Cause::RpFilter,
        Cause::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::NeighTableOverflow => "neigh_table_overflow",
            Cause::NeighQueueFull => "neigh_queue_full",
            Cause::AcceptQueueFull => "accept_queue_full",
            Cause::RpFilter => "rp_filter",
            Cause::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// One line on what it means, for the human view.
    pub fn meaning(self) -> &'static str {
        match self {
            Cause::NeighTableOverflow => "neighbour table full (net.ipv4.neigh.default.gc_thresh3)",
            Cause::NeighQueueFull => {
                "queue of packets waiting for ARP/ND resolution full (unres_qlen_bytes)"
            }
            Cause::AcceptQueueFull => {
                "listener accept queue full (listen backlog / net.core.somaxconn)"
            }
            Cause::RpFilter => "reverse-path filter (rp_filter) rejected the source",
            Cause::Other => "other kernel drop reasons",
        }
    }
}

/// The cause of a drop with this kernel reason name.
pub fn cause_of(reason_name: &str) -> Cause {
    match reason_name {
        "NEIGH_CREATEFAIL" => Cause::NeighTableOverflow,
        "NEIGH_QUEUEFULL" => Cause::NeighQueueFull,
        "TCP_LISTEN_OVERFLOW" => Cause::AcceptQueueFull,
        "IP_RPFILTER" => Cause::RpFilter,
        _ => Cause::Other,
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
    fn names_round_trip() {
        for c in Cause::ALL {
            assert_eq!(Cause::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        assert_eq!(Cause::parse("nope"), None);
    }
}
