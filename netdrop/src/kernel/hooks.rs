//! The one table of hooks: what each needs from the kernel, and whether netdrop
//! can run without it. Every kernel fallback is visible here.

use netdrop_common::names;

/// How a hook attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// A tracefs tracepoint `system:event`.
    Tracepoint {
        system: &'static str,
        event: &'static str,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Hook {
    /// The eBPF program's name in the object.
    pub program: &'static str,
    pub attach: Attach,
    /// Without a required hook netdrop refuses to start; an optional one is
    /// skipped with a one-line notice.
    pub required: bool,
    /// What it gives, and from which kernel (for the notice and the README).
    pub why: &'static str,
}

pub const HOOKS: &[Hook] = &[
    Hook {
        program: names::PROG_KFREE_SKB,
        attach: Attach::Tracepoint {
            system: "skb",
            event: "kfree_skb",
        },
        required: true,
        why: "every dropped skb; drop reasons since 5.17, rx_sk since 6.12",
    },
    Hook {
        program: names::PROG_NEIGH_CREATE,
        attach: Attach::Tracepoint {
            system: "neigh",
            event: "neigh_create",
        },
        required: false,
        why: "neighbour creates refused by a full table (since 5.0)",
    },
];

impl Hook {
    pub fn label(&self) -> String {
        match self.attach {
            Attach::Tracepoint { system, event } => format!("{system}:{event}"),
        }
    }
}
