//! The one table of hooks: what each needs from the kernel, and whether netdrop
//! can run without it. Every kernel fallback is visible here.

use netdrop_common::names;

/// How a hook attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// A raw tracepoint: the program gets the tracepoint's arguments (positions
    /// from BTF), no trace record is built (4.17+).
    RawTracepoint { event: &'static str },
    /// A tracefs tracepoint `system:event`.
    Tracepoint {
        system: &'static str,
        event: &'static str,
    },
    /// fentry on a kernel function (5.5+; needs BTF and ftrace to be allowed).
    FEntry { function: &'static str },
    /// kprobe on a kernel function (needs CONFIG_KPROBES).
    KProbe { function: &'static str },
}

/// Something the user asks for that needs hooks of its own; such hooks are
/// attached only when asked for (and their absence noticed only then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Neighbour state events (resolution latency).
    NeighStates,
}

#[derive(Debug, Clone, Copy)]
pub struct Hook {
    /// The eBPF program's name in the object.
    pub program: &'static str,
    pub attach: Attach,
    /// Without a required hook netdrop refuses to start; an optional one is
    /// skipped with a one-line notice.
    pub required: bool,
    /// Hooks with the same `slot` are alternatives: the first that attaches wins.
    pub slot: &'static str,
    /// What it gives, and from which kernel (for the notice and the README).
    pub why: &'static str,
    /// `Some`: attached only when this feature is asked for.
    pub only_for: Option<Feature>,
}

pub const HOOKS: &[Hook] = &[
    Hook {
        program: names::PROG_KFREE_SKB_RAW,
        attach: Attach::RawTracepoint { event: "kfree_skb" },
        required: true,
        slot: "kfree_skb",
        why: "every dropped skb, at the least cost per drop; needs the reason argument (5.17+)",
        only_for: None,
    },
    Hook {
        program: names::PROG_KFREE_SKB,
        attach: Attach::Tracepoint {
            system: "skb",
            event: "kfree_skb",
        },
        required: true,
        slot: "kfree_skb",
        why: "every dropped skb; drop reasons since 5.17, rx_sk since 6.12",
        only_for: None,
    },
    Hook {
        program: names::PROG_NEIGH_CREATE,
        attach: Attach::Tracepoint {
            system: "neigh",
            event: "neigh_create",
        },
        required: false,
        slot: "neigh_create",
        why: "neighbour creates refused by a full table (since 5.0); with neighbour states, creates",
        only_for: None,
    },
    Hook {
        program: names::PROG_SOCK_SET_STATE,
        attach: Attach::Tracepoint {
            system: "sock",
            event: "inet_sock_set_state",
        },
        required: false,
        slot: "inet_sock_set_state",
        why: "--pid: the watched process's new TCP sockets, from their first SYN (4.16+)",
        only_for: None,
    },
    Hook {
        program: names::PROG_NEIGH_UPDATE,
        attach: Attach::Tracepoint {
            system: "neigh",
            event: "neigh_update",
        },
        required: false,
        slot: "neigh_update",
        why: "neighbour states: entries resolved (REACHABLE/STALE) or FAILED by an update (since 5.0)",
        only_for: Some(Feature::NeighStates),
    },
    Hook {
        program: names::PROG_NEIGH_TIMER,
        attach: Attach::Tracepoint {
            system: "neigh",
            event: "neigh_timer_handler",
        },
        required: false,
        slot: "neigh_timer_handler",
        why: "neighbour states: resolutions that ran out of probes (FAILED) (since 5.0)",
        only_for: Some(Feature::NeighStates),
    },
    Hook {
        program: names::PROG_CONN_REQUEST_FENTRY,
        attach: Attach::FEntry {
            function: "tcp_conn_request",
        },
        required: false,
        slot: "tcp_conn_request",
        why: "SYNs refused by a full accept queue (they carry no drop reason)",
        only_for: None,
    },
    Hook {
        program: names::PROG_CONN_REQUEST_KPROBE,
        attach: Attach::KProbe {
            function: "tcp_conn_request",
        },
        required: false,
        slot: "tcp_conn_request",
        why: "SYNs refused by a full accept queue (they carry no drop reason)",
        only_for: None,
    },
];

impl Hook {
    pub fn label(&self) -> String {
        match self.attach {
            Attach::RawTracepoint { event } => format!("raw_tracepoint:{event}"),
            Attach::Tracepoint { system, event } => format!("{system}:{event}"),
            Attach::FEntry { function } => format!("fentry:{function}"),
            Attach::KProbe { function } => format!("kprobe:{function}"),
        }
    }
}

/// What became of the hooks of one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotOutcome {
    Attached(String),
    /// Every alternative was refused: (label, why) for each.
    Unavailable(Vec<(String, String)>),
}

/// Groups the table into slots, in table order.
pub fn slots(hooks: &[Hook]) -> Vec<(&'static str, Vec<Hook>)> {
    let mut out: Vec<(&'static str, Vec<Hook>)> = Vec::new();
    for h in hooks {
        match out.iter_mut().find(|(s, _)| *s == h.slot) {
            Some((_, v)) => v.push(*h),
            None => out.push((h.slot, vec![*h])),
        }
    }
    out
}

/// What netdrop does instead when a slot has no hook.
pub fn fallback_note(slot: &str) -> &'static str {
    match slot {
        "tcp_conn_request" => {
            "SYNs refused by full accept queues are taken from the kernel's ListenOverflows counters"
        }
        "neigh_create" => {
            "a full neighbour table is still seen through NEIGH_CREATEFAIL drops and arp_cache table_fulls"
        }
        "neigh_update" => "neighbour resolutions are not seen: no resolution latency",
        "neigh_timer_handler" => {
            "neighbour resolutions that fail by running out of probes are not seen"
        }
        _ => "its detail is not available",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fentry_is_tried_before_kprobe_and_slots_keep_order() {
        let s = slots(HOOKS);
        let names: Vec<_> = s.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "kfree_skb",
                "neigh_create",
                "inet_sock_set_state",
                "neigh_update",
                "neigh_timer_handler",
                "tcp_conn_request"
            ]
        );
        let conn = &s[5].1;
        assert_eq!(
            conn.iter().map(Hook::label).collect::<Vec<_>>(),
            ["fentry:tcp_conn_request", "kprobe:tcp_conn_request"]
        );
        assert_eq!(
            s[0].1.iter().map(Hook::label).collect::<Vec<_>>(),
            ["raw_tracepoint:kfree_skb", "skb:kfree_skb"],
            "the raw tracepoint first, the tracepoint as its fallback"
        );
        // Every required slot ends in a tracepoint: the hook every kernel since 4.7 has.
        for (_, alternatives) in &s {
            if alternatives.iter().any(|h| h.required) {
                let last = alternatives.last().unwrap();
                assert!(
                    matches!(last.attach, Attach::Tracepoint { .. }) && last.only_for.is_none()
                );
            }
        }
    }

    #[test]
    fn neighbour_state_hooks_are_only_on_request() {
        let on_request: Vec<_> = HOOKS
            .iter()
            .filter(|h| h.only_for == Some(Feature::NeighStates))
            .map(Hook::label)
            .collect();
        assert_eq!(
            on_request,
            ["neigh:neigh_update", "neigh:neigh_timer_handler"]
        );
        for slot in ["neigh_update", "neigh_timer_handler"] {
            assert_ne!(fallback_note(slot), fallback_note("?"), "{slot}");
        }
    }
}
