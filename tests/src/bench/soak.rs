//! The soak: one long storm with `netdrop watch -o json --interval 1` attached,
//! sampled every second.
//!
//! Per second: netdrop's VmRSS (/proc/PID/status), the storm's drops in that
//! second (`Udp: NoPorts` of the storm's namespace, read through one of
//! nd-storm's threads in /proc/PID/task/TID/net/snmp), and netdrop's cumulative
//! lost and sampled-out detail events from its latest `{"type":"tick"}` line
//! (read from its stdout pipe on a thread; every other line is thrown away).
//! RSS is called flat when its max − min after the first [`WARMUP_S`] seconds
//! is at most [`FLAT_KIB`].

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::parse::{self, Hook, NetdropCounts};
use super::procs::{self, Storm};
use super::rows::{Ctx, start_netdrop};
use crate::storm;

/// Seconds of the soak not judged for flat RSS (start-up allocations).
pub const WARMUP_S: usize = 5;
/// Largest RSS spread after the warm-up still called flat, KiB.
pub const FLAT_KIB: u64 = 1024;

/// One second of the soak.
#[derive(Debug, Clone)]
pub struct Sample {
    pub second: usize,
    pub rss_kib: u64,
    /// Storm drops in this second.
    pub drops: Option<u64>,
    /// Cumulative, from netdrop's latest tick line.
    pub lost: Option<u64>,
    pub sampled: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Soak {
    pub seconds: f64,
    /// The kfree_skb hook netdrop attached.
    pub hook: Option<Hook>,
    pub samples: Vec<Sample>,
    pub storm: Option<storm::Report>,
    /// netdrop's final summary.
    pub summary: Option<NetdropCounts>,
    pub note: Option<String>,
}

impl Soak {
    /// (first, last, max) RSS, KiB.
    pub fn rss_stats(&self) -> Option<(u64, u64, u64)> {
        let first = self.samples.first()?.rss_kib;
        let last = self.samples.last()?.rss_kib;
        let max = self.samples.iter().map(|s| s.rss_kib).max()?;
        Some((first, last, max))
    }

    /// RSS max − min over the samples after the warm-up, KiB.
    pub fn rss_growth(&self) -> Option<u64> {
        rss_spread(self.samples.iter().map(|s| (s.second, s.rss_kib)), WARMUP_S)
    }

    pub fn flat(&self) -> Option<bool> {
        flat(self.rss_growth())
    }
}

/// Max − min of the RSS readings `(second, KiB)` after the first `warmup_s`
/// seconds, KiB (None: no reading after it).
pub fn rss_spread(readings: impl Iterator<Item = (usize, u64)>, warmup_s: usize) -> Option<u64> {
    let after: Vec<u64> = readings
        .filter(|&(second, _)| second > warmup_s)
        .map(|(_, kib)| kib)
        .collect();
    Some(after.iter().max()? - after.iter().min()?)
}

/// Whether an RSS spread is flat (at most [`FLAT_KIB`]).
pub fn flat(spread: Option<u64>) -> Option<bool> {
    Some(spread? <= FLAT_KIB)
}

/// Runs the soak; a failure is kept in its note (Ctrl-C is returned).
pub fn run(ctx: &Ctx, seconds: f64) -> Result<Soak> {
    let mut soak = Soak {
        seconds,
        hook: None,
        samples: Vec::new(),
        storm: None,
        summary: None,
        note: None,
    };
    if let Err(e) = run_inner(ctx, &mut soak) {
        procs::check_interrupted()?;
        eprintln!("nd-bench: soak: {e:#}");
        soak.note = Some(format!("failed: {e:#}"));
    }
    Ok(soak)
}

#[derive(Default)]
struct Seen {
    tick: Option<NetdropCounts>,
    summary: Option<NetdropCounts>,
}

fn run_inner(ctx: &Ctx, soak: &mut Soak) -> Result<()> {
    let mut cmd = Command::new(&ctx.netdrop);
    cmd.args(["watch", "-o", "json", "--interval", "1"])
        .stdout(Stdio::piped());
    let (mut nd, hook) = start_netdrop(cmd, "netdrop watch (soak)")?;
    soak.hook = hook;
    let pid = nd.pid();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let lines = procs::lines(nd.child.stdout.take().expect("piped"));
    let keep = Arc::clone(&seen);
    let reader = std::thread::spawn(move || {
        for l in lines {
            for (ty, is_tick) in [("tick", true), ("summary", false)] {
                if parse::is_line_of_type(&l, ty)
                    && let Ok(v) = serde_json::from_str(&l)
                {
                    let c = parse::netdrop_counts(&v);
                    let mut s = keep.lock().unwrap();
                    if is_tick {
                        s.tick = Some(c);
                    } else {
                        s.summary = Some(c);
                    }
                }
            }
        }
    });
    let storm = Storm::start(&ctx.storm_bin, seconds_arg(soak.seconds), ctx.threads)?;
    let t0 = Instant::now();
    let mut last_noports = storm.noports_now();
    let samples = &mut soak.samples;
    let report = storm_finish_sampling(storm, t0, pid, &seen, &mut last_noports, samples)?;
    soak.storm = Some(report);
    procs::sleep(Duration::from_millis(500))?;
    nd.interrupt(Duration::from_secs(60))?;
    let _ = reader.join();
    soak.summary = seen.lock().unwrap().summary.take();
    if soak.summary.is_none() {
        soak.note = Some("netdrop printed no summary line".into());
    }
    Ok(())
}

/// The storm's `--seconds` for a soak of `s` seconds.
pub(super) fn seconds_arg(s: f64) -> f64 {
    s.clamp(1.0, storm::MAX_SECONDS)
}

/// Waits for the storm, taking a [`Sample`] every second.
fn storm_finish_sampling(
    storm: Storm,
    t0: Instant,
    pid: u32,
    seen: &Mutex<Seen>,
    last_noports: &mut Option<u64>,
    samples: &mut Vec<Sample>,
) -> Result<storm::Report> {
    // The storm cannot be borrowed inside its own finish(): read NoPorts through its pid.
    let storm_pid = storm.pid();
    storm_finish_each_second(storm, t0, |second| {
        let rss = procs::status_kib(pid, "VmRSS").context("netdrop's RSS")?;
        let now = Storm::noports_of_pid(storm_pid);
        let drops = match (now, *last_noports) {
            (Some(n), Some(l)) => Some(n.saturating_sub(l)),
            _ => None,
        };
        if now.is_some() {
            *last_noports = now;
        }
        let s = seen.lock().unwrap();
        let tick = s.tick.as_ref();
        samples.push(Sample {
            second,
            rss_kib: rss,
            drops,
            lost: tick.and_then(|t| t.lost),
            sampled: tick.and_then(|t| t.sampled),
        });
        Ok(())
    })
}

/// Waits for the storm, calling `sample(second)` for second 1, 2, … since
/// `t0` as each comes due (a late call is followed at once by those missed).
pub(super) fn storm_finish_each_second(
    storm: Storm,
    t0: Instant,
    mut sample: impl FnMut(usize) -> Result<()>,
) -> Result<storm::Report> {
    let mut taken = 0;
    storm.finish(Duration::from_millis(50), || {
        let due = taken + 1;
        if t0.elapsed() < Duration::from_secs(due as u64) {
            return Ok(());
        }
        taken = due;
        sample(due)
    })
}
