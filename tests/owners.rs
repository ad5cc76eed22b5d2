//! Whose drop is it: the process owning the dropped packet's socket (`owner`,
//! `socket`, `socket_ino`), not the task that happened to run when the kernel
//! freed it (`pid`/`comm`); and `watch --pid N`. Clients run as processes of
//! their own inside the namespaces (tests/bin/nd-peer.rs). Needs root; run one
//! at a time:
//!
//!     cargo build -p netdrop
//!     cargo test -p netdrop-tests --test owners -- --test-threads=1

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use netdrop_tests::accept::AcceptOverflow;
use netdrop_tests::neigh::{self, NeighQueueFull};
use netdrop_tests::netdrop::{assert_drop_line_shape, reason_of, run_netdrop};
use netdrop_tests::peer::Peer;
use netdrop_tests::{
    Netdrop, NetdropOutput, arp_cache, delta, lock, require_root, settle, skip_loudly,
};

const PEER: &str = env!("CARGO_BIN_EXE_nd-peer");
const PEER_COMM: &str = "nd-peer";
const QUEUEFULL: &str = "NEIGH_QUEUEFULL";
const CONNECTS: usize = 4;
/// Long enough for the clients to hold their sockets until netdrop has stopped.
const HOLD_MS: &str = "4000";
const PEER_EXIT: Duration = Duration::from_secs(8);

fn queue_full_lines(out: &NetdropOutput) -> Vec<&Value> {
    let lines: Vec<&Value> = out
        .drops()
        .into_iter()
        .filter(|l| reason_of(l) == QUEUEFULL)
        .collect();
    assert!(
        !lines.is_empty(),
        "no {QUEUEFULL} line; summary: {}",
        out.summary()
    );
    lines
}

fn owner_pid(line: &Value) -> Option<u64> {
    line["owner"]["pid"].as_u64()
}

/// How many lines ran in a task other than their owner, and which tasks ran them.
fn foreign_tasks(lines: &[&Value]) -> (usize, BTreeMap<String, usize>) {
    let mut tasks = BTreeMap::new();
    let mut foreign = 0;
    for l in lines {
        *tasks
            .entry(format!("{} {}", l["pid"], l["comm"]))
            .or_insert(0) += 1;
        if l["pid"].as_u64() != owner_pid(l) {
            foreign += 1;
        }
    }
    (foreign, tasks)
}

/// Waits for each peer's burst (`done`), maps its local ports to its pid.
fn ports_by_pid(peers: &mut [Peer]) -> HashMap<u16, u32> {
    let mut by_port = HashMap::new();
    for p in peers {
        let pid = p.started().expect("nd-peer pid");
        p.expect("done").expect("nd-peer burst");
        assert_eq!(p.ports.len(), CONNECTS, "ports of nd-peer {pid}");
        for port in &p.ports {
            assert!(by_port.insert(*port, pid).is_none(), "port {port} twice");
        }
    }
    by_port
}

fn reap(peers: &mut [Peer]) {
    for p in peers {
        p.close_stdin();
        let status = p.wait(PEER_EXIT).expect("nd-peer exit");
        assert!(status.success(), "nd-peer {}: {status}", p.pid());
    }
}

#[test]
fn queue_full_drops_belong_to_each_client_process() {
    let _serial = lock();
    if !require_root("queue_full_drops_belong_to_each_client_process") {
        return;
    }
    let sc = NeighQueueFull::setup().expect("setup");
    let nd = Netdrop::start(&[]).expect("starting netdrop");
    let before = arp_cache().unwrap();
    let (target, port) = (sc.target.to_string(), neigh::PORT.to_string());
    let n = CONNECTS.to_string();
    let args = ["tcp-burst", &target, &port, &n, HOLD_MS];
    // Three clients at about the same time, each a burst of SYNs into a queue
    // that holds one packet: each SYN evicts the one queued before it.
    let mut peers: Vec<Peer> = (0..3)
        .map(|_| Peer::spawn(PEER, &sc.a, &args).expect("spawning nd-peer"))
        .collect();
    let by_port = ports_by_pid(&mut peers);
    // The 1 s SYN retransmissions (timers, softirq) evict queued SYNs as well.
    std::thread::sleep(Duration::from_millis(1300));
    settle();
    let after = arp_cache().unwrap();
    // Stopped while the clients still hold their sockets.
    let out = nd.stop().expect("stopping netdrop");
    reap(&mut peers);
    out.assert_clean_exit();

    let kernel = delta(&before, &after, "unresolved_discards");
    let lines = queue_full_lines(&out);
    // 12 SYNs, and only the last one queued escapes the burst: >= 3 per client.
    assert!(
        kernel >= 3 * CONNECTS as u64 - 1,
        "unresolved_discards {kernel}"
    );
    if out.lost_events() == 0 {
        assert_eq!(lines.len() as u64, out.cause("neigh_queue_full"), "lines");
        assert_eq!(out.cause("neigh_queue_full"), kernel, "causes = kernel");
    }
    let (foreign, tasks) = foreign_tasks(&lines);
    let note = format!(
        "{foreign} of {} {QUEUEFULL} lines ran in a task other than their owner; \
         current tasks: {tasks:?}; clients (port -> pid): {by_port:?}",
        lines.len()
    );
    eprintln!("{note}");
    for l in &lines {
        assert_drop_line_shape(l);
        assert_eq!(l["socket"], "skb", "the victim's own socket: {l}\n{note}");
        assert!(l["socket_ino"].is_u64(), "socket_ino: {l}");
        assert_eq!(l["netns"], json!(sc.a.inode()), "{l}");
        assert_eq!(l["l4"], "tcp", "{l}");
        assert_eq!(l["dport"], json!(neigh::PORT), "{l}");
        let sport = l["sport"].as_u64().unwrap_or_default() as u16;
        let want = by_port
            .get(&sport)
            .unwrap_or_else(|| panic!("sport of no client: {l}\n{note}"));
        assert_eq!(owner_pid(l), Some(u64::from(*want)), "owner: {l}\n{note}");
        assert_eq!(l["owner"]["comm"], PEER_COMM, "{l}");
    }
    for p in &peers {
        let own = lines
            .iter()
            .filter(|l| owner_pid(l) == Some(u64::from(p.pid())))
            .count();
        assert!(
            own >= CONNECTS - 1,
            "nd-peer {}: {own} lines\n{note}",
            p.pid()
        );
    }
    if foreign == 0 {
        skip_loudly(&format!(
            "queue_full_drops_belong_to_each_client_process: no eviction ran outside its \
             owner's context this time ({note})"
        ));
    }
}

#[test]
fn accept_overflow_names_the_listener_process() {
    let _serial = lock();
    if !require_root("accept_overflow_names_the_listener_process") {
        return;
    }
    let sc = AcceptOverflow::setup().expect("setup");
    let nd = Netdrop::start(&[]).expect("starting netdrop");
    // The listener lives in this process (a thread that joined ns S).
    let run = sc.generate().expect("traffic");
    settle();
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();

    let me = u64::from(std::process::id());
    let lines: Vec<&Value> = out
        .drops()
        .into_iter()
        .filter(|l| l["reason"] == "TCP_LISTEN_OVERFLOW")
        .collect();
    let by_fusion = out.summary()["from_other"]["accept_queue_full"]
        .as_u64()
        .unwrap_or(0);
    if lines.is_empty() && by_fusion > 0 {
        // 6.13 and older: no TCP_LISTEN_OVERFLOW reason, so no line is an
        // overflow of its own; ListenOverflows classifies them in the totals.
        eprintln!(
            "SKIP accept_overflow_names_the_listener_process: this kernel frees refused ACKs without a reason \
             ({by_fusion} classified by ListenOverflows, no per-ACK line names a listener)"
        );
        return;
    }
    assert!(!lines.is_empty(), "no TCP_LISTEN_OVERFLOW line: {run:?}");
    let (foreign, tasks) = foreign_tasks(&lines);
    eprintln!(
        "{foreign} of {} TCP_LISTEN_OVERFLOW lines ran outside this process ({me}); tasks: {tasks:?}",
        lines.len()
    );
    for l in &lines {
        assert_eq!(l["socket"], "rx_sk", "the listener: {l}");
        assert!(l["socket_ino"].is_u64(), "socket_ino: {l}");
        assert_eq!(owner_pid(l), Some(me), "the listener's owner: {l}");
        assert_eq!(l["dport"], json!(AcceptOverflow::PORT), "{l}");
    }
}

#[test]
fn pid_filter_shows_only_that_process() {
    let _serial = lock();
    if !require_root("pid_filter_shows_only_that_process") {
        return;
    }
    let sc = NeighQueueFull::setup().expect("setup");
    let (target, port) = (sc.target.to_string(), neigh::PORT.to_string());
    let n = CONNECTS.to_string();
    let args = ["tcp-wait", &target, &port, &n, HOLD_MS];
    let mut peers: Vec<Peer> = (0..2)
        .map(|_| Peer::spawn(PEER, &sc.a, &args).expect("spawning nd-peer"))
        .collect();
    for p in &mut peers {
        p.started().expect("nd-peer pid");
        p.expect("ready").expect("nd-peer ready");
    }
    let (one, two) = (peers[0].pid(), peers[1].pid());
    let nd = Netdrop::start(&["--pid", &one.to_string()]).expect("starting netdrop --pid");
    let before = arp_cache().unwrap();
    // Their sockets are created after netdrop started. Bursts one after the
    // other, two -> one -> two: the last SYN of two's first burst is evicted by
    // one's first SYN (a drop of `two` in one's context, not shown), and one's
    // last SYN by two's second burst (a drop of `one` in two's context, shown).
    for i in [1, 0, 1] {
        peers[i].send_line("go").expect("go");
        peers[i].expect("done").expect("nd-peer burst");
    }
    settle();
    let after = arp_cache().unwrap();
    let out = nd.stop().expect("stopping netdrop");
    reap(&mut peers);
    out.assert_clean_exit();

    let ports_one = &peers[0].ports;
    let ports_two = &peers[1].ports;
    let kernel = delta(&before, &after, "unresolved_discards");
    for l in out.drops() {
        for key in ["sport", "dport"] {
            let p = l[key].as_u64().unwrap_or(0) as u16;
            assert!(!ports_two.contains(&p), "a drop of {two} shown: {l}");
        }
        match l["scope"].as_str() {
            Some("process") => assert_eq!(owner_pid(l), Some(u64::from(one)), "{l}"),
            Some("netns") => {
                assert!(l["socket"].is_null() && l["owner"].is_null(), "{l}");
                assert_eq!(l["netns"], json!(sc.a.inode()), "another netns: {l}");
            }
            _ => panic!("scope must be process or netns: {l}"),
        }
    }
    let lines = queue_full_lines(&out);
    for l in &lines {
        assert_eq!(l["scope"], "process", "{l}");
        assert_eq!(l["socket"], "skb", "{l}");
        let sport = l["sport"].as_u64().unwrap_or(0) as u16;
        assert!(ports_one.contains(&sport), "not a port of {one}: {l}");
    }
    let mut seen: Vec<u16> = lines
        .iter()
        .filter_map(|l| l["sport"].as_u64())
        .map(|p| p as u16)
        .collect();
    seen.sort_unstable();
    seen.dedup();
    let mut want = ports_one.clone();
    want.sort_unstable();
    assert_eq!(seen, want, "every SYN of {one} is evicted once at least");
    assert!(
        lines.iter().any(|l| l["pid"] == json!(two)),
        "the SYN of {one} evicted by {two} (in {two}'s context) is {one}'s drop: {lines:?}"
    );
    assert_eq!(ports_two.len(), 2 * CONNECTS, "two bursts of {two}");
    assert!(
        kernel >= 3 * CONNECTS as u64 - 1 && kernel > lines.len() as u64,
        "{two}'s drops happened ({kernel} in all) but are not shown"
    );
    if out.lost_events() == 0 {
        assert_eq!(out.cause("neigh_queue_full"), lines.len() as u64, "summary");
    }
    for cause in ["neigh_table_overflow", "accept_queue_full", "rp_filter"] {
        assert_eq!(out.cause(cause), 0, "summary.causes.{cause} under --pid");
    }
}

#[test]
fn socket_opened_before_netdrop_is_attributed() {
    let _serial = lock();
    if !require_root("socket_opened_before_netdrop_is_attributed") {
        return;
    }
    let sc = NeighQueueFull::setup().expect("setup");
    let (src, target) = (NeighQueueFull::SRC.to_string(), sc.target.to_string());
    let port = neigh::PORT.to_string();
    let args = ["udp-wait", &src, &target, &port, "8"];
    let mut p = Peer::spawn(PEER, &sc.a, &args).expect("spawning nd-peer");
    let pid = p.started().expect("nd-peer pid");
    let local: u16 = p.expect("ready").unwrap().parse().unwrap();
    let inodes = p.socket_inodes().unwrap();
    assert!(!inodes.is_empty(), "nd-peer {pid} has no socket");
    let nd = Netdrop::start(&[]).expect("starting netdrop");
    let before = arp_cache().unwrap();
    p.send_line("go").unwrap();
    assert_eq!(p.expect("sent").unwrap(), "8", "datagrams sent");
    settle();
    let after = arp_cache().unwrap();
    let out = nd.stop().expect("stopping netdrop");
    reap(std::slice::from_mut(&mut p));
    out.assert_clean_exit();

    let kernel = delta(&before, &after, "unresolved_discards");
    assert_eq!(kernel, 7, "8 datagrams into a one-packet queue");
    let lines = queue_full_lines(&out);
    if out.lost_events() == 0 {
        assert_eq!(lines.len() as u64, kernel, "one line per eviction");
    }
    for l in &lines {
        assert_eq!(l["sport"], json!(local), "{l}");
        assert_eq!(l["l4"], "udp", "{l}");
        assert_eq!(l["socket"], "skb", "{l}");
        assert_eq!(owner_pid(l), Some(u64::from(pid)), "owner: {l}");
        assert_eq!(l["owner"]["comm"], PEER_COMM, "{l}");
        let ino = l["socket_ino"].as_u64().unwrap_or_else(|| panic!("{l}"));
        assert!(inodes.contains(&ino), "not {pid}'s socket {inodes:?}: {l}");
        assert_eq!(l["uid"], json!(0), "root's socket: {l}");
    }
}

#[test]
fn pid_filter_errors() {
    let _serial = lock();
    if !require_root("pid_filter_errors") {
        return;
    }
    let args = ["watch", "--output", "json", "--duration", "5"];
    let missing = "999999999";
    let r = run_netdrop(
        &[&args[..], &["--pid", missing]].concat(),
        Duration::from_secs(30),
    )
    .expect("running netdrop");
    assert!(
        !r.status.success(),
        "--pid {missing} succeeded: {}",
        r.stderr
    );
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("netdrop: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line; stderr:\n{}", r.stderr);
    assert!(
        errors[0].contains("no process") && errors[0].contains(missing),
        "{errors:?}"
    );

    // A process that exits during the watch ends it: exit 0, with the summary.
    let sc = NeighQueueFull::setup().expect("setup");
    let (src, target) = (NeighQueueFull::SRC.to_string(), sc.target.to_string());
    let port = neigh::PORT.to_string();
    let mut p = Peer::spawn(PEER, &sc.a, &["udp-wait", &src, &target, &port, "1"])
        .expect("spawning nd-peer");
    let pid = p.started().expect("nd-peer pid");
    p.expect("ready").unwrap();
    let duration = 30;
    let nd = Netdrop::start(&[
        "--pid",
        &pid.to_string(),
        "--duration",
        &duration.to_string(),
    ])
    .expect("starting netdrop --pid");
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    p.close_stdin(); // EOF before "go": it exits without sending
    assert!(p.wait(PEER_EXIT).expect("nd-peer exit").success());
    let out = nd
        .wait_exit(Duration::from_secs(10))
        .expect("netdrop must stop by itself when the process exits");
    let took = t0.elapsed();
    out.assert_clean_exit();
    assert!(took < Duration::from_secs(duration / 3), "took {took:?}");
    assert!(
        out.stderr.contains(&format!("process {pid} exited")),
        "stderr:\n{}",
        out.stderr
    );
}
