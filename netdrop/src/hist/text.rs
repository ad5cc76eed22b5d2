//! Histograms as text: the chart rows, the distribution table, the `.hgrm` files.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::*;

impl Hists {
    /// One chart row for the latest interval: time, then per cause that has ever dropped a
    /// bar scaled to the largest rate seen so far and the count, e.g.
    /// ` 12.0s  neigh_queue_full ████████▍        1534/s  rp_filter ▏ 3/s`.
    /// Eighth-block characters give the resolution; `width` = bar width in cells (at most
    /// [`MAX_BAR_WIDTH`]). A non-zero rate always shows at least an eighth. `None` before the
    /// first interval.
    pub fn chart_row(&self, width: usize) -> Option<String> {
        self.rows.back().map(|row| self.format_row(row, width))
    }

    /// The whole chart (the kept rows, one line each), for replay. All rows share one scale
    /// (the largest rate of the session) and the same columns (every cause that dropped).
    pub fn chart(&self, width: usize) -> String {
        let mut out = String::new();
        for row in &self.rows {
            out.push_str(&self.format_row(row, width));
            out.push('\n');
        }
        out
    }

    /// Human text: a table of distributions (rows: each cause's drops/s and burst length,
    /// neighbour resolution reachable/failed in ms, accept queue at drop) with columns count
    /// min p50 p90 p99 max. Empty distributions are left out.
    pub fn render(&self) -> String {
        let mut rows: Vec<(String, Vec<String>)> = Vec::new();
        for (cause, s) in &self.causes {
            if !s.drops_per_sec.is_empty() {
                rows.push((
                    format!("{} drops/s", cause.as_str()),
                    cells(&s.drops_per_sec, 1),
                ));
            }
            if !s.burst_len.is_empty() {
                rows.push((
                    format!("{} burst length", cause.as_str()),
                    cells(&s.burst_len, 1),
                ));
            }
        }
        if !self.reachable_us.is_empty() {
            rows.push((
                "neigh resolution → reachable (ms)".to_string(),
                cells(&self.reachable_us, 1000),
            ));
        }
        if !self.failed_us.is_empty() {
            rows.push((
                "neigh resolution → failed (ms)".to_string(),
                cells(&self.failed_us, 1000),
            ));
        }
        if !self.accept_queue.is_empty() {
            let label = match self.accept_limit {
                Some(limit) => format!("accept queue at drop (limit {limit})"),
                None => "accept queue at drop".to_string(),
            };
            rows.push((label, cells(&self.accept_queue, 1)));
        }

        // The labels are netdrop's own words and cause names today; escaped all
        // the same (text::safe), as everything printed for a terminal.
        for (label, _) in &mut rows {
            if let std::borrow::Cow::Owned(shown) = crate::text::safe(label) {
                *label = shown;
            }
        }
        let mut out = String::new();
        if rows.is_empty() {
            out.push_str("no drops recorded\n");
        } else {
            let header = ["count", "min", "p50", "p90", "p99", "max"];
            let label_w = rows
                .iter()
                .map(|(l, _)| l.chars().count())
                .max()
                .unwrap_or(0);
            let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
            for (_, c) in &rows {
                for (w, cell) in widths.iter_mut().zip(c) {
                    *w = (*w).max(cell.len());
                }
            }
            let line = |label: &str, values: &[String]| {
                let mut l = format!("{label:<label_w$}");
                for (v, w) in values.iter().zip(&widths) {
                    let _ = write!(l, "  {v:>w$}");
                }
                l.push('\n');
                l
            };
            let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
            out.push_str(&line("", &header));
            for (label, values) in &rows {
                out.push_str(&line(label, values));
            }
        }
        if !self.pending.is_empty() {
            let _ = writeln!(
                out,
                "neighbour entries still resolving: {}",
                self.pending.len()
            );
        }
        out
    }

    /// (file stem, `.hgrm` text) for every non-empty histogram, e.g.
    /// `("drops_per_sec.neigh_queue_full", text)`, `("burst_len.rp_filter", ..)`,
    /// `("neigh_resolution_ms.reachable", ..)` (value unit ratio 1000 from µs),
    /// `("accept_queue_at_drop", ..)`. See [`percentile_distribution`].
    pub fn hgrm(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (cause, s) in &self.causes {
            if !s.drops_per_sec.is_empty() {
                out.push((
                    format!("drops_per_sec.{}", cause.as_str()),
                    percentile_distribution(&s.drops_per_sec, 1.0),
                ));
            }
            if !s.burst_len.is_empty() {
                out.push((
                    format!("burst_len.{}", cause.as_str()),
                    percentile_distribution(&s.burst_len, 1.0),
                ));
            }
        }
        for (name, h) in [
            ("reachable", &self.reachable_us),
            ("failed", &self.failed_us),
        ] {
            if !h.is_empty() {
                out.push((
                    format!("neigh_resolution_ms.{name}"),
                    percentile_distribution(h, 1000.0),
                ));
            }
        }
        if !self.accept_queue.is_empty() {
            out.push((
                "accept_queue_at_drop".to_string(),
                percentile_distribution(&self.accept_queue, 1.0),
            ));
        }
        out
    }

    /// The chart line of `row`: see [`Hists::chart_row`].
    fn format_row(&self, row: &Row, width: usize) -> String {
        let width = width.min(MAX_BAR_WIDTH);
        let rate_w = self.max_rate.to_string().len();
        let mut line = format!("{:>5.1}s", row.at_s);
        for (cause, _) in self.causes.iter().filter(|(_, s)| s.seen) {
            let r = row.rate(*cause);
            let _ = write!(
                line,
                "  {} {} {r:>rate_w$}/s",
                cause.as_str(),
                bar(r, self.max_rate, width)
            );
        }
        line
    }
}

/// HdrHistogram's percentile distribution text (the `.hgrm` format of Java's
/// `AbstractHistogram.outputPercentileDistribution(out, 5, ratio)`, which HdrHistogram's
/// plotter reads): a header, a blank line, one row per percentile step (value / `ratio`,
/// percentile, count up to it, 1/(1−percentile)) and the mean/max/buckets footer.
///
/// As in Java the last row, at percentile 1.0, has no 1/(1−percentile) column (it would be
/// infinite). A `ratio` that is not a positive number is taken as 1.
pub fn percentile_distribution(h: &Histogram<u64>, ratio: f64) -> String {
    let ratio = if ratio.is_finite() && ratio > 0.0 {
        ratio
    } else {
        1.0
    };
    let digits = usize::from(h.sigfig());
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total: u64 = 0;
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total = total.saturating_add(v.count_since_last_iteration());
            let value = v.value_iterated_to() as f64 / ratio;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.digits$} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.digits$} {q:2.12} {total:10}");
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.digits$}, StdDeviation   = {:12.digits$}]",
        h.mean() / ratio,
        h.stdev() / ratio
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.digits$}, Total count    = {:12}]",
        h.max() as f64 / ratio,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_bucket_count(h.sigfig())
    );
    out
}

/// HdrHistogram's sub-bucket count for `sigfig` digits: the power of two that holds
/// 2 × 10^sigfig (2048 for 3 digits), as the crate computes it internally.
fn sub_bucket_count(sigfig: u8) -> u64 {
    let largest = 2 * 10_u64.pow(u32::from(sigfig.min(5)));
    largest.next_power_of_two()
}

/// The count, min, p50, p90, p99 and max of `h` as table cells; with `divisor` 1000 (µs shown
/// as ms) the values have 3 decimals.
fn cells(h: &Histogram<u64>, divisor: u64) -> Vec<String> {
    let d = Dist::of(h);
    let value = |v: u64| {
        if divisor == 1 {
            v.to_string()
        } else {
            format!("{:.3}", v as f64 / divisor as f64)
        }
    };
    let mut out = vec![d.count.to_string()];
    out.extend([d.min, d.p50, d.p90, d.p99, d.max].map(value));
    out
}

/// A bar of `width` cells for `value` out of `max`, in eighths of a cell, padded with spaces.
fn bar(value: u64, max: u64, width: usize) -> String {
    let cells = width as u128;
    let eighths = if max == 0 || value == 0 || cells == 0 {
        0
    } else {
        let e = (u128::from(value) * cells * 8 + u128::from(max) / 2) / u128::from(max);
        e.clamp(1, cells * 8)
    };
    let (full, part) = ((eighths / 8) as usize, (eighths % 8) as usize);
    let mut s = "█".repeat(full);
    let mut used = full;
    if part > 0 {
        s.push(EIGHTHS[part - 1]);
        used += 1;
    }
    s.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    s
}
