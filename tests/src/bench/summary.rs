//! The runs of each row (`--repeat N`: N rounds over all rows) folded into one
//! line per tracer: the median storm rate, ns/drop and agent CPU over the runs
//! that measured them, the largest peak RSS, counts summed over the runs (exact
//! only when every run was), and each row's floor: the empty program on the
//! same kfree_skb hook.

use std::collections::BTreeSet;

use super::parse::Hook;
use super::rows::{Row, Tracer};

/// The median (the mean of the middle two for an even count); None when empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// All runs of one tracer, in the order they ran.
#[derive(Debug, Clone)]
pub struct Summary {
    pub tracer: Tracer,
    pub runs: Vec<Row>,
}

/// Groups rows by tracer, in [`Tracer::ALL`] order (tracers without a run are left out).
pub fn summarize(rows: Vec<Row>) -> Vec<Summary> {
    let mut out: Vec<Summary> = Tracer::ALL
        .iter()
        .map(|&tracer| Summary {
            tracer,
            runs: Vec::new(),
        })
        .collect();
    for r in rows {
        if let Some(s) = out.iter_mut().find(|s| s.tracer == r.tracer) {
            s.runs.push(r);
        }
    }
    out.retain(|s| !s.runs.is_empty());
    out
}

/// The summary of tracer `t`, if it ran.
pub fn find(sums: &[Summary], t: Tracer) -> Option<&Summary> {
    sums.iter().find(|s| s.tracer == t)
}

impl Summary {
    pub fn label(&self) -> &'static str {
        self.tracer.label()
    }

    fn med(&self, f: impl Fn(&Row) -> Option<f64>) -> Option<f64> {
        median(self.runs.iter().filter_map(f).collect())
    }

    /// Some(sum) only when every run has the value.
    fn sum(&self, f: impl Fn(&Row) -> Option<u64>) -> Option<u64> {
        self.runs.iter().map(f).sum()
    }

    /// The distinct kfree_skb hooks its runs reported.
    pub fn hooks(&self) -> BTreeSet<Hook> {
        self.runs.iter().filter_map(|r| r.hook).collect()
    }

    /// The hook, when its runs agree on one.
    pub fn hook(&self) -> Option<Hook> {
        let h = self.hooks();
        if h.len() == 1 {
            h.first().copied()
        } else {
            None
        }
    }

    /// "raw_tp", "tracepoint", "-" (none) or "mixed" (the runs disagree).
    pub fn hook_label(&self) -> &'static str {
        match (self.hook(), self.hooks().len()) {
            (Some(h), _) => h.label(),
            (None, 0) => "-",
            (None, _) => "mixed",
        }
    }

    /// Median storm rate, datagrams/s.
    pub fn rate(&self) -> Option<f64> {
        self.med(|r| r.storm.as_ref().map(|s| s.rate))
    }

    /// (min, max) storm rate over the runs.
    pub fn rate_range(&self) -> Option<(f64, f64)> {
        let v: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| r.storm.as_ref().map(|s| s.rate))
            .collect();
        let min = v.iter().copied().reduce(f64::min)?;
        let max = v.iter().copied().reduce(f64::max)?;
        Some((min, max))
    }

    /// How many runs have a storm rate.
    pub fn rate_runs(&self) -> usize {
        self.runs.iter().filter(|r| r.storm.is_some()).count()
    }

    pub fn ns_per_drop(&self) -> Option<f64> {
        self.med(|r| r.ns_per_drop)
    }

    pub fn cpu_pct(&self) -> Option<f64> {
        self.med(|r| r.cpu_pct)
    }

    /// The largest peak RSS of its runs, KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.runs.iter().filter_map(|r| r.peak_rss_kib).max()
    }

    /// The kernel's count of the storms' drops, summed over the runs.
    pub fn kernel_count(&self) -> Option<u64> {
        self.sum(Row::kernel_count)
    }

    pub fn counted(&self) -> Option<u64> {
        self.sum(|r| r.counted)
    }

    pub fn counted_all(&self) -> Option<u64> {
        self.sum(|r| r.counted_all)
    }

    pub fn events_read(&self) -> Option<u64> {
        self.sum(|r| r.events.as_ref()?.events_read)
    }

    pub fn sampled(&self) -> Option<u64> {
        self.sum(|r| r.events.as_ref()?.sampled)
    }

    pub fn lost(&self) -> Option<u64> {
        self.sum(|r| r.events.as_ref()?.lost)
    }

    /// Median size of its recordings, bytes.
    pub fn file_bytes(&self) -> Option<f64> {
        self.med(|r| r.file_bytes.map(|b| b as f64))
    }

    /// Exact in every run (Some(false) as soon as one run is not; None when a
    /// run could not tell and none was inexact).
    pub fn exact(&self) -> Option<bool> {
        let e: Vec<Option<bool>> = self.runs.iter().map(Row::exact).collect();
        if e.contains(&Some(false)) {
            Some(false)
        } else {
            e.into_iter().collect::<Option<Vec<bool>>>().map(|_| true)
        }
    }

    /// (exact runs, runs)
    pub fn exact_runs(&self) -> (usize, usize) {
        let n = self.runs.iter().filter(|r| r.exact() == Some(true)).count();
        (n, self.runs.len())
    }

    /// Its runs' notes, prefixed with the run number when there are several.
    pub fn notes(&self) -> Vec<String> {
        let many = self.runs.len() > 1;
        self.runs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let n = r.note.as_ref()?.replace('\n', " ");
                Some(if many {
                    format!("run {}: {n}", i + 1)
                } else {
                    n
                })
            })
            .collect()
    }
}

/// The ns/drop of the empty program on `hook`.
pub fn empty_ns(sums: &[Summary], hook: Hook) -> Option<f64> {
    find(sums, Tracer::empty_on(hook))?.ns_per_drop()
}

/// A row's floor: the ns/drop of the empty program on the same hook as its own.
pub fn floor(sums: &[Summary], s: &Summary) -> Option<f64> {
    empty_ns(sums, s.hook()?)
}

/// `a / b` when both are known and b > 0.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Rows as a measurement leaves them, for the tests here and in `report`.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::storm::{Report, Via};

    /// A row of tracer `t` whose measured storm ran at `rate` with `kernel`
    /// drops (one of them the warm-up's), followed by a stats storm of no
    /// drops; the tracer counted `counted`.
    pub(crate) fn row(t: Tracer, rate: f64, ns: Option<f64>, kernel: u64, counted: u64) -> Row {
        let mut r = Row::new(t);
        r.storm = Some(Report {
            sent: 0,
            seconds: 1.0,
            rate,
            kernel_drops: kernel - 1,
            setup_drops: 1,
            threads: 2,
            via: Via::Veth,
        });
        // The stats storm after it: drops of its own, counted by the tracer too.
        let mut stats = r.storm.clone().unwrap();
        (stats.kernel_drops, stats.setup_drops) = (0, 0);
        r.stats_storm = Some(stats);
        r.ns_per_drop = ns;
        r.counted = Some(counted);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::row;
    use super::*;
    use crate::bench::parse::NetdropCounts;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0]), Some(3.0));
        assert_eq!(median(vec![5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 10.0]), Some(3.5));
    }

    #[test]
    fn rounds_fold_into_one_line_per_tracer_in_table_order() {
        let mut rows = Vec::new();
        for round in 0..3 {
            let k = round as f64;
            rows.push(row(Tracer::Baseline, 100.0 + k, None, 10, 0));
            rows.push(row(Tracer::Record, 90.0 - k, Some(50.0 + k), 10, 10));
            rows.push(row(Tracer::EmptyRaw, 98.0, Some(10.0 * (k + 1.0)), 10, 10));
        }
        rows[7].counted = Some(9); // round 2's record: one short
        let sums = summarize(rows);
        let order: Vec<Tracer> = sums.iter().map(|s| s.tracer).collect();
        assert_eq!(
            order,
            [Tracer::Baseline, Tracer::EmptyRaw, Tracer::Record],
            "Tracer::ALL order, only those that ran"
        );
        let base = find(&sums, Tracer::Baseline).unwrap();
        assert_eq!(base.rate(), Some(101.0));
        assert_eq!(base.rate_range(), Some((100.0, 102.0)));
        assert_eq!((base.rate_runs(), base.ns_per_drop()), (3, None));
        assert_eq!(base.hook_label(), "-");
        let rec = find(&sums, Tracer::Record).unwrap();
        assert_eq!((rec.rate(), rec.ns_per_drop()), (Some(89.0), Some(51.0)));
        assert_eq!((rec.kernel_count(), rec.counted()), (Some(30), Some(29)));
        assert_eq!(rec.exact(), Some(false));
        assert_eq!(rec.exact_runs(), (2, 3));
        assert_eq!(find(&sums, Tracer::EmptyRaw).unwrap().exact(), Some(true));
        assert_eq!(
            find(&sums, Tracer::EmptyRaw).unwrap().ns_per_drop(),
            Some(20.0)
        );
        // A missing value in one run: no sum; medians over the runs that have it.
        let mut r = row(Tracer::Watch, 80.0, Some(40.0), 10, 10);
        r.events = Some(NetdropCounts {
            lost: Some(2),
            ..Default::default()
        });
        let mut failed = Row::new(Tracer::Watch);
        failed.note = Some("failed: x\ny".into());
        let w = &summarize(vec![r, failed])[0];
        assert_eq!((w.counted(), w.lost(), w.exact()), (None, None, None));
        assert_eq!((w.rate(), w.ns_per_drop()), (Some(80.0), Some(40.0)));
        assert_eq!(w.notes(), ["run 2: failed: x y"]);
    }

    #[test]
    fn each_row_is_compared_with_the_empty_program_on_its_own_hook() {
        let mut rows = vec![
            row(Tracer::EmptyTp, 95.0, Some(40.0), 1, 1),
            row(Tracer::EmptyRaw, 98.0, Some(20.0), 1, 1),
            row(Tracer::Bpftrace, 90.0, Some(100.0), 1, 1),
            row(Tracer::Watch, 97.0, Some(50.0), 1, 1),
            row(Tracer::WatchTp, 93.0, Some(80.0), 1, 1),
            row(Tracer::Record, 97.0, Some(60.0), 1, 1),
        ];
        rows[3].hook = Some(Hook::RawTp);
        rows[4].hook = Some(Hook::Tracepoint);
        // A kernel without the raw tracepoint: record fell back to the tracepoint.
        rows[5].hook = Some(Hook::Tracepoint);
        let sums = summarize(rows);
        let fl = |t| floor(&sums, find(&sums, t).unwrap());
        assert_eq!(fl(Tracer::EmptyTp), Some(40.0));
        assert_eq!(fl(Tracer::EmptyRaw), Some(20.0));
        assert_eq!(fl(Tracer::Bpftrace), Some(40.0));
        assert_eq!(fl(Tracer::Watch), Some(20.0));
        assert_eq!(fl(Tracer::WatchTp), Some(40.0));
        assert_eq!(fl(Tracer::Record), Some(40.0));
        assert_eq!(empty_ns(&sums, Hook::Tracepoint), Some(40.0));
        let w = find(&sums, Tracer::Watch).unwrap();
        assert_eq!(ratio(w.ns_per_drop(), fl(Tracer::Watch)), Some(2.5));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        // No hook (baseline), or runs that disagree: no floor.
        let mut a = Row::new(Tracer::Watch);
        a.hook = Some(Hook::RawTp);
        let mut b = Row::new(Tracer::Watch);
        b.hook = Some(Hook::Tracepoint);
        let mixed = &summarize(vec![a, b])[0];
        assert_eq!((mixed.hook(), mixed.hook_label()), (None, "mixed"));
        assert_eq!(floor(&sums, mixed), None);
    }
}
