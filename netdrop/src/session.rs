//! One observation, shared by `watch` and `diagnose`. The data path, in order:
//! hook (kernel) → ring buffer → decode → classify → sinks; beside it, the exact
//! kernel counters and periodic snapshots of the kernel's own view (counters,
//! sysctls, listeners, neighbours) feed the diagnosis.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aya::maps::{Array, HashMap, MapData, RingBuf};
use netdrop_common::names;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
    task::JoinHandle,
};

use crate::{
    counters::CounterMaps,
    decode::{Record, decode},
    diagnose::{Diagnosis, Report, report::Hooks},
    dispatch::Dispatch,
    event::{Classifier, Clock},
    filter::{self, FilterSpec, Filters},
    kernel::{
        KernelFacts, Sources,
        hooks::{self, fallback_note},
        kallsyms::Kallsyms,
    },
    kernel_log::{self, KernelLog},
    loader::{self, LoadOptions, Loaded},
    namespaces::Namespaces,
    owner::Owners,
    privileges,
    reads::DropReads,
    record::Header,
    sink::{Flow, Session, Sink},
    snapshot::Snapshot,
    summary::{Naming, Summary},
};

#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub duration: Option<Duration>,
    /// How often sinks get the running totals.
    pub interval: Duration,
    /// How often the kernel's own view is snapshotted for the diagnosis.
    pub snapshot_every: Duration,
    pub ring_bytes: u32,
    /// Detail events per second per reason (0 = all): `--events-per-sec`.
    pub event_limit: u32,
    /// Prefer raw tracepoints where the hook table offers one (`--no-raw-tracepoint`).
    pub raw_tracepoint: bool,
    /// Prefer fentry where the hook table offers one, else kprobe (`--no-fentry`).
    pub fentry: bool,
    pub sources: Sources,
    pub filters: FilterSpec,
    /// Neighbour entry state changes too (for resolution latency: `hist`, `record`).
    pub neigh_states: bool,
    /// Keep the first N bytes of each dropped packet (`record --capture-bytes`).
    pub capture_bytes: Option<u32>,
    /// `-v` given this many times: kernel-side diagnostics on from 1 (`kernel_log`).
    pub verbose: u8,
    /// Groups per cause in the reports (None: the report's default; `serve --top`).
    pub report_groups: Option<usize>,
    /// Seconds a gone namespace's state is kept (None: the whole observation;
    /// `serve --retain`).
    pub retain_s: Option<f64>,
}

/// What an observation leaves behind.
pub struct Outcome {
    pub summary: Summary,
    pub session: Session,
    pub report: Report,
}

/// Loads, attaches, observes until the duration ends or SIGINT/SIGTERM, detaches,
/// and returns the totals and the diagnosis. `sink` gets every event.
pub async fn observe(opts: &SessionOptions, sink: &mut dyn Sink) -> Result<Outcome> {
    privileges::check()?;
    let facts = KernelFacts::discover(&opts.sources)?;
    let result = observe_with(&facts, opts, sink).await;
    facts.tracefs.leave();
    result
}

/// The notices (one line for each wanted hook not used, saying why and what
/// it costs), then the `watching` line. Returns the hooks for the report.
fn announce(facts: &KernelFacts, loaded: &Loaded) -> Hooks {
    for not_used in &loaded.not_used {
        let instead = loaded.attached_in(not_used.hook.slot);
        eprintln!("{}", hooks::notice(not_used, instead));
    }
    let mut unavailable = Vec::new();
    for (slot, refused) in &loaded.unavailable {
        if refused.is_empty() {
            eprintln!("netdrop: notice: no {slot} hook: {}", fallback_note(slot));
        }
        unavailable.push(format!("{slot} hook: {}", fallback_note(slot)));
    }
    if !facts.has_reason_field {
        let how = if facts.by_location.is_empty() {
            "drops are shown as UNKNOWN (no function of the location table in kallsyms)".to_string()
        } else {
            format!(
                "rp_filter and neighbour drops are classified by the function that freed them ({}), the rest are UNKNOWN",
                facts.by_location.join(", ")
            )
        };
        eprintln!(
            "netdrop: notice: this kernel's kfree_skb gives no drop reasons (before 5.17): {how}"
        );
    }
    if let Some(why) = &facts.conntrack_off {
        eprintln!(
            "netdrop: notice: NETFILTER_DROP drops at a full conntrack table are counted as firewall_rule ({why})"
        );
    }
    eprintln!(
        "netdrop: watching ({}); Ctrl-C to stop",
        loaded.attached.join(", ")
    );
    Hooks {
        attached: loaded.attached.clone(),
        unavailable,
    }
}

async fn observe_with(
    facts: &KernelFacts,
    opts: &SessionOptions,
    sink: &mut dyn Sink,
) -> Result<Outcome> {
    // One origin for both clocks: drop times (kernel, monotonic) and read
    // times (seconds since `started`) must compare.
    let clock = Clock::now();
    let started = Instant::now();
    let mut classifier = Classifier {
        naming: Naming {
            reasons: facts.reasons.clone(),
            has_reason_field: facts.has_reason_field,
        },
        syms: Kallsyms::load("/proc/kallsyms".as_ref()).unwrap_or_default(),
        clock,
        owners: Owners::default(),
        namespaces: Namespaces::new(facts.config.structs.net_cookie != netdrop_common::ABSENT),
    };
    // The baseline is read before the hooks attach, so nothing is counted twice.
    let mut diagnosis = Diagnosis::default();
    diagnosis.start_unix = clock.wall(clock.mono_at_start());
    diagnosis.acks_have_a_reason = facts.reasons.value("TCP_LISTEN_OVERFLOW").is_some();
    diagnosis.start_mono_ns = Some(clock.mono_at_start());
    diagnosis.report_groups = opts.report_groups;
    diagnosis.retain_s = opts.retain_s;
    // Read here, not on a blocking thread: until the hooks are attached this
    // thread may be in a mount namespace of its own (tracefs mounted by
    // netdrop), which it can only leave while no other thread shares it.
    let baseline = Snapshot::read(0.0);
    let mut reads = DropReads::new(started);

    let filters = filter::resolve(&opts.filters, &facts.reasons, facts.has_reason_field)?;
    let load = LoadOptions {
        ring_bytes: opts.ring_bytes,
        event_limit: opts.event_limit,
        raw_tracepoint: opts.raw_tracepoint,
        fentry: opts.fentry,
        emit_events: true,
        filter: filters.kernel,
        neigh_states: opts.neigh_states,
        capture_bytes: opts.capture_bytes,
        kernel_log: kernel_log::level(opts.verbose),
    };
    let loaded = loader::load(facts, load);
    // Attached (or failed): tracefs is not needed any more, nor the
    // capabilities that only served loading and attaching.
    facts.tracefs.leave();
    let mut loaded = loaded?;
    if let Err(e) = privileges::drop_after_attach() {
        tracing::warn!("keeping all capabilities: {e}");
    }
    let mut kernel_log = if opts.verbose > 0 {
        Some(KernelLog::start(&mut loaded.ebpf)?)
    } else {
        None
    };
    let mut counters = CounterMaps::take(&mut loaded.ebpf)?;
    if !filters.reason_slots.is_empty() {
        let map = loaded
            .ebpf
            .take_map(names::FILTER_REASONS)
            .context("filter map missing")?;
        let mut allowed: Array<MapData, u8> = Array::try_from(map)?;
        for &slot in &filters.reason_slots {
            allowed
                .set(slot, 1, 0)
                .context("setting the --cause filter")?;
        }
    }
    let mut watched = filters
        .pid
        .map(|pid| WatchedPid::new(pid, &mut loaded))
        .transpose()?;
    let ring = RingBuf::try_from(
        loaded
            .ebpf
            .take_map(names::EVENTS)
            .context("ring buffer map missing")?,
    )?;
    // SAFETY: the ring buffer owns its fd and outlives the registration (both live here).
    let mut ring = unsafe { AsyncFd::register(ring) }
        .map_err(|e| anyhow::anyhow!("polling the ring buffer: {}", e.into_parts().1))?;
    // Before the `watching` line: a Ctrl-C (or a test's SIGINT) that comes
    // while the first snapshot is read (it runs nft in namespaces with
    // rules) must stop netdrop cleanly, with its summary, not kill it.
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let hooks = announce(facts, &loaded);
    sink.on_start(&header(facts, opts, &hooks, clock))?;
    take_snapshot(baseline, &mut classifier, &mut reads, sink, &mut diagnosis)?;

    let mut session = Session::default();
    let mut last_total = 0;
    let mut tick = tokio::time::interval(opts.interval);
    tick.tick().await;
    let mut counts_tick = tokio::time::interval(COUNTS_EVERY);
    counts_tick.tick().await;
    let mut snap_tick = tokio::time::interval(opts.snapshot_every);
    snap_tick.tick().await;
    let mut pending: Option<JoinHandle<Snapshot>> = None;
    let mut pid_tick = tokio::time::interval(PID_REFRESH);
    let mut reads_tick = tokio::time::interval(DropReads::TICK);
    // Sinks that read input (the live screen) are polled for keys.
    let poll_every = sink.poll_every();
    let mut poll_tick = tokio::time::interval(poll_every.unwrap_or(Duration::from_secs(3600)));
    poll_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = tokio::time::sleep(
        opts.duration
            .unwrap_or(Duration::from_secs(u32::MAX.into())),
    );
    tokio::pin!(deadline);

    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), &mut classifier, &filters, sink, &mut diagnosis, &mut session, opts.capture_bytes.is_some(), &mut reads)?;
                guard.clear_ready();
                sink.flush()?;
            }
            _ = tick.tick() => {
                session.duration_s = started.elapsed().as_secs_f64();
                let summary = Summary::from_counts(&counters.read()?, &classifier.naming)
                    .with_kernel_only(&diagnosis.kernel_only());
                sink.tick(&summary, &session)?;
                // The groups and advice on the first screen, not only at exit.
                if sink.wants_live_report() && summary.total_drops != last_total {
                    sink.on_report(&diagnosis.report(&summary, &session, hooks.clone()))?;
                }
                last_total = summary.total_drops;
            }
            _ = counts_tick.tick() => {
                // The event limit is per second: this tick starts the next one.
                counters.next_window()?;
                session.duration_s = started.elapsed().as_secs_f64();
                sink.on_counts(session.duration_s, &counters.read()?, &session)?;
            }
            _ = snap_tick.tick(), if pending.is_none() => {
                let at = started.elapsed().as_secs_f64();
                pending = Some(tokio::task::spawn_blocking(move || Snapshot::read(at)));
            }
            snap = async { pending.as_mut().expect("guarded").await }, if pending.is_some() => {
                pending = None;
                take_snapshot(snap?, &mut classifier, &mut reads, sink, &mut diagnosis)?;
            }
            _ = reads_tick.tick(), if reads.any_due() => {
                reads.read_due(&mut classifier.namespaces, &mut diagnosis, sink)?;
            }
            _ = pid_tick.tick(), if watched.is_some() => {
                let w = watched.as_mut().expect("guarded");
                if !w.refresh()? {
                    eprintln!("netdrop: process {} exited", w.pid);
                    break;
                }
            }
            logs = async { kernel_log.as_mut().expect("guarded").forward().await }, if kernel_log.is_some() => {
                logs?;
            }
            _ = poll_tick.tick(), if poll_every.is_some() => {
                if sink.poll()? == Flow::Stop {
                    break;
                }
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = &mut deadline, if opts.duration.is_some() => break,
        }
    }

    // Detach first so the counters stop moving, take what is left in the ring,
    // then the final snapshot: kernel counters and hooks now cover the same span.
    let mut ring = ring.into_inner();
    drop(loaded);
    if let Some(k) = kernel_log.as_mut() {
        k.flush();
    }
    drain(
        &mut ring,
        &mut classifier,
        &filters,
        sink,
        &mut diagnosis,
        &mut session,
        opts.capture_bytes.is_some(),
        &mut reads,
    )?;
    // Namespaces that dropped since their last read: read before the last
    // snapshot, while they may still exist.
    reads.read_all(&mut classifier.namespaces, &mut diagnosis, sink)?;
    if let Some(p) = pending {
        take_snapshot(p.await?, &mut classifier, &mut reads, sink, &mut diagnosis)?;
    }
    let at = started.elapsed().as_secs_f64();
    let last = tokio::task::spawn_blocking(move || Snapshot::read(at)).await?;
    take_snapshot(last, &mut classifier, &mut reads, sink, &mut diagnosis)?;
    session.duration_s = started.elapsed().as_secs_f64();
    let counts = counters.read()?;
    sink.on_counts(session.duration_s, &counts, &session)?;
    let summary = Summary::from_counts(&counts, &classifier.naming)
        .with_kernel_only(&diagnosis.kernel_only());
    let report = diagnosis.report(&summary, &session, hooks);
    Ok(Outcome {
        summary,
        session,
        report,
    })
}

/// A full snapshot taken in: its namespaces identified (names, gone ones),
/// their reads noted, then to the sinks and the diagnosis.
fn take_snapshot(
    mut snap: Snapshot,
    classifier: &mut Classifier,
    reads: &mut DropReads,
    sink: &mut dyn Sink,
    diagnosis: &mut Diagnosis,
) -> Result<()> {
    classifier.namespaces.identify_snapshot(&mut snap);
    reads.on_snapshot(&snap);
    Dispatch { diagnosis, sink }.snapshot(snap)?;
    Ok(())
}

/// How often the exact counters go to the sinks (recordings, histograms).
const COUNTS_EVERY: Duration = Duration::from_secs(1);

/// What a recording (or any sink) needs to know about this observation.
fn header(facts: &KernelFacts, opts: &SessionOptions, hooks: &Hooks, clock: Clock) -> Header {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let boot_time = read("/proc/stat")
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
        .unwrap_or(0);
    Header {
        netdrop_version: env!("CARGO_PKG_VERSION").to_string(),
        kernel_release: crate::diagnose::report::kernel_release(),
        hostname: read("/proc/sys/kernel/hostname"),
        boot_time,
        start_unix: clock.wall(clock.mono_at_start()),
        start_mono_ns: clock.mono_at_start(),
        clock_offset_ns: clock.offset_ns(),
        reasons: facts.reasons.pairs(),
        has_reason_field: facts.has_reason_field,
        hooks: hooks.clone(),
        filters: opts.filters.describe(),
        capture_bytes: opts.capture_bytes.unwrap_or(0),
        counter_interval_s: COUNTS_EVERY.as_secs_f64(),
    }
}

/// How often `--pid` looks for new sockets of the process (and whether it lives).
const PID_REFRESH: Duration = Duration::from_millis(200);

/// `--pid`: keeps the kernel's FILTER_INODES in step with the process's sockets.
/// (New TCP sockets are added at once by the inet_sock_set_state hook; this
/// catches the others, and sockets opened before netdrop started.)
struct WatchedPid {
    pid: u32,
    inodes: HashMap<MapData, u64, u8>,
    known: std::collections::HashSet<u64>,
}

impl WatchedPid {
    fn new(pid: u32, loaded: &mut Loaded) -> Result<WatchedPid> {
        let map = loaded
            .ebpf
            .take_map(names::FILTER_INODES)
            .context("filter map missing")?;
        let mut w = WatchedPid {
            pid,
            inodes: HashMap::try_from(map)?,
            known: Default::default(),
        };
        if !w.refresh()? {
            anyhow::bail!("no process {pid}");
        }
        Ok(w)
    }

    /// Adds the process's current sockets; false once the process is gone.
    fn refresh(&mut self) -> Result<bool> {
        if filter::check_pid(self.pid).is_err() {
            return Ok(false);
        }
        for ino in crate::owner::socket_inodes(self.pid) {
            if self.known.insert(ino) {
                self.inodes
                    .insert(ino, 1, 0)
                    .context("adding a socket to the --pid filter")?;
            }
        }
        Ok(true)
    }
}

/// Reads every record available now: decode → filter → classify → sink and diagnosis.
#[allow(clippy::too_many_arguments)]
fn drain(
    ring: &mut RingBuf<MapData>,
    classifier: &mut Classifier,
    filters: &Filters,
    sink: &mut dyn Sink,
    diagnosis: &mut Diagnosis,
    session: &mut Session,
    keep_bytes: bool,
    reads: &mut DropReads,
) -> Result<()> {
    while let Some(item) = ring.next() {
        session.events_read += 1;
        match decode(&item) {
            Ok(Record::Drop(mut rec)) => {
                if filters.has_packet_filter() && !filters.keep_packet(&rec) {
                    continue;
                }
                if !keep_bytes {
                    // The header was parsed; the bytes stay only when asked for.
                    rec.bytes = Vec::new();
                }
                let id = classifier.namespaces.identify(rec.netns, rec.netns_cookie);
                rec.netns_cookie = id.cookie;
                reads.on_drop(id, &mut classifier.namespaces, diagnosis, sink)?;
                let view = classifier.drop_view(&rec);
                if view.cause == crate::classify::Cause::NeighTableOverflow {
                    reads.on_table_drop(&mut classifier.namespaces, diagnosis, sink)?;
                }
                Dispatch { diagnosis, sink }.drop(&view)?;
            }
            Ok(Record::NeighCreateFail(rec)) => {
                if filters.port.is_some() || filters.addr.is_some_and(|a| rec.addr != Some(a)) {
                    continue;
                }
                reads.on_table_drop(&mut classifier.namespaces, diagnosis, sink)?;
                Dispatch { diagnosis, sink }.neigh_fail(&rec, classifier.clock.wall(rec.ts_ns))?;
            }
            Ok(Record::ListenSynDrop(mut rec)) => {
                if filters.port.is_some_and(|p| p != rec.port)
                    || filters.addr.is_some_and(|a| a != rec.addr)
                {
                    continue;
                }
                let id = classifier.namespaces.identify(rec.netns, rec.netns_cookie);
                rec.netns_cookie = id.cookie;
                reads.on_drop(id, &mut classifier.namespaces, diagnosis, sink)?;
                let owner = classifier.owners.lookup(rec.owner_ino, 0);
                let ts = classifier.clock.wall(rec.ts_ns);
                Dispatch { diagnosis, sink }.listen_drop(&rec, owner.as_ref(), ts)?;
            }
            Ok(Record::NeighState(rec)) => {
                if filters.port.is_some() || filters.addr.is_some_and(|a| rec.addr != Some(a)) {
                    continue;
                }
                Dispatch { diagnosis, sink }.neigh_state(&rec, classifier.clock.wall(rec.ts_ns))?;
            }
            Err(e) => {
                session.undecodable += 1;
                tracing::warn!("undecodable ring buffer record: {e}");
            }
        }
    }
    Ok(())
}
