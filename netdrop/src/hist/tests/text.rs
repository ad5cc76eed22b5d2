//! The text outputs: `.hgrm` percentile distributions, the chart, the table.

use super::*;

#[test]
fn hgrm_of_one_value_is_exactly_hdrhistograms_text() {
    let mut h = hists();
    h.on_accept_queue(5, 8);
    let files = h.hgrm();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, "accept_queue_at_drop");
    let expected = "       Value     Percentile TotalCount 1/(1-Percentile)\n\
                    \n       5.000 0.000000000000          1           1.00\
                    \n       5.000 1.000000000000          1\
                    \n#[Mean    =        5.000, StdDeviation   =        0.000]\
                    \n#[Max     =        5.000, Total count    =            1]\
                    \n#[Buckets =            1, SubBuckets     =         2048]\n";
    assert_eq!(files[0].1, expected);
}

#[test]
fn hgrm_iterates_percentiles_up_to_the_max() {
    let mut h = hists();
    for v in 1..=100 {
        h.on_accept_queue(v, 100);
    }
    let text = &h.hgrm()[0].1;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "       Value     Percentile TotalCount 1/(1-Percentile)"
    );
    assert_eq!(lines[1], "");
    assert_eq!(
        lines[2],
        "       1.000 0.000000000000          1           1.00"
    );
    assert!(lines.contains(&"      50.000 0.500000000000         50           2.00"));
    assert!(lines.contains(&"      88.000 0.875000000000         88           8.00"));
    assert_eq!(
        lines[lines.len() - 5],
        "     100.000 0.990625000000        100         106.67"
    );
    assert_eq!(
        lines[lines.len() - 4],
        "     100.000 1.000000000000        100"
    );
    assert_eq!(
        lines[lines.len() - 3],
        "#[Mean    =       50.500, StdDeviation   =       28.866]"
    );
    assert_eq!(
        lines[lines.len() - 2],
        "#[Max     =      100.000, Total count    =          100]"
    );
    assert_eq!(
        *lines.last().unwrap(),
        "#[Buckets =            1, SubBuckets     =         2048]"
    );
    assert!(text.ends_with("]\n"));
    // every row between has the four columns; percentiles and counts never go down
    let rows: Vec<Vec<f64>> = lines[2..lines.len() - 4]
        .iter()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert!(rows.iter().all(|r| r.len() == 4));
    assert!(
        rows.windows(2)
            .all(|w| w[0][1] <= w[1][1] && w[0][2] <= w[1][2])
    );
}

#[test]
fn hgrm_files_and_the_ms_scale() {
    let mut h = hists();
    h.on_interval(1.0, 1.0, &[(NeighQueueFull, 3), (RpFilter, 1)]);
    h.on_drop(RpFilter, 0);
    h.on_neigh_created(key(1), 0);
    h.on_neigh_resolved(&key(1), 1_500_000, NeighOutcome::Reachable);
    h.on_neigh_created(key(2), 0);
    h.on_neigh_resolved(&key(2), 1_024_000, NeighOutcome::Failed);
    h.on_accept_queue(3, 4);
    h.finish();
    let files = h.hgrm();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "drops_per_sec.neigh_queue_full",
            "drops_per_sec.rp_filter",
            "burst_len.rp_filter",
            "neigh_resolution_ms.reachable",
            "neigh_resolution_ms.failed",
            "accept_queue_at_drop",
        ]
    );
    let reachable = &files[3].1;
    assert!(reachable.contains("\n       1.500 1.000000000000          1\n"));
    assert!(reachable.contains("#[Max     =        1.500, Total count    =            1]"));
    assert!(
        files[4]
            .1
            .contains("#[Mean    =        1.024, StdDeviation   =        0.000]")
    );
    assert!(hists().hgrm().is_empty());
}

#[test]
fn percentile_distribution_of_nothing_and_bad_ratios() {
    let h = Histogram::<u64>::new(3).unwrap();
    assert_eq!(
        percentile_distribution(&h, 1.0),
        "       Value     Percentile TotalCount 1/(1-Percentile)\n\n\
         #[Mean    =        0.000, StdDeviation   =        0.000]\n\
         #[Max     =        0.000, Total count    =            0]\n\
         #[Buckets =            1, SubBuckets     =         2048]\n"
    );
    let mut h = h;
    h.record(7).unwrap();
    for ratio in [0.0, -3.0, f64::NAN, f64::INFINITY] {
        assert!(percentile_distribution(&h, ratio).contains("\n       7.000 1.000000000000"));
    }
}

#[test]
fn chart_bars_are_proportional_to_rates() {
    let mut h = hists();
    assert_eq!(h.chart_row(8), None);
    assert_eq!(h.chart(8), "");
    h.on_interval(1.0, 1.0, &[(NeighQueueFull, 1000), (RpFilter, 250)]);
    let first = format!(
        "  1.0s  neigh_queue_full {} 1000/s  rp_filter {}{}  250/s",
        "█".repeat(8),
        "█".repeat(2),
        " ".repeat(6)
    );
    assert_eq!(h.chart_row(8).unwrap(), first);

    h.on_interval(2.0, 1.0, &[(NeighQueueFull, 500)]); // half: 4 cells; rp_filter quiet
    h.on_interval(3.0, 1.0, &[(NeighQueueFull, 70), (RpFilter, 1)]); // 4.48 eighths → ▌; ≥ ▏
    h.on_interval(12.0, 2.0, &[(NeighQueueFull, 250)]); // 125/s: one cell
    let second = format!(
        "  2.0s  neigh_queue_full {}{}  500/s  rp_filter {}    0/s",
        "█".repeat(4),
        " ".repeat(4),
        " ".repeat(8)
    );
    let third = format!(
        "  3.0s  neigh_queue_full ▌{}   70/s  rp_filter ▏{}    1/s",
        " ".repeat(7),
        " ".repeat(7)
    );
    let fourth = format!(
        " 12.0s  neigh_queue_full █{}  125/s  rp_filter {}    0/s",
        " ".repeat(7),
        " ".repeat(8)
    );
    assert_eq!(h.chart_row(8).unwrap(), fourth);
    assert_eq!(
        h.chart(8),
        format!("{first}\n{second}\n{third}\n{fourth}\n")
    );
}

#[test]
fn chart_scale_follows_the_largest_rate_and_new_causes_get_a_column() {
    let mut h = hists();
    h.on_interval(1.0, 1.0, &[(Other, 8)]);
    assert_eq!(h.chart_row(1).unwrap(), "  1.0s  other █ 8/s");
    h.on_interval(2.0, 1.0, &[(Other, 16), (NeighQueueFull, 2)]);
    // 8 of 16 with one cell: half a cell; earlier rows have the new column, empty
    assert_eq!(
        h.chart(1),
        "  1.0s  neigh_queue_full    0/s  other ▌  8/s\n\
         \x20 2.0s  neigh_queue_full ▏  2/s  other █ 16/s\n"
    );
    // width 0: no bars, still the numbers
    assert_eq!(
        h.chart_row(0).unwrap(),
        "  2.0s  neigh_queue_full   2/s  other  16/s"
    );
}

#[test]
fn render_table() {
    let mut h = hists();
    assert_eq!(h.render(), "no drops recorded\n");
    for (i, n) in [10, 0, 3, 3].into_iter().enumerate() {
        h.on_interval(i as f64 + 1.0, 1.0, &[(NeighQueueFull, n)]);
    }
    for ms in [0, 10, 20, 500, 505] {
        h.on_drop(NeighQueueFull, ms * MS);
    }
    h.on_neigh_created(key(1), 0);
    h.on_neigh_resolved(&key(1), 1_500_000, NeighOutcome::Reachable);
    h.on_neigh_created(key(2), 0);
    h.on_neigh_created(key(3), 0);
    h.on_neigh_resolved(&key(3), 1_000_000, NeighOutcome::Failed);
    h.on_accept_queue(129, 128);
    h.finish();

    let text = h.render();
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["count", "min", "p50", "p90", "p99", "max"]);
    assert_eq!(
        table_row(&text, "neigh_queue_full drops/s"),
        ["4", "0", "3", "10", "10", "10"]
    );
    assert_eq!(
        table_row(&text, "neigh_queue_full burst length"),
        ["2", "2", "2", "3", "3", "3"]
    );
    assert_eq!(
        table_row(&text, "neigh resolution → reachable (ms)"),
        ["1", "1.500", "1.500", "1.500", "1.500", "1.500"]
    );
    assert_eq!(
        table_row(&text, "neigh resolution → failed (ms)"),
        ["1", "1.000", "1.000", "1.000", "1.000", "1.000"]
    );
    assert_eq!(
        table_row(&text, "accept queue at drop (limit 128)"),
        ["1", "129", "129", "129", "129", "129"]
    );
    assert!(text.ends_with("neighbour entries still resolving: 1\n"));
    // columns line up: every table line is as wide as the header
    let widths: Vec<usize> = text.lines().take(6).map(|l| l.chars().count()).collect();
    assert!(widths.iter().all(|&w| w == widths[0]), "{widths:?}\n{text}");
}
