//! Filters: spec → kernel filter, --netns and --dev checks.

use super::*;
use crate::decode::Packet;

fn table() -> ReasonTable {
    ReasonTable::from_pairs(
        [
            ("NOT_SPECIFIED", 2),
            ("IP_RPFILTER", 16),
            ("NEIGH_QUEUEFULL", 59),
        ]
        .map(|(n, v)| (format!("SKB_DROP_REASON_{n}"), v)),
    )
}

#[test]
fn causes_become_a_reason_bitmap() {
    let f = resolve(
        &FilterSpec {
            causes: vec![Cause::RpFilter, Cause::NeighTableOverflow],
            ..Default::default()
        },
        &table(),
        true,
    )
    .unwrap();
    assert!(f.reason_slots.contains(&16));
    assert!(!f.reason_slots.contains(&59));
    assert!(!f.reason_slots.contains(&2));
    assert_ne!(f.kernel.flags & filter::NEIGH_TABLE, 0);
    assert_eq!(f.kernel.flags & filter::ACCEPT_QUEUE, 0);
    // "other" takes every reason not of the four, unknown numbers included.
    let o = resolve(
        &FilterSpec {
            causes: vec![Cause::Other],
            ..Default::default()
        },
        &table(),
        true,
    )
    .unwrap();
    let slots = &o.reason_slots;
    assert!(slots.contains(&2) && slots.contains(&300) && !slots.contains(&59));
    // NO_SOCKET at a full listener is an accept-queue drop, not "other".
    let listen_full = netdrop_common::LISTEN_FULL_NO_SOCKET_SLOT;
    assert!(!slots.contains(&listen_full));
    let a = resolve(
        &FilterSpec {
            causes: vec![Cause::AcceptQueueFull],
            ..Default::default()
        },
        &table(),
        true,
    )
    .unwrap();
    assert!(a.reason_slots.contains(&listen_full));
    assert_eq!(
        Filters::none().kernel.flags,
        0,
        "no filter: the kernel keeps everything"
    );
}

#[test]
fn pid_netns_and_dev_resolve_or_fail_clearly() {
    let me = std::process::id();
    let own = current_netns_inode().unwrap().to_string();
    let f = resolve(
        &FilterSpec {
            pid: Some(me),
            dev: Some("lo".into()),
            netns: Some(own.clone()),
            ..Default::default()
        },
        &table(),
        true,
    )
    .unwrap();
    assert_eq!(f.kernel.flags, filter::PID | filter::DEV | filter::NETNS);
    assert_eq!(f.kernel.pid_netns, netns_of_pid(me).unwrap());
    assert_eq!(f.kernel.netns.to_string(), own);
    assert_eq!(&f.kernel.dev[..3], b"lo\0");
    let err = resolve(
        &FilterSpec {
            pid: Some(999_999_999),
            ..Default::default()
        },
        &table(),
        true,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no process 999999999"), "{err}");
    assert!(
        resolve(
            &FilterSpec {
                dev: Some("x".repeat(16)),
                ..Default::default()
            },
            &table(),
            true
        )
        .is_err()
    );
    let err = resolve(
        &FilterSpec {
            netns: Some("no-such-ns".into()),
            ..Default::default()
        },
        &table(),
        true,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no network namespace"), "{err}");
    let err = resolve(
        &FilterSpec {
            dev: Some("eth0:1".into()),
            ..Default::default()
        },
        &table(),
        true,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("--dev eth0:1: expected an interface name"),
        "{err}"
    );
}

fn netns_error(spec: &str) -> String {
    match resolve_netns(spec) {
        Ok(inode) => panic!("--netns {spec:?} accepted as {inode}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn netns_must_name_an_existing_network_namespace() {
    let own = current_netns_inode().unwrap();
    // An inode from the listing, a path to a netns file.
    assert_eq!(u64::from(resolve_netns(&own.to_string()).unwrap()), own);
    for path in ["/proc/self/ns/net", "/proc/thread-self/ns/net"] {
        assert_eq!(u64::from(resolve_netns(path).unwrap()), own, "{path}");
    }
    let (inode, path) = find_netns(&own.to_string()).unwrap();
    assert_eq!(u64::from(inode), own);
    assert_eq!(
        crate::context::netns::netns_inode(&path).unwrap(),
        own,
        "a path to it: {}",
        path.display()
    );
    // No such inode (today's `--netns 12345` watched nothing, exit 0).
    let inode_msg = "no network namespace with that inode (see ip netns / ls -l /proc/*/ns/net)";
    assert_eq!(netns_error("12345"), format!("--netns 12345: {inode_msg}"));
    assert_eq!(
        netns_error("99999999999"),
        format!("--netns 99999999999: {inode_msg}")
    );
    // The inode of another kind of namespace is not a network namespace's.
    let mnt = fs::metadata("/proc/self/ns/mnt").unwrap().ino().to_string();
    assert_eq!(netns_error(&mnt), format!("--netns {mnt}: {inode_msg}"));
    // Namespace files of other kinds, named by their kind.
    for (kind, name) in [
        ("mnt", "mount"),
        ("uts", "UTS"),
        ("ipc", "IPC"),
        ("user", "user"),
        ("pid", "PID"),
        ("cgroup", "cgroup"),
    ] {
        let path = format!("/proc/self/ns/{kind}");
        if !Path::new(&path).exists() {
            continue;
        }
        assert_eq!(
            netns_error(&path),
            format!("--netns {path}: not a network namespace (a {name} namespace)")
        );
    }
    assert_eq!(
        netns_error("/proc/self/status"),
        "--netns /proc/self/status: not a namespace file (a network namespace is /run/netns/NAME or /proc/PID/ns/net)"
    );
    assert_eq!(
        netns_error("/nonexistent/ns"),
        "--netns /nonexistent/ns: no such file"
    );
    // A name: /run/netns/NAME.
    assert_eq!(
        netns_error("nd-no-such-ns"),
        "--netns nd-no-such-ns: no network namespace named nd-no-such-ns in /run/netns (see ip netns)"
    );
    for odd in [".", ".."] {
        assert!(
            netns_error(odd).contains("no network namespace named"),
            "{odd}"
        );
    }
    assert!(netns_error("").contains("expected an inode number"));
    // What the user typed is shown escaped.
    assert_eq!(
        netns_error("bad\x1b[2J"),
        "--netns bad\\x1b[2J: no network namespace named bad\\x1b[2J in /run/netns (see ip netns)"
    );
}

#[test]
fn dev_names_follow_the_kernels_rules() {
    for ok in [
        "lo",
        "eth0",
        "fifteen-bytes-x",
        "veth1234@if5",
        "ndt-1-0",
        "é",
        "x\x1b",
    ] {
        assert_eq!(check_dev_name(ok), Ok(()), "{ok:?}");
    }
    for bad in [
        "",
        ".",
        "..",
        "sixteen-bytes-xx",
        "a/b",
        "eth0:1",
        "eth 0",
        "a\tb",
        "a\nb",
        "a\rb",
        "a\x0bb",
        "a\x0cb",
        "nul\0",
        "nb\u{a0}sp",
        "àa",
    ] {
        let e = check_dev_name(bad).unwrap_err();
        assert!(
            e.starts_with("expected an interface name: 1 to 15 bytes"),
            "{bad:?}: {e}"
        );
    }
}

#[test]
fn a_missing_dev_is_a_notice_naming_where_it_was_looked_for() {
    let own = current_netns_inode().unwrap();
    let here = Watched::One {
        inode: u32::try_from(own).unwrap(),
        path: "/proc/self/ns/net".into(),
        spec: "/proc/self/ns/net".into(),
    };
    assert_eq!(dev_exists("lo", &here), Some(true));
    assert_eq!(dev_exists("nd-none-x9", &here), Some(false));
    let me = std::process::id();
    let of_pid = Watched::OfPid {
        pid: me,
        inode: u32::try_from(own).unwrap(),
    };
    assert_eq!(dev_exists("lo", &of_pid), Some(true));
    assert_eq!(dev_exists("nd-none-x9", &of_pid), Some(false));
    assert_eq!(
        dev_notice("nd-none-x9", &here),
        format!(
            "netdrop: notice: no interface nd-none-x9 in network namespace /proc/self/ns/net ({own}) now; its drops will be counted if it appears"
        )
    );
    let by_inode = Watched::One {
        inode: 4026532177,
        path: "/run/netns/web".into(),
        spec: "4026532177".into(),
    };
    assert_eq!(
        dev_notice("eth\x1b9", &by_inode),
        "netdrop: notice: no interface eth\\x1b9 in network namespace 4026532177 now; its drops will be counted if it appears"
    );
    let by_name = Watched::One {
        inode: 4026532177,
        path: "/run/netns/web".into(),
        spec: "web".into(),
    };
    assert!(dev_notice("eth9", &by_name).contains(" in network namespace web (4026532177) now;"));
    assert!(dev_notice("eth9", &of_pid).contains(&format!(
        " in the network namespace of process {me} ({own}) now;"
    )));
    assert_eq!(
        dev_notice("eth9", &Watched::All),
        "netdrop: notice: no interface eth9 in any network namespace now; its drops will be counted if it appears"
    );
}

#[test]
fn port_and_address_match_either_side() {
    let mut rec = crate::decode::tests_support::drop_record();
    rec.packet = Some(Packet {
        saddr: "198.18.0.1".parse().unwrap(),
        daddr: "198.18.0.2".parse().unwrap(),
        l4: 17,
        sport: Some(5000),
        dport: Some(53),
    });
    let f = |port, addr: Option<&str>| Filters {
        port,
        addr: addr.map(|a| a.parse().unwrap()),
        ..Filters::none()
    };
    assert!(f(Some(53), None).keep_packet(&rec));
    assert!(f(Some(5000), Some("198.18.0.1")).keep_packet(&rec));
    assert!(!f(Some(80), None).keep_packet(&rec));
    assert!(!f(None, Some("198.18.0.9")).keep_packet(&rec));
    rec.packet = None;
    assert!(
        !f(Some(53), None).keep_packet(&rec),
        "no packet header: cannot match a port"
    );
    assert!(f(None, None).keep_packet(&rec));
}
