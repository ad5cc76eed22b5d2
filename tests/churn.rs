//! Namespace churn: hundreds of namespaces created and deleted during one
//! session (the kernel reuses their inode numbers), some dropping tagged
//! datagrams: every drop names its own namespace, and namespaces that shared an
//! inode have distinct cookies. Needs root; run one at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::thread::sleep;
use std::time::Instant;

use serde_json::json;

use netdrop_tests::churn::{self, ChurnNs, ChurnOptions, ChurnRun};
use netdrop_tests::field::SNAPSHOT_WAIT;
use netdrop_tests::field::{EVENTS_UNLIMITED, assert_identity_fields};
use netdrop_tests::netns::{list_netns, own_prefix};
use netdrop_tests::{Netdrop, lock, require_root, skip_loudly};

/// ~300 namespaces created and deleted during one session (4 at a time); every
/// third sends 5 datagrams to a closed port with a source port that tags it,
/// lives 0.3 s more and goes. Every tagged drop names its namespace, and
/// namespaces that shared an inode have distinct cookies.
#[test]
fn namespace_churn_every_drop_names_its_namespace() {
    const TEST: &str = "namespace_churn_every_drop_names_its_namespace";
    let _serial = lock();
    if !require_root(TEST) {
        return;
    }
    let opts = ChurnOptions::default();
    let nd = Netdrop::start(EVENTS_UNLIMITED).expect("starting netdrop");
    let started = Instant::now();
    // On failure the run deletes every namespace it made before returning.
    let run = churn::run(&opts).expect("namespace churn");
    sleep(SNAPSHOT_WAIT);
    let out = nd.stop().expect("stopping netdrop");
    let leftovers = list_netns(&own_prefix()).unwrap();
    assert!(leftovers.is_empty(), "namespaces left: {leftovers:?}");
    out.assert_clean_exit();
    assert_identity_fields(&out);

    let senders: Vec<&ChurnNs> = run.senders().collect();
    let shared_all = ChurnRun::shared_inodes(run.namespaces.iter());
    let shared = ChurnRun::shared_inodes(senders.iter().copied());
    eprintln!(
        "churn: {} namespaces ({} senders) in {:.1?} (session {:.1?}); {} inodes held by \
         several namespaces, {} of them by several senders",
        run.namespaces.len(),
        senders.len(),
        run.elapsed,
        started.elapsed(),
        shared_all.len(),
        shared.len()
    );
    if run.cut_short {
        skip_loudly(&format!(
            "{TEST}: the churn hit its {:?} limit after {} of {} namespaces; checking those",
            opts.time_limit,
            run.namespaces.len(),
            opts.namespaces
        ));
    }
    assert!(
        senders.len() >= 20,
        "only {} senders ran: too few to say anything",
        senders.len()
    );
    for s in &senders {
        assert_eq!(s.sent, opts.datagrams, "datagrams sent by {s:?}");
        assert_eq!(
            s.no_ports, opts.datagrams as u64,
            "the kernel's Udp:NoPorts in {} (test precondition): {s:?}",
            s.name
        );
    }
    assert_eq!(
        out.lost_events(),
        0,
        "the ring buffer lost events: drop lines cannot be counted"
    );

    let by_tag: HashMap<u16, &ChurnNs> = senders.iter().map(|s| (s.sport, *s)).collect();
    let mut count: HashMap<usize, usize> = HashMap::new();
    let mut cookies: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for l in out.drops() {
        let Some(ns) = l["sport"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .and_then(|p| by_tag.get(&p))
        else {
            continue;
        };
        let ours = l["dport"] == json!(churn::PORT)
            && l["saddr"]
                .as_str()
                .is_some_and(|a| a.starts_with("198.19."));
        if !ours {
            continue;
        }
        *count.entry(ns.index).or_default() += 1;
        if l["saddr"] != json!(ns.src.to_string()) || l["daddr"] != json!(ns.dst.to_string()) {
            wrong.push(format!("tag {} of {}: addresses {l}", ns.sport, ns.name));
        }
        if l["reason"] != "NO_SOCKET" {
            wrong.push(format!("tag {} of {}: reason {l}", ns.sport, ns.name));
        }
        if l["netns_name"] != json!(ns.name) {
            wrong.push(format!(
                "tag {} dropped in {} (inode {}) names {}: {l}",
                ns.sport, ns.name, ns.inode, l["netns_name"]
            ));
        }
        if l["netns"] != json!(ns.inode) {
            wrong.push(format!(
                "tag {} of {} (inode {}): netns {}",
                ns.sport, ns.name, ns.inode, l["netns"]
            ));
        }
        match l["netns_cookie"].as_u64() {
            None => wrong.push(format!("tag {}: no netns_cookie: {l}", ns.sport)),
            Some(c) => {
                if ns.cookie.is_some_and(|k| k != c) {
                    wrong.push(format!(
                        "tag {} of {}: netns_cookie {c}, the kernel's is {:?}",
                        ns.sport, ns.name, ns.cookie
                    ));
                }
                cookies.entry(&ns.name).or_default().insert(c);
            }
        }
    }
    for s in &senders {
        let n = count.get(&s.index).copied().unwrap_or(0);
        if n != s.sent {
            wrong.push(format!(
                "{} (tag {}, inode {}): {n} drop lines for {} datagrams dropped",
                s.name, s.sport, s.inode, s.sent
            ));
        }
    }
    let total: usize = count.values().sum();
    let expected: usize = senders.iter().map(|s| s.sent).sum();
    eprintln!("tagged drop lines: {total} (expected {expected})");
    assert!(
        wrong.is_empty(),
        "{} problems; the first ones:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(total, expected, "one drop line per tagged datagram");

    // Namespaces that shared an inode: one cookie each, all different.
    if shared.is_empty() {
        skip_loudly(&format!(
            "{TEST} (cookie part): no inode was reused among the sender namespaces this run; \
             distinct cookies for one inode not checked"
        ));
    }
    for (inode, nss) in &shared {
        let mut seen = BTreeMap::new();
        for ns in nss {
            let set = &cookies[ns.name.as_str()];
            assert_eq!(set.len(), 1, "{} has several cookies: {set:?}", ns.name);
            let c = *set.iter().next().unwrap();
            if let Some(other) = seen.insert(c, &ns.name) {
                panic!(
                    "inode {inode}: {other} and {} (different namespaces) have the same \
                     netns_cookie {c}",
                    ns.name
                );
            }
        }
        eprintln!("inode {inode}: {} namespaces, cookies {seen:?}", nss.len());
    }
    out.assert_one_truth();
}
