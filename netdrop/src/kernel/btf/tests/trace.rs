//! Tracepoint prototypes (raw tracepoint argument positions) from BTF.

use super::super::*;
use super::builder::*;
use crate::kernel::{raw_kfree_skb_args, struct_offsets};

/// A kernel's kfree_skb declarations: the unnamed typedef always, the named
/// probe stub when `stub`; `args` are (name, type id) after `void *__data`.
fn kernel_with(args: &[(&str, &str)], stub: bool) -> Btf {
    let mut b = Builder::new();
    let void_ptr = b.ptr(0);
    let u16_ = b.int("u16", 2);
    let skb = b.struct_("sk_buff", 200, &[("protocol", u16_, 8 * 180)]);
    let skb_ptr = b.ptr(skb);
    let sock = b.struct_("sock", 100, &[]);
    let sock_ptr = b.ptr(sock);
    let reason = b.enum32("skb_drop_reason", &[("SKB_DROP_REASON_NOT_SPECIFIED", 2)]);
    let ty = |t: &str| match t {
        "skb" => skb_ptr,
        "sock" => sock_ptr,
        "reason" => reason,
        _ => void_ptr,
    };
    let params = |b: &mut Builder, named: bool| {
        let mut words = vec![b.name(if named { "__data" } else { "" }), void_ptr];
        for &(name, t) in args {
            words.extend([b.name(if named { name } else { "" }), ty(t)]);
        }
        words
    };
    let anon = params(&mut b, false);
    let proto = b.raw("", FUNC_PROTO, false, args.len() + 1, 0, &anon);
    let ptr = b.ptr(proto);
    b.typedef("btf_trace_kfree_skb", ptr);
    if stub {
        let named = params(&mut b, true);
        let proto = b.raw("", FUNC_PROTO, false, args.len() + 1, 0, &named);
        b.raw("__bpf_trace_kfree_skb", FUNC, false, 0, proto, &[]);
    }
    Btf::parse(&b.build()).unwrap()
}

const V6_12: &[(&str, &str)] = &[
    ("skb", "skb"),
    ("location", "void"),
    ("reason", "reason"),
    ("rx_sk", "sock"),
];

#[test]
fn names_come_from_the_probe_stub_and_types_from_either() {
    let btf = kernel_with(V6_12, true);
    let args = btf.tracepoint_args("kfree_skb").unwrap();
    let shown: Vec<(&str, &str)> = args
        .iter()
        .map(|p| (p.name.as_str(), p.ty.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            ("skb", "struct sk_buff *"),
            ("location", "void *"),
            ("reason", "enum skb_drop_reason"),
            ("rx_sk", "struct sock *"),
        ]
    );
    let unnamed = kernel_with(V6_12, false)
        .tracepoint_args("kfree_skb")
        .unwrap();
    assert!(unnamed.iter().all(|p| p.name.is_empty()));
    assert_eq!(unnamed[2].ty, "enum skb_drop_reason");
    assert_eq!(btf.tracepoint_args("no_such_event"), None);
}

#[test]
fn kfree_skb_positions_by_kernel() {
    for stub in [true, false] {
        let btf = kernel_with(V6_12, stub);
        let a = raw_kfree_skb_args(&btf, "kfree_skb", &struct_offsets(&btf)).unwrap();
        assert_eq!(
            (a.skb, a.location, a.reason, a.rx_sk),
            (0, 1, 2, 3),
            "stub {stub}"
        );
        // 5.17 to 6.11: no rx_sk.
        let btf = kernel_with(&V6_12[..3], stub);
        let a = raw_kfree_skb_args(&btf, "kfree_skb", &struct_offsets(&btf)).unwrap();
        assert_eq!((a.reason, a.rx_sk), (2, netdrop_common::ABSENT));
        // 5.10: no reason (the probe reads 0 for it, as the tracepoint does there).
        let btf = kernel_with(&V6_12[..2], stub);
        let a = raw_kfree_skb_args(&btf, "kfree_skb", &struct_offsets(&btf)).unwrap();
        assert_eq!(
            (a.skb, a.location, a.reason),
            (0, 1, netdrop_common::ABSENT)
        );
        // No skb: the tracepoint is used instead.
        let btf = kernel_with(&V6_12[1..], stub);
        let err = raw_kfree_skb_args(&btf, "kfree_skb", &struct_offsets(&btf)).unwrap_err();
        assert!(err.contains("no skb argument"), "{err}");
    }
}

#[test]
fn an_argument_past_those_read_refuses_the_raw_hook() {
    let args = [
        ("a", "void"),
        ("b", "void"),
        ("c", "void"),
        ("d", "void"),
        ("skb", "skb"),
        ("reason", "reason"),
    ];
    let btf = kernel_with(&args, true);
    let err = raw_kfree_skb_args(&btf, "kfree_skb", &struct_offsets(&btf)).unwrap_err();
    assert!(err.contains("past the 4 read"), "{err}");
}
