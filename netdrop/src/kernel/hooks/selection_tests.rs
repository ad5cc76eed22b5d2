//! Hook selection from kernel facts, for the kernels netdrop is verified on:
//! the raw tracepoint's BTF prototype (as `Btf::tracepoint_args` gives it) and
//! skb:kfree_skb's tracefs format file of each (fixtures copied from Debian
//! 5.10, 6.1, 6.12 and 7.2 guests and a 6.18 host).

use std::path::PathBuf;

use netdrop_common::{ABSENT, Config, KfreeSkbArgs};

use super::*;
use crate::kernel::{
    Selection,
    btf::Param,
    kfree_skb_args_of, select_hooks,
    tracefs::{TracefsError, TracepointFormat},
};

/// A raw tracepoint's prototype after `void *__data`: (name, type).
type Proto = &'static [(&'static str, &'static str)];

/// (release, kfree_skb format, prototype)
const KERNELS: &[(&str, &str, Proto)] = &[
    (
        "5.10",
        include_str!("../../../tests/fixtures/formats/kfree_skb.5.10.0-46-amd64.format"),
        &[("skb", "struct sk_buff *"), ("location", "void *")],
    ),
    (
        "6.1",
        include_str!("../../../tests/fixtures/formats/kfree_skb.6.1.0-56-amd64.format"),
        &[
            ("skb", "struct sk_buff *"),
            ("location", "void *"),
            ("reason", "enum skb_drop_reason"),
        ],
    ),
    (
        "6.12",
        include_str!("../../../tests/fixtures/formats/kfree_skb.6.12.117+deb13-amd64.format"),
        V6_12,
    ),
    (
        "6.18",
        include_str!("../../../tests/fixtures/formats/kfree_skb.6.18.44-fc-v769.format"),
        V6_12,
    ),
    (
        "7.2",
        include_str!("../../../tests/fixtures/formats/kfree_skb.7.2.13+deb14-amd64.format"),
        V6_12,
    ),
];

const V6_12: Proto = &[
    ("skb", "struct sk_buff *"),
    ("location", "void *"),
    ("reason", "enum skb_drop_reason"),
    ("rx_sk", "struct sock *"),
];

/// The prototype with names (the probe stub in BTF) or without (the typedef only).
fn params(proto: &[(&str, &str)], named: bool) -> Vec<Param> {
    proto
        .iter()
        .map(|(name, ty)| Param {
            name: if named {
                name.to_string()
            } else {
                String::new()
            },
            ty: ty.to_string(),
        })
        .collect()
}

fn config() -> Config {
    let mut c = Config::unknown();
    c.structs.sk_buff_protocol = 180;
    c
}

/// Selection with `kfree_skb` as skb:kfree_skb's format and `others` for the
/// rest of the tracepoints (any other is missing).
fn select(
    config: &mut Config,
    proto: Option<Vec<Param>>,
    kfree_skb: &str,
    others: &[(&str, &str)],
) -> Selection {
    select_hooks(
        config,
        |event| (event == "kfree_skb").then(|| proto.clone()).flatten(),
        |system, event| {
            let text = match (system, event) {
                ("skb", "kfree_skb") => Some(kfree_skb),
                _ => others.iter().find(|(e, _)| *e == event).map(|(_, t)| *t),
            };
            match text {
                Some(t) => TracepointFormat::parse(t),
                None => Err(TracefsError::Missing {
                    system: system.into(),
                    event: event.into(),
                    path: PathBuf::from(format!("/t/events/{system}/{event}/format")),
                }),
            }
        },
    )
    .unwrap()
}

fn labels(hooks: impl IntoIterator<Item = Hook>) -> Vec<String> {
    hooks.into_iter().map(|h| h.label()).collect()
}

#[test]
fn hooks_usable_on_each_verified_kernel() {
    for &(release, format, proto) in KERNELS {
        for named in [true, false] {
            let what = format!("{release} (named: {named})");
            let mut c = config();
            let s = select(&mut c, Some(params(proto, named)), format, &[]);
            // Every kernel: the raw tracepoint (5.10 without reasons too), the
            // tracepoint as its fallback, and both tcp_conn_request hooks to
            // try at load (6.18 refuses them there, 6.1 the raw tracepoint).
            assert_eq!(
                labels(s.usable.iter().copied()),
                [
                    "raw_tracepoint:kfree_skb",
                    "skb:kfree_skb",
                    "fentry:tcp_conn_request",
                    "kprobe:tcp_conn_request"
                ],
                "{what}"
            );
            // No format file given for these here.
            assert_eq!(
                labels(s.skipped.iter().map(|(h, _)| *h)),
                ["neigh:neigh_create", "sock:inet_sock_set_state"],
                "{what}"
            );
            assert_eq!(
                labels(s.missing_on_request.iter().map(|(h, _)| *h)),
                ["neigh:neigh_update", "neigh:neigh_timer_handler"],
                "{what}"
            );
            let a = c.kfree_skb_args;
            let o = c.kfree_skb;
            let (args, reason_field, offsets) = match release {
                "5.10" => ((0, 1, ABSENT, ABSENT), false, (8, 16, ABSENT, 24, ABSENT)),
                "6.1" => ((0, 1, 2, ABSENT), true, (8, 16, ABSENT, 24, 28)),
                _ => ((0, 1, 2, 3), true, (8, 16, 24, 32, 36)),
            };
            assert_eq!((a.skb, a.location, a.reason, a.rx_sk), args, "{what}");
            assert_eq!(s.has_reason_field, reason_field, "{what}");
            assert_eq!(
                (o.skbaddr, o.location, o.rx_sk, o.protocol, o.reason),
                offsets,
                "{what}"
            );
        }
    }
}

#[test]
fn neighbour_and_socket_hooks_follow_their_format_files() {
    let (_, format, proto) = KERNELS[3];
    let others = [
        (
            "neigh_create",
            include_str!("../../../tests/fixtures/formats/neigh_create.6.18.44-fc-v769.format"),
        ),
        (
            "neigh_update",
            include_str!("../../../tests/fixtures/formats/neigh_update.6.18.44-fc-v769.format"),
        ),
        (
            "neigh_timer_handler",
            include_str!(
                "../../../tests/fixtures/formats/neigh_timer_handler.6.18.44-fc-v769.format"
            ),
        ),
    ];
    let mut c = config();
    let s = select(&mut c, Some(params(proto, true)), format, &others);
    assert_eq!(
        labels(s.skipped.iter().map(|(h, _)| *h)),
        ["sock:inet_sock_set_state"]
    );
    assert!(
        s.skipped[0]
            .1
            .contains("sock:inet_sock_set_state not found")
    );
    assert!(s.missing_on_request.is_empty());
    assert_eq!(s.usable.len(), HOOKS.len() - 1);
    assert_ne!(c.neigh_create.entries, ABSENT);
    assert_ne!(c.neigh_update.new_state, ABSENT);
    assert_ne!(c.neigh_timer.nud_state, ABSENT);
}

#[test]
fn the_raw_tracepoint_is_skipped_without_skb_protocol_or_prototype() {
    let (_, format, proto) = KERNELS[2];
    let raw_skipped = |c: &mut Config, p: Option<Vec<Param>>| {
        let s = select(c, p, format, &[]);
        assert_eq!(s.usable[0].label(), "skb:kfree_skb");
        assert_eq!(c.kfree_skb_args, KfreeSkbArgs::absent());
        let (hook, why) = &s.skipped[0];
        assert_eq!(hook.label(), "raw_tracepoint:kfree_skb");
        why.clone()
    };
    let why = raw_skipped(&mut config(), None);
    assert_eq!(why, "no prototype for kfree_skb in the kernel's BTF");
    let no_skb = params(&proto[1..], true);
    let why = raw_skipped(&mut config(), Some(no_skb));
    assert!(why.contains("has no skb argument"), "{why}");
    let mut c = Config::unknown();
    let why = raw_skipped(&mut c, Some(params(proto, true)));
    assert_eq!(why, "sk_buff.protocol is not in the kernel's BTF");
    // A prototype without reason on a kernel whose tracepoint has one would
    // lose the reasons: the tracepoint is used.
    let why = raw_skipped(&mut config(), Some(params(&proto[..2], true)));
    assert!(why.contains("no reason argument"), "{why}");
}

#[test]
fn the_needs_in_the_table_are_what_selection_checks() {
    let raw = by_label("raw_tracepoint:kfree_skb").unwrap();
    let structs = config().structs;
    let full = params(V6_12, true);
    for need in raw.needs {
        let without = |name: &str| -> Vec<Param> {
            full.iter().filter(|p| p.name != name).cloned().collect()
        };
        match *need {
            Need::Arg { name, ty, .. } => {
                assert!(V6_12.contains(&(name, ty)), "{name}");
                assert!(
                    kfree_skb_args_of(&without(name), &structs).is_err(),
                    "{name}"
                );
            }
            Need::Optional { name, .. } => {
                let a = kfree_skb_args_of(&without(name), &structs).unwrap();
                let pos = match name {
                    "location" => a.location,
                    "reason" => a.reason,
                    "rx_sk" => a.rx_sk,
                    other => panic!("{other}: not an argument the probe reads"),
                };
                assert_eq!(pos, ABSENT, "{name}");
            }
            Need::Member {
                strukt: "sk_buff",
                member: "protocol",
            } => {
                assert!(kfree_skb_args_of(&full, &Config::unknown().structs).is_err());
            }
            Need::Since(_) => {}
            other => panic!("{other:?}: not checked for the raw tracepoint"),
        }
    }
    // The tracepoint's optional fields are those the 5.10 / 6.1 formats lack.
    let tp = by_label("skb:kfree_skb").unwrap();
    let old = TracepointFormat::parse(KERNELS[0].1).unwrap();
    for need in tp.needs {
        if let Need::Optional { name, .. } = need {
            assert!(old.field(name).is_none(), "{name}");
            assert!(
                TracepointFormat::parse(KERNELS[2].1)
                    .unwrap()
                    .field(name)
                    .is_some()
            );
        }
    }
}
