//! The serve soak: `netdrop serve --listen 127.0.0.1:PORT --retain 5 --top 20`
//! scraped every second while network namespaces come and go for the whole
//! soak ([`crate::churn`]: every other one drops a few datagrams before it is
//! deleted), under the same storm as the watch soak ([`super::soak`]).
//!
//! Per second: serve's VmRSS (/proc/PID/status, read as the watch soak reads
//! it) and one `GET /metrics`: its latency (connect to the end of the body),
//! the series on the page (its sample lines) and `netdrop_namespaces_tracked`.
//! The start is the first second after a [`WARMUP_S`] s warm-up (the series
//! have reached `--top`, the first gone namespaces have passed `--retain`),
//! the end the last second. RSS is judged as in the watch soak: flat when its
//! spread after the warm-up is at most [`soak::FLAT_KIB`].

use std::fmt::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

use super::parse::Hook;
use super::procs::{self, Storm};
use super::report::{int, opt};
use super::rows::{Ctx, start_netdrop};
use super::soak;
use super::summary::median;
use crate::churn::{self, ChurnOptions};
use crate::{prom, storm};

/// Seconds not counted as the start (series and retention settle).
pub const WARMUP_S: usize = 10;
/// `--retain`: a gone namespace's series go after this many seconds.
pub const RETAIN_S: u32 = 5;
/// `--top`: series per cause for namespaces and groups.
pub const TOP: usize = 20;
/// The churn: namespace `i` drops [`DATAGRAMS`] datagrams when `i % SENDER_EVERY == 0`.
pub const SENDER_EVERY: usize = 2;
pub const DATAGRAMS: usize = 3;
/// Namespaces set up at the same time.
pub const CHURN_WORKERS: usize = 2;
/// Each [`churn::run`] lasts at most this long (Ctrl-C is seen between runs).
const CHURN_CHUNK: Duration = Duration::from_secs(5);

/// One second of the serve soak; `None`: that scrape failed.
#[derive(Debug, Clone)]
pub struct Sample {
    pub second: usize,
    pub rss_kib: u64,
    pub scrape_ms: Option<f64>,
    pub series: Option<usize>,
    pub tracked: Option<u64>,
}

/// What the churn did over the soak.
#[derive(Debug, Clone, Default)]
pub struct Churned {
    /// Namespaces created and deleted.
    pub namespaces: usize,
    pub senders: usize,
    /// Datagrams the senders sent.
    pub sent: u64,
    /// Their `Udp: NoPorts` deltas: the drops, as the kernel counted them.
    pub kernel_drops: u64,
    /// Seconds from the first namespace to the last deletion.
    pub seconds: f64,
}

#[derive(Debug, Clone)]
pub struct ServeSoak {
    pub seconds: f64,
    /// The serve command line (its program shown as `netdrop`).
    pub command: String,
    pub hook: Option<Hook>,
    pub samples: Vec<Sample>,
    pub storm: Option<storm::Report>,
    pub churn: Churned,
    pub note: Option<String>,
}

impl ServeSoak {
    /// The first sample after the warm-up.
    pub fn start(&self) -> Option<&Sample> {
        self.samples.iter().find(|s| s.second > WARMUP_S)
    }

    /// The last sample, if after the warm-up.
    pub fn end(&self) -> Option<&Sample> {
        self.samples.last().filter(|s| s.second > WARMUP_S)
    }

    /// RSS max − min after the warm-up, KiB.
    pub fn rss_spread(&self) -> Option<u64> {
        soak::rss_spread(self.samples.iter().map(|s| (s.second, s.rss_kib)), WARMUP_S)
    }

    pub fn flat(&self) -> Option<bool> {
        soak::flat(self.rss_spread())
    }

    /// (p50, max) scrape latency over all scrapes that answered, ms.
    pub fn latency_ms(&self) -> Option<(f64, f64)> {
        let v: Vec<f64> = self.samples.iter().filter_map(|s| s.scrape_ms).collect();
        let max = v.iter().copied().reduce(f64::max)?;
        Some((median(v)?, max))
    }

    pub fn failed_scrapes(&self) -> usize {
        self.samples
            .iter()
            .filter(|s| s.scrape_ms.is_none())
            .count()
    }
}

/// Runs the serve soak; a failure is kept in its note (Ctrl-C is returned).
pub fn run(ctx: &Ctx, seconds: f64) -> Result<ServeSoak> {
    let mut soak = ServeSoak {
        seconds,
        command: String::new(),
        hook: None,
        samples: Vec::new(),
        storm: None,
        churn: Churned::default(),
        note: None,
    };
    if let Err(e) = run_inner(ctx, &mut soak) {
        procs::check_interrupted()?;
        eprintln!("nd-bench: serve soak: {e:#}");
        soak.note = Some(format!("failed: {e:#}"));
    }
    Ok(soak)
}

fn run_inner(ctx: &Ctx, soak: &mut ServeSoak) -> Result<()> {
    let addr = prom::free_addr()?;
    let args = [
        "serve".to_owned(),
        "--listen".to_owned(),
        addr.to_string(),
        "--retain".to_owned(),
        RETAIN_S.to_string(),
        "--top".to_owned(),
        TOP.to_string(),
    ];
    soak.command = format!("netdrop {}", args.join(" "));
    let mut cmd = Command::new(&ctx.netdrop);
    cmd.args(&args).stdout(Stdio::null());
    let (mut nd, hook) = start_netdrop(cmd, "netdrop serve (soak)")?;
    soak.hook = hook;
    let pid = nd.pid();
    let storm = Storm::start(&ctx.storm_bin, soak::seconds_arg(soak.seconds), ctx.threads)?;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(soak.seconds);
    let stop = AtomicBool::new(false);
    let samples = &mut soak.samples;
    let (report, churned) = std::thread::scope(|s| {
        let churner = s.spawn(|| churn_until(deadline, &stop));
        let report = soak::storm_finish_each_second(storm, t0, |second| {
            let rss_kib = procs::status_kib(pid, "VmRSS").context("netdrop serve's RSS")?;
            samples.push(scrape(addr, second, rss_kib));
            Ok(())
        });
        stop.store(true, Ordering::SeqCst);
        let churned = churner
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the churn thread panicked")));
        (report, churned)
    });
    soak.storm = Some(report?);
    soak.churn = churned.context("namespace churn")?;
    nd.interrupt(Duration::from_secs(60))?;
    let failed = soak.failed_scrapes();
    if failed > 0 {
        soak.note = Some(format!("{failed} scrapes failed (shown as -)"));
    }
    Ok(())
}

/// One `GET /metrics` as the sample of `second`.
fn scrape(addr: SocketAddr, second: usize, rss_kib: u64) -> Sample {
    let t = Instant::now();
    let got = prom::http_get(addr, "/metrics");
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut sample = Sample {
        second,
        rss_kib,
        scrape_ms: None,
        series: None,
        tracked: None,
    };
    match got {
        Ok((200, page)) => {
            sample.scrape_ms = Some(ms);
            sample.series = Some(prom::series_count(&page));
            sample.tracked = prom::samples(&page, "netdrop_namespaces_tracked")
                .first()
                .map(|(_, v)| *v as u64);
        }
        Ok((status, _)) => eprintln!("nd-bench: serve soak: second {second}: HTTP {status}"),
        Err(e) => eprintln!("nd-bench: serve soak: second {second}: scrape failed: {e:#}"),
    }
    sample
}

/// Namespaces created and deleted until `deadline` (or `stop`, or Ctrl-C),
/// in runs of at most [`CHURN_CHUNK`]; every namespace is gone when it returns.
fn churn_until(deadline: Instant, stop: &AtomicBool) -> Result<Churned> {
    let start = Instant::now();
    let mut c = Churned::default();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_secs(1)
            || stop.load(Ordering::SeqCst)
            || procs::check_interrupted().is_err()
        {
            c.seconds = start.elapsed().as_secs_f64();
            return Ok(c);
        }
        let run = churn::run(&ChurnOptions {
            namespaces: churn::MAX_NAMESPACES,
            sender_every: SENDER_EVERY,
            datagrams: DATAGRAMS,
            linger: Duration::from_millis(300),
            workers: CHURN_WORKERS,
            time_limit: left.min(CHURN_CHUNK),
        })?;
        c.namespaces += run.namespaces.len();
        for n in run.senders() {
            c.senders += 1;
            c.sent += n.sent as u64;
            c.kernel_drops += n.no_ports;
        }
    }
}

/// The BENCHMARKS.md section; `bench` is the nd-bench command line of the run.
pub fn section(m: &mut String, s: &ServeSoak, bench: &str) {
    let _ = writeln!(
        m,
        "### Soak: `netdrop serve` ({}) scraped every second under namespace churn and a {} s storm\n",
        s.hook.map_or("kfree_skb hook unknown", Hook::label),
        s.seconds
    );
    if let Some(n) = &s.note {
        let _ = writeln!(m, "{}\n", n.replace('\n', " "));
    }
    let c = &s.churn;
    let _ = writeln!(
        m,
        "`{}` (in `{bench}`), `GET /metrics` every second. Meanwhile {} network namespaces \
         were created and deleted, {CHURN_WORKERS} at a time, over {:.0} s; one in \
         {SENDER_EVERY} dropped {DATAGRAMS} datagrams ({} senders, {} datagrams, {} drops counted by the \
         kernel){}.\n",
        s.command,
        int(c.namespaces as u64),
        c.seconds,
        int(c.senders as u64),
        int(c.sent),
        int(c.kernel_drops),
        s.storm.as_ref().map_or_else(String::new, |st| format!(
            ", under the storm ({} drops/s)",
            int(st.rate.round() as u64)
        )),
    );
    let (start, end) = (s.start(), s.end());
    let _ = writeln!(
        m,
        "| | start (second {}) | end (second {}) | end − start | end / start |\n|---|--:|--:|--:|--:|",
        opt(start.map(|x| x.second as u64), int),
        opt(end.map(|x| x.second as u64), int)
    );
    type Of = fn(&Sample) -> Option<u64>;
    let rows: [(&str, Of); 3] = [
        ("netdrop RSS (KiB, VmRSS)", |x| Some(x.rss_kib)),
        ("series on the page", |x| x.series.map(|n| n as u64)),
        ("`netdrop_namespaces_tracked`", |x| x.tracked),
    ];
    for (what, f) in rows {
        let (a, b) = (start.and_then(f), end.and_then(f));
        let _ = writeln!(
            m,
            "| {what} | {} | {} | {} | {} |",
            opt(a, int),
            opt(b, int),
            match (a, b) {
                (Some(a), Some(b)) => format!("{:+}", b as i64 - a as i64),
                _ => "-".into(),
            },
            match (a, b) {
                (Some(a), Some(b)) if a > 0 => format!("{:.3}", b as f64 / a as f64),
                _ => "-".into(),
            }
        );
    }
    let _ = writeln!(
        m,
        "\nRSS: max {} KiB; spread after the first {WARMUP_S} s: {} KiB ({}, limit {} KiB). \
         Scrapes: {} answered, {} failed; latency p50 {}, max {}.\n",
        opt(s.samples.iter().map(|x| x.rss_kib).max(), int),
        opt(s.rss_spread(), int),
        match s.flat() {
            Some(true) => "flat",
            Some(false) => "not flat",
            None => "too short to tell",
        },
        soak::FLAT_KIB,
        s.samples.len() - s.failed_scrapes(),
        s.failed_scrapes(),
        opt(s.latency_ms().map(|l| l.0), |v| format!("{v:.1} ms")),
        opt(s.latency_ms().map(|l| l.1), |v| format!("{v:.1} ms")),
    );
}

/// The numbers of the Targets table's serve row.
pub fn target_numbers(s: &ServeSoak) -> String {
    format!(
        "netdrop serve [{}]: spread after {WARMUP_S} s: {} KiB over {} samples, {} namespaces churned",
        s.hook.map_or("-", Hook::label),
        opt(s.rss_spread(), int),
        s.samples.len(),
        int(s.churn.namespaces as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(second: usize, rss_kib: u64, ms: Option<f64>, series: usize) -> Sample {
        Sample {
            second,
            rss_kib,
            scrape_ms: ms,
            series: ms.map(|_| series),
            tracked: ms.map(|_| 7),
        }
    }

    #[test]
    fn start_is_after_the_warm_up_and_the_section_shows_deltas() {
        let mut samples: Vec<Sample> = (1..=20)
            .map(|s| sample(s, 10_000 + 100 * s as u64, Some(s as f64), 400))
            .collect();
        samples[19] = sample(20, 12_000, None, 0);
        let s = ServeSoak {
            seconds: 20.0,
            command: "netdrop serve --listen 127.0.0.1:1 --retain 5 --top 20".into(),
            hook: Some(Hook::RawTp),
            samples,
            storm: None,
            churn: Churned {
                namespaces: 50,
                ..Default::default()
            },
            note: None,
        };
        assert_eq!(s.start().map(|x| x.second), Some(WARMUP_S + 1));
        assert_eq!(s.rss_spread(), Some(900));
        assert_eq!(s.flat(), Some(true));
        assert_eq!(s.latency_ms(), Some((10.0, 19.0)));
        let mut m = String::new();
        section(&mut m, &s, "nd-bench --soak-seconds 20");
        assert!(m.contains("| start (second 11) | end (second 20) |"), "{m}");
        assert!(
            m.contains("| netdrop RSS (KiB, VmRSS) | 11 100 | 12 000 | +900 | 1.081 |"),
            "{m}"
        );
        // The last scrape failed: no series at the end.
        assert!(
            m.contains("| series on the page | 400 | - | - | - |"),
            "{m}"
        );
        assert!(m.contains("19 answered, 1 failed; latency p50 10.0 ms, max 19.0 ms"));
        assert!(m.contains("in `nd-bench --soak-seconds 20`"));
    }
}
