//! The hook table (order, needs, costs) and the notices for hooks not used.

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
            assert!(matches!(last.attach, Attach::Tracepoint { .. }) && last.only_for.is_none());
            assert!(last.needs.contains(&Need::Since((4, 7))));
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

#[test]
fn every_hook_states_its_kernel_needs_and_fallback_cost() {
    for h in HOOKS {
        assert!(!h.needs.is_empty(), "{}", h.label());
        assert!(!h.fallback_cost.is_empty(), "{}", h.label());
        assert_eq!(by_label(&h.label()).map(|b| b.program), Some(h.program));
        let tracepoint = matches!(h.attach, Attach::Tracepoint { .. });
        assert_eq!(
            h.needs.contains(&Need::TracefsEvent),
            tracepoint,
            "{}: tracepoints need their format file, nothing else does",
            h.label()
        );
    }
    let needs = |label: &str| by_label(label).unwrap().needs;
    let raw = needs("raw_tracepoint:kfree_skb");
    assert!(raw.contains(&Need::Since((4, 17))));
    assert!(
        raw.iter()
            .any(|n| matches!(n, Need::Arg { name: "skb", .. }))
    );
    assert!(raw.contains(&Need::Member {
        strukt: "sk_buff",
        member: "protocol"
    }));
    let since = |list: &[Need], arg: &str| {
        list.iter().find_map(|n| match n {
            Need::Optional { name, since, .. } if *name == arg => Some(*since),
            _ => None,
        })
    };
    for list in [raw, needs("skb:kfree_skb")] {
        assert_eq!(since(list, "reason"), Some((5, 17)));
        assert_eq!(since(list, "rx_sk"), Some((6, 12)));
    }
    // The reason is optional: 5.10 gets the raw tracepoint too.
    assert!(
        !raw.iter()
            .any(|n| matches!(n, Need::Arg { name: "reason", .. }))
    );
    let fentry = needs("fentry:tcp_conn_request");
    assert!(fentry.contains(&Need::Since((5, 5))) && fentry.contains(&Need::Trampoline));
    assert_eq!(needs("kprobe:tcp_conn_request"), [Need::Kprobes]);
    // A slot's fallback is its last alternative's cost.
    assert!(fallback_note("tcp_conn_request").contains("ListenOverflows counter"));
    assert_eq!(
        by_label("raw_tracepoint:kfree_skb").unwrap().fallback_cost,
        RAW_TRACEPOINT_COST
    );
}

fn not_used(label: &str, stage: Stage, why: &str) -> NotUsed {
    NotUsed {
        hook: *by_label(label).unwrap(),
        stage,
        why: why.into(),
    }
}

#[test]
fn a_refused_hook_is_one_line_naming_it_the_reason_and_the_cost() {
    // 6.1 (the verifier refusing the raw tracepoint).
    let raw = not_used(
        "raw_tracepoint:kfree_skb",
        Stage::Refused,
        "verifier: invalid read from stack R10 off=-184 size=8",
    );
    assert_eq!(
        notice(&raw, by_label("skb:kfree_skb")),
        "netdrop: notice: raw_tracepoint:kfree_skb refused by the kernel (verifier: invalid read \
         from stack R10 off=-184 size=8); using skb:kfree_skb: each drop costs more (about 1.8x \
         per drop on 6.18, BENCHMARKS.md)"
    );
    // --no-fentry's case where the kernel decides.
    let fentry = not_used(
        "fentry:tcp_conn_request",
        Stage::Refused,
        "loading: Invalid argument (os error 22)",
    );
    assert_eq!(
        notice(&fentry, by_label("kprobe:tcp_conn_request")),
        "netdrop: notice: fentry:tcp_conn_request refused by the kernel (loading: Invalid argument \
         (os error 22)); using kprobe:tcp_conn_request: each SYN costs more (a kprobe is slower \
         per SYN than fentry)"
    );
    // 6.18: neither loads. Both lines say the slot has no hook (tests look for that).
    let kprobe = not_used("kprobe:tcp_conn_request", Stage::Refused, "verifier: x");
    for n in [&fentry, &kprobe] {
        let line = notice(n, None);
        assert!(
            line.contains(
                "; no tcp_conn_request hook: SYNs refused by full accept queues are \
                 known only from the kernel's ListenOverflows counter (no owner, no per-SYN detail)"
            ),
            "{line}"
        );
    }
    // Found unusable at start: the same shape.
    let skipped = not_used(
        "raw_tracepoint:kfree_skb",
        Stage::Skipped,
        "no prototype for kfree_skb in the kernel's BTF",
    );
    assert_eq!(
        notice(&skipped, by_label("skb:kfree_skb")),
        "netdrop: notice: raw_tracepoint:kfree_skb not usable on this kernel (no prototype for \
         kfree_skb in the kernel's BTF); using skb:kfree_skb: each drop costs more (about 1.8x \
         per drop on 6.18, BENCHMARKS.md)"
    );
    let neigh = not_used(
        "neigh:neigh_create",
        Stage::Skipped,
        "tracepoint neigh:neigh_create not found on this kernel (no /t/events/neigh/neigh_create/format)",
    );
    assert_eq!(
        notice(&neigh, None),
        "netdrop: notice: neigh:neigh_create not usable on this kernel (tracepoint \
         neigh:neigh_create not found on this kernel (no /t/events/neigh/neigh_create/format)); \
         no neigh_create hook: a full neighbour table is still seen through NEIGH_CREATEFAIL \
         drops and arp_cache table_fulls"
    );
}

#[test]
fn a_notice_reason_is_bounded_and_has_no_control_characters() {
    let long = format!("\n  \x1b[2Jbad\tthing {}\nsecond line", "x".repeat(1000));
    let n = not_used("fentry:tcp_conn_request", Stage::Refused, &long);
    let line = notice(&n, by_label("kprobe:tcp_conn_request"));
    assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    let why = line
        .split_once(" (")
        .and_then(|(_, rest)| rest.split_once("); using"))
        .unwrap()
        .0;
    assert!(why.starts_with("\\x1b[2Jbad\\tthing xxx"), "{why}");
    assert!(
        why.ends_with('…') && why.chars().count() == MAX_WHY,
        "{why}"
    );
    assert!(!line.contains("second line"));
    // Short reasons are kept whole; an escape is never cut in two.
    assert_eq!(one_line("  a\u{7}b  \n", 10), "a\\x07b");
    assert_eq!(one_line("ab\u{1b}", 4), "ab…");
    assert_eq!(one_line("abcd", 4), "abcd");
    assert_eq!(one_line("abcde", 4), "abc…");
    assert_eq!(one_line("", 4), "");
}
