//! `netdrop hist` against real drops and real neighbour resolution: the drop
//! rates and bursts of an unresolved-queue overflow, the latency of a neighbour
//! that answers (REACHABLE in microseconds) and of one that never does (FAILED
//! after the kernel's ARP retries), and `replay --hist` of a recording of the
//! same run giving the same distributions. Needs root; one at a time.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use serde_json::Value;

use netdrop_tests::cmd::TempDir;
use netdrop_tests::neigh::{NeighQueueFull, PORT};
use netdrop_tests::netdrop::run_netdrop;
use netdrop_tests::traffic::udp_send_each;
use netdrop_tests::{Netdrop, lock, require_root, settle};

/// ARP gives up after mcast_solicit (3) probes retrans_time_ms (1 s) apart.
const FAIL_AFTER: Duration = Duration::from_millis(4500);

fn dist<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

#[test]
fn hist_shows_rates_bursts_and_neighbour_resolution() {
    let _serial = lock();
    if !require_root("hist_shows_rates_bursts_and_neighbour_resolution") {
        return;
    }
    let dir = TempDir::new().expect("temp dir");
    let hgrm = dir.path().join("hgrm");
    let file = dir.path().join("hist.ndr");
    let sc = NeighQueueFull::setup().expect("setup");
    let hist =
        Netdrop::start_command(&["hist", "--output", "json", "--hgrm", hgrm.to_str().unwrap()])
            .expect("starting netdrop hist");
    let rec = Netdrop::start_command(&["record", "--output", file.to_str().unwrap()])
        .expect("starting netdrop record");
    // A neighbour that answers: B's address, resolved in microseconds.
    let b = SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 2), PORT);
    udp_send_each(&sc.a, Some(NeighQueueFull::SRC), &[b]).expect("traffic to B");
    // One that never does, with its queue overflowing: 15 drops in one burst.
    sc.generate().expect("traffic");
    settle();
    std::thread::sleep(FAIL_AFTER);
    let rec_out = rec.stop().expect("stopping record");
    let out = hist.stop().expect("stopping hist");
    drop(sc);
    assert!(out.status.success(), "hist: {}", out.stderr);
    assert!(rec_out.status.success(), "record: {}", rec_out.stderr);
    assert!(out.garbage.is_empty(), "{:?}", out.garbage);

    assert_eq!(out.lines.len(), 1, "one JSON document: {:?}", out.lines);
    let h = &out.lines[0];
    eprintln!("hist: {h}");
    let nq = &h["causes"]["neigh_queue_full"];
    assert_eq!(nq["drops"], NeighQueueFull::EXPECTED_DROPS, "{nq}");
    assert_eq!(
        dist(nq, &["burst_len", "count"]),
        1,
        "sends microseconds apart are one burst: {nq}"
    );
    assert_eq!(
        dist(nq, &["burst_len", "max"]),
        NeighQueueFull::EXPECTED_DROPS,
        "{nq}"
    );
    // Per-second rates come from the exact counters: they add up to the drops.
    let per_interval: u64 = h["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["drops"]["neigh_queue_full"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(per_interval, NeighQueueFull::EXPECTED_DROPS);
    assert!(dist(nq, &["drops_per_sec", "count"]).as_u64().unwrap() >= 4);
    assert!(dist(nq, &["drops_per_sec", "max"]).as_u64().unwrap() >= 8);
    assert_eq!(
        dist(nq, &["drops_per_sec", "min"]),
        0,
        "quiet seconds after the burst are samples: {nq}"
    );

    let reach = &h["neigh_resolution_us"]["reachable"];
    assert!(reach["count"].as_u64().unwrap() >= 1, "{h}");
    assert!(
        reach["max"].as_u64().unwrap() < 500_000,
        "B answers at once: {reach}"
    );
    let failed = &h["neigh_resolution_us"]["failed"];
    assert!(failed["count"].as_u64().unwrap() >= 1, "{h}");
    let p50 = failed["p50"].as_u64().unwrap();
    assert!(
        (1_500_000..4_500_000).contains(&p50),
        "FAILED after the ARP retries (~3 s): {failed}"
    );

    let text =
        std::fs::read_to_string(hgrm.join("neigh_resolution_ms.failed.hgrm")).expect("hgrm file");
    assert!(
        text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"),
        "{text}"
    );
    assert!(text.contains("#[Buckets"), "{text}");

    // The recording of the same run gives the same distributions of events.
    let r = run_netdrop(
        &[
            "replay",
            file.to_str().unwrap(),
            "--hist",
            "--output",
            "json",
        ],
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(r.status.success(), "{}", r.stderr);
    let replayed: Value = serde_json::from_str(r.stdout.trim()).expect("hist JSON");
    assert_eq!(
        replayed["causes"]["neigh_queue_full"]["burst_len"],
        nq["burst_len"]
    );
    assert_eq!(replayed["causes"]["neigh_queue_full"]["drops"], nq["drops"]);
    assert_eq!(
        replayed["neigh_resolution_us"]["failed"]["count"],
        failed["count"]
    );
    assert_eq!(
        replayed["neigh_resolution_us"]["reachable"]["count"],
        reach["count"]
    );
    // And the human view draws the chart.
    let r = run_netdrop(
        &["replay", file.to_str().unwrap(), "--hist"],
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(r.status.success(), "{}", r.stderr);
    assert!(
        r.stdout.contains("neigh_queue_full") && r.stdout.contains('█'),
        "{}",
        r.stdout
    );
}
