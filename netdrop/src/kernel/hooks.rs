//! The one table of hooks: what each needs from the kernel, what it costs when
//! the kernel refuses it, and whether netdrop can run without it. Every kernel
//! fallback is visible here.

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

/// An upstream kernel release, (major, minor). Documentation and notices only:
/// netdrop never compares it with `uname -r` (distributions backport, configs
/// differ); it probes BTF and tracefs, and the kernel has the last word at load.
pub type Release = (u16, u16);

/// What a hook needs from the kernel (and what it uses where the kernel has it).
///
/// Checked at start where BTF or tracefs can tell (`KernelFacts::discover`:
/// a hook failing one is *skipped*), otherwise by the kernel when the program
/// loads and attaches (a hook failing then is *refused*). Either way the next
/// alternative of the slot is used, with a one-line notice ([`notice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The attach type or hook point exists upstream from this release on.
    Since(Release),
    /// tracefs has `events/<system>/<event>/format` (checked at start: the
    /// record offsets come from it).
    TracefsEvent,
    /// The kernel's BTF has the raw tracepoint's prototype
    /// (`btf_trace_<event>`, or the named `__bpf_trace_<event>`) with this
    /// argument among the first `netdrop_common::RAW_ARGS` (checked at start).
    Arg {
        name: &'static str,
        ty: &'static str,
        since: Release,
    },
    /// An argument (raw tracepoint) or record field (tracepoint) used where
    /// the kernel has it; without it the probe reads 0 and `without` is lost.
    Optional {
        name: &'static str,
        since: Release,
        without: &'static str,
    },
    /// A struct member in the kernel's BTF (checked at start).
    Member {
        strukt: &'static str,
        member: &'static str,
    },
    /// fentry: the kernel's BTF (the function's prototype) and BPF trampolines
    /// (5.5+ on x86-64, 6.0+ on arm64); the function must be traceable and
    /// ftrace not locked down. Decided by the kernel at load and attach.
    Trampoline,
    /// kprobe: CONFIG_KPROBES, and a function neither inlined nor on the
    /// kprobe blacklist. Decided by the kernel at attach.
    Kprobes,
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
    /// What it gives (for the notice and the README).
    pub why: &'static str,
    /// `Some`: attached only when this feature is asked for.
    pub only_for: Option<Feature>,
    /// What it needs from the kernel (see [`Need`]).
    pub needs: &'static [Need],
    /// What it costs when this hook is not used and the slot's next
    /// alternative is (or, for a slot's last, what netdrop does without the
    /// slot: [`fallback_note`]).
    pub fallback_cost: &'static str,
}

/// raw_tracepoint:kfree_skb refused, skb:kfree_skb used (BENCHMARKS.md, drop
/// storm on 6.18: 79 ns/drop and 97.3 % of the untraced drop rate with the raw
/// tracepoint, 122 ns/drop and 94.0 % with the tracepoint).
pub const RAW_TRACEPOINT_COST: &str =
    "each drop costs more (about 1.8x per drop on 6.18, BENCHMARKS.md)";

pub const HOOKS: &[Hook] = &[
    Hook {
        program: names::PROG_KFREE_SKB_RAW,
        attach: Attach::RawTracepoint { event: "kfree_skb" },
        required: true,
        slot: "kfree_skb",
        why: "every dropped skb, at the least cost per drop; drop reasons since 5.17, rx_sk since 6.12",
        only_for: None,
        needs: &[
            Need::Since((4, 17)),
            Need::Arg {
                name: "skb",
                ty: "struct sk_buff *",
                since: (4, 17),
            },
            Need::Member {
                strukt: "sk_buff",
                member: "protocol",
            },
            Need::Optional {
                name: "location",
                since: (4, 17),
                without: "the dropping function",
            },
            Need::Optional {
                name: "reason",
                since: (5, 17),
                without: "drop reasons (every drop is reason 0, as with skb:kfree_skb then)",
            },
            Need::Optional {
                name: "rx_sk",
                since: (6, 12),
                without: "the receiving socket of drops after the socket lookup",
            },
        ],
        fallback_cost: RAW_TRACEPOINT_COST,
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
        needs: &[
            Need::Since((4, 7)),
            Need::TracefsEvent,
            Need::Optional {
                name: "reason",
                since: (5, 17),
                without: "drop reasons (every drop is reason 0, shown as UNKNOWN)",
            },
            Need::Optional {
                name: "rx_sk",
                since: (6, 12),
                without: "the receiving socket of drops after the socket lookup",
            },
        ],
        fallback_cost: "netdrop cannot run: no other hook sees every dropped skb",
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
        needs: &[Need::Since((5, 0)), Need::TracefsEvent],
        fallback_cost: "a full neighbour table is still seen through NEIGH_CREATEFAIL drops and arp_cache table_fulls",
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
        needs: &[Need::Since((4, 16)), Need::TracefsEvent],
        fallback_cost: "--pid finds the process's new sockets at its next look at /proc (every 200 ms): drops before are missed",
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
        needs: &[Need::Since((5, 0)), Need::TracefsEvent],
        fallback_cost: "neighbour resolutions are not seen: no resolution latency",
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
        needs: &[Need::Since((5, 0)), Need::TracefsEvent],
        fallback_cost: "neighbour resolutions that fail by running out of probes are not seen",
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
        needs: &[Need::Since((5, 5)), Need::Trampoline],
        fallback_cost: "each SYN costs more (a kprobe is slower per SYN than fentry)",
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
        needs: &[Need::Kprobes],
        fallback_cost: "SYNs refused by full accept queues are known only from the kernel's \
                        ListenOverflows counter (no owner, no per-SYN detail)",
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

    /// The same hook (programs are unique in the table).
    pub fn is(&self, other: &Hook) -> bool {
        self.program == other.program
    }
}

/// The table's hook with this label (`skb:kfree_skb`).
pub fn by_label(label: &str) -> Option<&'static Hook> {
    HOOKS.iter().find(|h| h.label() == label)
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

/// What netdrop does instead when a slot has no hook: the `fallback_cost` of
/// the slot's last alternative.
pub fn fallback_note(slot: &str) -> &'static str {
    HOOKS
        .iter()
        .rev()
        .find(|h| h.slot == slot)
        .map_or("its detail is not available", |h| h.fallback_cost)
}

/// When a hook was found unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// At start, from BTF or tracefs (a [`Need`] missing): never loaded.
    Skipped,
    /// By the kernel, loading (the verifier) or attaching it.
    Refused,
}

/// A wanted hook that is not used.
#[derive(Debug, Clone)]
pub struct NotUsed {
    pub hook: Hook,
    pub stage: Stage,
    /// Why, short (the verifier's complaint, the innermost error).
    pub why: String,
}

/// At most this many characters of a reason in a notice (escaped).
pub const MAX_WHY: usize = 200;

/// The one-line notice for a hook not used; `instead` is the hook of its slot
/// that attached (`None`: the slot has none). E.g. `netdrop: notice:
/// raw_tracepoint:kfree_skb refused by the kernel (verifier: invalid read
/// from stack R10 off=-184 size=8); using skb:kfree_skb: each drop costs more
/// (about 1.8x per drop on 6.18, BENCHMARKS.md)`.
pub fn notice(not_used: &NotUsed, instead: Option<&Hook>) -> String {
    let hook = &not_used.hook;
    let what = match not_used.stage {
        Stage::Skipped => "not usable on this kernel",
        Stage::Refused => "refused by the kernel",
    };
    let then = match instead {
        Some(h) => format!("using {}: {}", h.label(), hook.fallback_cost),
        None => format!("no {} hook: {}", hook.slot, fallback_note(hook.slot)),
    };
    format!(
        "netdrop: notice: {} {what} ({}); {then}",
        hook.label(),
        one_line(&not_used.why, MAX_WHY)
    )
}

/// `s` as one line of at most `max` characters: its first non-empty line,
/// control characters escaped (`crate::text::safe`), cut with `…`.
pub fn one_line(s: &str, max: usize) -> String {
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let safe = crate::text::safe(line);
    if safe.chars().count() <= max {
        return safe.into_owned();
    }
    // Cut between characters of the original, never inside an escape.
    let mut out = String::new();
    let mut len = 0;
    for c in line.chars() {
        let mut buf = [0; 4];
        let piece = crate::text::safe(c.encode_utf8(&mut buf)).into_owned();
        let n = piece.chars().count();
        if len + n >= max {
            break;
        }
        out.push_str(&piece);
        len += n;
    }
    out.push('…');
    out
}

#[cfg(test)]
mod selection_tests;
#[cfg(test)]
mod tests;
