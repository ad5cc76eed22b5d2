//! Kernels without drop reasons (5.10–5.16): the function that freed a
//! dropped skb says what dropped it, for the functions only one of the causes
//! frees packets in. Each cause declares its functions in the cause registry
//! (`causes/<cause>.rs`: `freed_in`, `location_slot`); this module turns them
//! into address ranges from kallsyms for the probe (so counts stay exact at any
//! rate) and names events by their resolved location, live or replayed.
//!
//! What the entries rest on (5.10 sources, checked in the 5.10 guest of
//! `cargo xtask vm-test`):
//! - `ip_rcv_finish_core`: its `drop_error` path frees the packets
//!   `fib_validate_source` refused (-EXDEV, IPReversePathFilter); its other
//!   frees are routing errors, rare beside a filtering storm.
//! - `__neigh_event_send`: frees the oldest queued packet while the
//!   unresolved queue is over `unres_qlen_bytes` (unresolved_discards), and
//!   the packet itself when no probe is configured (rare).
//! - `ip_finish_output2` / `ip6_finish_output2`: free the packet when no
//!   neighbour entry could be had, i.e. `__neigh_create` failed: the table is
//!   over gc_thresh3 (table_fulls).
//!
//! Accept-queue overflows need no entry: refused SYNs come from the
//! tcp_conn_request hook, and the ACKs freed in `tcp_v4_rcv`/`tcp_v4_do_rcv`
//! (where other TCP drops are freed too) from ListenOverflows (diagnose/fusion).

use netdrop_common::{LocationRange, MAX_LOCATIONS};

use super::kallsyms::Kallsyms;

/// A cause's entry: drops freed in `functions` are counted in `slot` and
/// named `reason` + [`BY_LOCATION`] (from the cause registry, `causes/`).
#[derive(Debug, Clone, Copy)]
pub struct ByLocation {
    pub functions: &'static [&'static str],
    pub slot: u32,
    /// The reason newer kernels give the same drop.
    pub reason: &'static str,
}

/// The table: every registered cause that declares freeing functions.
pub fn table() -> impl Iterator<Item = ByLocation> {
    crate::causes::REGISTRY.iter().filter_map(|spec| {
        Some(ByLocation {
            functions: spec.freed_in,
            slot: spec.location_slot?,
            reason: spec.reasons.first()?.name,
        })
    })
}

/// Marks a reason inferred from the drop's location, not given by the kernel.
pub const BY_LOCATION: &str = "(by location)";

/// `name` without the compiler's suffixes (`.constprop.0`, `.isra.0`, `.cold`).
fn base(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

fn entry_of_function(name: &str) -> Option<ByLocation> {
    let b = base(name);
    table().find(|e| e.functions.contains(&b))
}

/// The name of a location slot (`IP_RPFILTER(by location)`), if it is one.
pub fn slot_name(slot: u32) -> Option<String> {
    table()
        .find(|e| e.slot == slot)
        .map(|e| format!("{}{BY_LOCATION}", e.reason))
}

/// The reason name of a drop freed at `location` (`symbol+0xoff`, as
/// [`Kallsyms::resolve`] gives it), if the table knows its function.
pub fn reason_at(location: &str) -> Option<String> {
    let sym = location.split('+').next()?;
    entry_of_function(sym).map(|e| format!("{}{BY_LOCATION}", e.reason))
}

/// The address ranges of the table's functions for the probe, at most
/// [`MAX_LOCATIONS`] (and the names of the functions found).
pub fn ranges(syms: &Kallsyms) -> (Vec<LocationRange>, Vec<String>) {
    let mut out = Vec::new();
    let mut found = Vec::new();
    for (start, end, name) in syms.functions() {
        let Some(e) = entry_of_function(name) else {
            continue;
        };
        if out.len() == MAX_LOCATIONS {
            break;
        }
        out.push(LocationRange {
            start,
            end,
            slot: e.slot,
            _pad: 0,
        });
        found.push(name.to_string());
    }
    (out, found)
}

/// The address range of the function `name` (exactly, or with the
/// compiler's suffixes): the first such symbol's.
pub fn function_range(syms: &Kallsyms, name: &str) -> Option<(u64, u64)> {
    syms.functions()
        .find(|(_, _, n)| base(n) == name)
        .map(|(start, end, _)| (start, end))
}

#[cfg(test)]
mod tests {
    use netdrop_common::location_slot;

    use super::*;

    const TEXT: &str = "\
ffffffff81000000 T _stext
ffffffff81900000 t ip_rcv_finish_core.constprop.0
ffffffff81900400 t ip_rcv_finish
ffffffff81a00000 T __neigh_event_send
ffffffff81a00800 T neigh_destroy
ffffffff81b00000 t ip_finish_output2
ffffffff81b00600 t __ip_finish_output
ffffffff81c00000 t ip6_finish_output2
ffffffff81c00900 T ip6_finish_output
ffffffff81d00000 t ip_rcv_finish_core.cold
ffffffff81d00040 t other_cold
";

    #[test]
    fn ranges_cover_each_function_to_the_next_symbol() {
        let syms = Kallsyms::parse(TEXT);
        let (r, names) = ranges(&syms);
        assert_eq!(
            names,
            [
                "ip_rcv_finish_core.constprop.0",
                "__neigh_event_send",
                "ip_finish_output2",
                "ip6_finish_output2",
                "ip_rcv_finish_core.cold"
            ]
        );
        assert_eq!(
            (r[0].start, r[0].end),
            (0xffffffff81900000, 0xffffffff81900400)
        );
        assert_eq!(r[0].slot, location_slot::RP_FILTER);
        assert_eq!(r[1].slot, location_slot::NEIGH_QUEUE_FULL);
        assert_eq!(r[2].slot, location_slot::NEIGH_TABLE_FULL);
        assert_eq!(r[3].slot, location_slot::NEIGH_TABLE_FULL);
        assert_eq!(
            (r[4].start, r[4].end),
            (0xffffffff81d00000, 0xffffffff81d00040)
        );
    }

    #[test]
    fn events_and_counters_get_the_same_names() {
        assert_eq!(
            reason_at("ip_rcv_finish_core.constprop.0+0x1c2").as_deref(),
            Some("IP_RPFILTER(by location)")
        );
        assert_eq!(
            reason_at("__neigh_event_send+0x2f").as_deref(),
            Some("NEIGH_QUEUEFULL(by location)")
        );
        assert_eq!(reason_at("tcp_v4_rcv+0x90"), None);
        assert_eq!(reason_at("0xffffffff81000000"), None);
        assert_eq!(reason_at(""), None);
        for e in table() {
            let n = slot_name(e.slot).unwrap();
            assert_eq!(
                reason_at(&format!("{}+0x1", e.functions[0])),
                Some(n.clone())
            );
            assert_ne!(
                crate::classify::cause_of(&n),
                crate::classify::Cause::Other,
                "{n}"
            );
        }
        assert_eq!(slot_name(0), None);
    }

    #[test]
    fn a_function_range_by_exact_name() {
        let syms = Kallsyms::parse(
            "ffffffff81e00000 T nf_hook_slow\nffffffff81e00100 T nf_hook_slow_list\n\
             ffffffff81e00200 T nf_hook_entries_insert_raw\n\
             ffffffffc0100000 t nft_do_chain\t[nf_tables]\nffffffffc0100800 t x\t[nf_tables]\n",
        );
        assert_eq!(
            function_range(&syms, "nf_hook_slow"),
            Some((0xffffffff81e00000, 0xffffffff81e00100))
        );
        assert_eq!(
            function_range(&syms, "nft_do_chain"),
            Some((0xffffffffc0100000, 0xffffffffc0100800))
        );
        assert_eq!(function_range(&syms, "nf_hook"), None);
    }

    #[test]
    fn no_more_ranges_than_the_probe_reads() {
        let mut text = String::new();
        for i in 0..20u64 {
            text.push_str(&format!(
                "{:x} t __neigh_event_send.part.{i}\n",
                0xffffffff81000000u64 + i * 0x100
            ));
        }
        let (r, _) = ranges(&Kallsyms::parse(&text));
        assert_eq!(r.len(), MAX_LOCATIONS);
    }
}
