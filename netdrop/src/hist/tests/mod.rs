use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;

use super::*;

mod text;
use crate::classify::Cause::{AcceptQueueFull, NeighQueueFull, Other, RpFilter};

const MS: u64 = 1_000_000;

fn hists() -> Hists {
    Hists::new(HistConfig::default())
}

fn key(i: u32) -> NeighKey {
    NeighKey {
        dev: "eth0".to_string(),
        addr: IpAddr::V4(Ipv4Addr::from(i)),
    }
}

fn dist(count: u64, min: u64, p50: u64, p90: u64, p99: u64, max: u64, mean: f64) -> Dist {
    Dist {
        count,
        min,
        p50,
        p90,
        p99,
        max,
        mean,
    }
}

/// The tokens of the line of `text` that starts with `label`.
fn table_row(text: &str, label: &str) -> Vec<String> {
    let line = text
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no row {label:?} in\n{text}"));
    line[label.len()..]
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn default_burst_gap_is_100_ms() {
    assert_eq!(HistConfig::default().burst_gap_ns, 100 * MS);
}

#[test]
fn rates_count_quiet_intervals_only_after_a_cause_first_drops() {
    let mut h = hists();
    h.on_interval(1.0, 1.0, &[(RpFilter, 0)]); // nothing has dropped yet: no sample
    h.on_interval(2.0, 1.0, &[(NeighQueueFull, 10)]); // 10/s
    h.on_interval(3.0, 1.0, &[]); // quiet: 0/s for neigh_queue_full only
    h.on_interval(5.0, 2.0, &[(NeighQueueFull, 5), (RpFilter, 3)]); // 2.5 → 3/s, 1.5 → 2/s
    h.on_interval(6.0, 1.0, &[(NeighQueueFull, 1), (NeighQueueFull, 2)]); // listed twice: 3/s; rp 0/s

    let r = h.report();
    let nqf = &r.causes["neigh_queue_full"];
    // samples 10, 0, 3, 3
    assert_eq!(nqf.drops_per_sec, dist(4, 0, 3, 10, 10, 10, 4.0));
    assert_eq!(nqf.drops, 18);
    let rp = &r.causes["rp_filter"];
    // samples 2, 0: the intervals before its first drop are not samples
    assert_eq!(rp.drops_per_sec, dist(2, 0, 0, 2, 2, 2, 1.0));
    assert_eq!(rp.drops, 3);
    assert!(!r.causes.contains_key("accept_queue_full"));
    assert!(!r.causes.contains_key("other"));
    assert_eq!(r.interval_s, Some(2.0));

    assert_eq!(r.intervals.len(), 5);
    assert!(r.intervals[0].drops.is_empty());
    assert_eq!(
        r.intervals[2].drops,
        BTreeMap::from([("neigh_queue_full".to_string(), 0)])
    );
    assert_eq!(
        r.intervals[3].drops,
        BTreeMap::from([
            ("neigh_queue_full".to_string(), 5),
            ("rp_filter".to_string(), 3)
        ])
    );
    assert_eq!((r.intervals[3].at_s, r.intervals[3].secs), (5.0, 2.0));
}

#[test]
fn an_interval_without_duration_counts_drops_but_no_rate() {
    let mut h = hists();
    h.on_interval(1.0, 1.0, &[(Other, 7)]);
    h.on_interval(1.0, 0.0, &[(Other, 5)]);
    h.on_interval(1.0, f64::NAN, &[(Other, 5)]);
    h.on_interval(1.0, -1.0, &[(Other, 5)]);
    let r = h.report();
    assert_eq!(r.causes["other"].drops_per_sec, dist(1, 7, 7, 7, 7, 7, 7.0));
    assert_eq!(r.causes["other"].drops, 22);
    assert_eq!(r.intervals.len(), 4);
    assert_eq!(r.interval_s, Some(1.0));
}

#[test]
fn intervals_kept_are_capped_but_rates_cover_the_whole_session() {
    let mut h = hists();
    for i in 0..3700 {
        h.on_interval(f64::from(i + 1), 1.0, &[(Other, 1)]);
    }
    let r = h.report();
    assert_eq!(r.intervals.len(), MAX_INTERVAL_ROWS);
    assert_eq!(r.intervals[0].at_s, 101.0);
    assert_eq!(r.intervals.last().unwrap().at_s, 3700.0);
    assert_eq!(r.intervals_omitted, 100);
    assert_eq!(r.causes["other"].drops_per_sec.count, 3700);
    assert_eq!(r.causes["other"].drops, 3700);
    assert_eq!(h.chart(4).lines().count(), MAX_INTERVAL_ROWS);
}

#[test]
fn bursts_split_exactly_at_the_gap() {
    let mut h = hists();
    for ms in [0, 10, 20, 500, 505] {
        h.on_drop(NeighQueueFull, ms * MS);
    }
    // the first burst closed at 500 ms; the second is still open
    assert_eq!(
        h.report().causes["neigh_queue_full"].burst_len,
        dist(1, 3, 3, 3, 3, 3, 3.0)
    );
    h.finish();
    assert_eq!(
        h.report().causes["neigh_queue_full"].burst_len,
        dist(2, 2, 2, 3, 3, 3, 2.5)
    );

    // a gap of exactly burst_gap_ns ends a burst; 1 ns less does not
    let mut h = hists();
    h.on_drop(RpFilter, 0);
    h.on_drop(RpFilter, 100 * MS);
    h.on_drop(RpFilter, 200 * MS - 1);
    h.finish();
    assert_eq!(
        h.report().causes["rp_filter"].burst_len,
        dist(2, 1, 1, 2, 2, 2, 1.5)
    );
}

#[test]
fn an_earlier_timestamp_continues_the_burst() {
    let mut h = hists();
    // 5 ms arrives after 10 ms (another CPU): same burst; the gap is then measured from 20 ms
    for ms in [0, 10, 5, 20, 119, 230] {
        h.on_drop(AcceptQueueFull, ms * MS);
    }
    h.finish();
    assert_eq!(
        h.report().causes["accept_queue_full"].burst_len,
        dist(2, 1, 1, 5, 5, 5, 3.0)
    );
}

#[test]
fn bursts_are_per_cause() {
    let mut h = hists();
    // interleaved causes do not break each other's bursts
    for ms in [0, 30, 60, 90] {
        h.on_drop(NeighQueueFull, ms * MS);
        h.on_drop(RpFilter, ms * MS + 1);
    }
    h.on_drop(RpFilter, 400 * MS);
    h.finish();
    h.finish(); // idempotent
    let r = h.report();
    assert_eq!(
        r.causes["neigh_queue_full"].burst_len,
        dist(1, 4, 4, 4, 4, 4, 4.0)
    );
    assert_eq!(r.causes["rp_filter"].burst_len, dist(2, 1, 1, 4, 4, 4, 2.5));
    // detail events alone give no rates and no counted drops
    assert_eq!(r.causes["rp_filter"].drops_per_sec, Dist::default());
    assert_eq!(r.causes["rp_filter"].drops, 0);
}

#[test]
fn idle_bursts_close_a_gap_after_their_last_drop() {
    let mut h = hists();
    h.on_drop(Other, 0);
    h.on_drop(Other, 50 * MS);
    h.close_idle_bursts(149 * MS); // 99 ms after the last drop: still open, not reported
    assert!(h.report().causes.is_empty());
    h.close_idle_bursts(150 * MS);
    assert_eq!(
        h.report().causes["other"].burst_len,
        dist(1, 2, 2, 2, 2, 2, 2.0)
    );
    h.on_drop(Other, 160 * MS); // a new burst, not the old one continued
    h.finish();
    assert_eq!(
        h.report().causes["other"].burst_len,
        dist(2, 1, 1, 2, 2, 2, 1.5)
    );
}

#[test]
fn neigh_resolution_pairs_create_with_first_resolution() {
    let mut h = hists();
    h.on_neigh_created(key(1), MS);
    h.on_neigh_created(key(2), 10 * MS);
    h.on_neigh_created(key(3), 0);
    h.on_neigh_resolved(&key(1), 2 * MS + 500_000, NeighOutcome::Reachable); // 1500 µs
    h.on_neigh_resolved(&key(1), 9 * MS, NeighOutcome::Reachable); // second update: ignored
    h.on_neigh_resolved(&key(1), 9 * MS, NeighOutcome::Failed); // also ignored
    h.on_neigh_resolved(&key(2), 11 * MS + 999, NeighOutcome::Failed); // 1000.999 µs → 1000
    h.on_neigh_resolved(&key(9), 5 * MS, NeighOutcome::Reachable); // never created: ignored
    let other_dev = NeighKey {
        dev: "eth1".to_string(),
        addr: key(3).addr,
    };
    h.on_neigh_resolved(&other_dev, 5 * MS, NeighOutcome::Reachable); // other device: ignored

    let n = h.report().neigh_resolution_us;
    assert_eq!(
        n.reachable,
        Some(dist(1, 1500, 1500, 1500, 1500, 1500, 1500.0))
    );
    assert_eq!(
        n.failed,
        Some(dist(1, 1000, 1000, 1000, 1000, 1000, 1000.0))
    );
    assert_eq!(n.pending, 1); // key(3)
    assert_eq!(n.evicted, 0);

    // created again: measured again, from the new creation
    h.on_neigh_created(key(1), 20 * MS);
    h.on_neigh_created(key(1), 21 * MS); // re-created before resolving: the clock restarts
    h.on_neigh_resolved(&key(1), 22 * MS, NeighOutcome::Reachable);
    // a resolution stamped before its creation (CPUs disagree) counts as 0 µs
    h.on_neigh_resolved(&key(3), 0, NeighOutcome::Failed);
    // 3 s is kept within HdrHistogram's 3 digits: 2 998 272..3 000 319 are one bucket
    h.on_neigh_created(key(4), 0);
    h.on_neigh_resolved(&key(4), 3_000 * MS, NeighOutcome::Failed);

    let n = h.report().neigh_resolution_us;
    let reachable = n.reachable.unwrap();
    assert_eq!(
        (reachable.count, reachable.min, reachable.max),
        (2, 1000, 1500)
    );
    let failed = n.failed.unwrap();
    assert_eq!((failed.count, failed.min, failed.p50), (3, 0, 1000));
    assert_eq!(failed.max, 3_000_319);
    assert_eq!(n.pending, 0);
}

#[test]
fn pending_neigh_entries_are_bounded_oldest_first() {
    let mut h = hists();
    let n = MAX_PENDING_NEIGH as u32;
    for i in 0..n + 10 {
        h.on_neigh_created(key(i), u64::from(i));
    }
    let r = h.report().neigh_resolution_us;
    assert_eq!((r.pending, r.evicted), (MAX_PENDING_NEIGH as u64, 10));
    // re-creating a pending entry does not evict another one
    h.on_neigh_created(key(20), 1_000_000);
    let r = h.report().neigh_resolution_us;
    assert_eq!((r.pending, r.evicted), (MAX_PENDING_NEIGH as u64, 10));

    for i in 0..10 {
        h.on_neigh_resolved(&key(i), 5_000_000, NeighOutcome::Reachable); // forgotten: ignored
    }
    assert_eq!(h.report().neigh_resolution_us.reachable, None);
    h.on_neigh_resolved(&key(10), 1_000_010, NeighOutcome::Reachable); // created at 10 ns
    h.on_neigh_resolved(&key(20), 2_500_000, NeighOutcome::Reachable); // re-created at 1 ms
    let r = h.report().neigh_resolution_us;
    assert_eq!(
        r.reachable,
        Some(dist(2, 1000, 1000, 1500, 1500, 1500, 1250.0))
    );
    assert_eq!(r.pending, MAX_PENDING_NEIGH as u64 - 2);

    // now key(11) is the oldest (10 was resolved, 20 re-created): two new entries fill
    // the map up again, the third evicts key(11), and only it
    h.on_neigh_created(key(n + 100), 0);
    h.on_neigh_created(key(n + 101), 0);
    h.on_neigh_created(key(n + 102), 0);
    let r = h.report().neigh_resolution_us;
    assert_eq!((r.pending, r.evicted), (MAX_PENDING_NEIGH as u64, 11));
    h.on_neigh_resolved(&key(11), 2_000_000, NeighOutcome::Failed);
    assert_eq!(h.report().neigh_resolution_us.failed, None);
    h.on_neigh_resolved(&key(12), 2_000_012, NeighOutcome::Failed);
    assert_eq!(
        h.report().neigh_resolution_us.failed.map(|d| d.max),
        Some(2000)
    );
}

#[test]
fn accept_queue_distribution_and_limit() {
    let mut h = hists();
    assert_eq!(h.report().accept_queue_at_drop, None);
    assert_eq!(h.report().accept_queue_limit, None);
    for q in [129, 129, 10, 129] {
        h.on_accept_queue(q, 128);
    }
    h.on_accept_queue(1025, 1024);
    h.on_accept_queue(5, 4);
    let r = h.report();
    // sorted: 5 10 129 129 129 1025
    let d = r.accept_queue_at_drop.unwrap();
    assert_eq!(
        (d.count, d.min, d.p50, d.p90, d.p99, d.max),
        (6, 5, 129, 1025, 1025, 1025)
    );

    assert_eq!(r.accept_queue_limit, Some(1024)); // the largest limit seen
}

#[test]
fn percentiles_of_one_to_a_hundred() {
    let mut h = hists();
    for v in 1..=100 {
        h.on_accept_queue(v, 100);
    }
    let d = h.report().accept_queue_at_drop.unwrap();
    assert_eq!(
        (d.count, d.min, d.p50, d.p90, d.p99, d.max),
        (100, 1, 50, 90, 99, 100)
    );
    assert!((d.mean - 50.5).abs() < 1e-9, "{}", d.mean);
}

#[test]
fn json_shape() {
    let mut h = hists();
    h.on_interval(1.0, 1.0, &[(NeighQueueFull, 4)]);
    h.on_interval(2.0, 1.0, &[]);
    h.on_drop(RpFilter, 0);
    h.on_drop(RpFilter, 1000);
    h.on_neigh_created(key(1), 0);
    h.on_neigh_resolved(&key(1), 1_500_000, NeighOutcome::Reachable);
    h.finish();

    let zeros = json!({"count": 0, "min": 0, "p50": 0, "p90": 0, "p99": 0, "max": 0, "mean": 0.0});
    let expected = json!({
        "interval_s": 1.0,
        "causes": {
            "neigh_queue_full": {
                "drops_per_sec": {"count": 2, "min": 0, "p50": 0, "p90": 4, "p99": 4, "max": 4, "mean": 2.0},
                "burst_len": zeros,
                "drops": 4
            },
            "rp_filter": {
                "drops_per_sec": zeros,
                "burst_len": {"count": 1, "min": 2, "p50": 2, "p90": 2, "p99": 2, "max": 2, "mean": 2.0},
                "drops": 0
            }
        },
        "neigh_resolution_us": {
            "reachable": {"count": 1, "min": 1500, "p50": 1500, "p90": 1500, "p99": 1500, "max": 1500, "mean": 1500.0},
            "failed": null,
            "pending": 0,
            "evicted": 0
        },
        "accept_queue_at_drop": null,
        "accept_queue_limit": null,
        "intervals": [
            {"at_s": 1.0, "secs": 1.0, "drops": {"neigh_queue_full": 4}},
            {"at_s": 2.0, "secs": 1.0, "drops": {"neigh_queue_full": 0}}
        ],
        "intervals_omitted": 0
    });
    assert_eq!(serde_json::to_value(h.report()).unwrap(), expected);

    let empty = serde_json::to_value(hists().report()).unwrap();
    assert_eq!(empty["interval_s"], json!(null));
    assert_eq!(empty["causes"], json!({}));
    assert_eq!(empty["intervals"], json!([]));
}

#[test]
fn no_input_panics() {
    let mut h = hists();
    h.on_interval(f64::NAN, 1e-300, &[(Other, u64::MAX), (Other, u64::MAX)]);
    h.on_interval(f64::INFINITY, f64::INFINITY, &[(Other, u64::MAX)]);
    h.on_interval(-1.0, f64::MIN_POSITIVE, &[(RpFilter, 1)]);
    h.on_drop(Other, u64::MAX);
    h.on_drop(Other, 0);
    h.on_drop(Other, u64::MAX);
    h.on_neigh_created(key(1), u64::MAX);
    h.on_neigh_resolved(&key(1), 0, NeighOutcome::Failed);
    h.on_neigh_created(key(2), 0);
    h.on_neigh_resolved(&key(2), u64::MAX, NeighOutcome::Reachable);
    h.on_accept_queue(u32::MAX, u32::MAX);
    h.close_idle_bursts(u64::MAX);
    h.finish();

    let r = h.report();
    assert_eq!(r.causes["other"].drops, u64::MAX);
    assert_eq!(r.causes["other"].drops_per_sec.count, 2); // u64::MAX/s (capped) and 0/s
    // recorded as MAX_VALUE, within the histogram's 3 digits
    let max = r.causes["other"].drops_per_sec.max;
    assert!(
        max >= MAX_VALUE && max - MAX_VALUE <= MAX_VALUE / 1000,
        "{max}"
    );
    assert!(r.neigh_resolution_us.reachable.as_ref().unwrap().max >= MAX_VALUE);
    assert!(serde_json::to_string(&r).is_ok());
    for width in [0, 1, 80, usize::MAX] {
        let row = h.chart_row(width).unwrap();
        assert!(row.chars().count() < 3 * MAX_BAR_WIDTH + 200);
        h.chart(width);
    }
    h.render();
    assert_eq!(h.hgrm().len(), 6);
}
