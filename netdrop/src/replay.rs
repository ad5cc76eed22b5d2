//! `netdrop replay FILE`: a recording through the same views as the live
//! session — drop lines (human or JSON), the periodic summaries, the diagnosis
//! with advice computed from the recorded context — offline, without root.
//!
//! The data path is the live one with the ring buffer replaced by the file:
//! recording → reader → (recorded classification) → diagnosis and sinks.

use std::{
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::{
    classify::classify,
    diagnose::{Diagnosis, Report},
    dispatch::Dispatch,
    event::{Clock, DropView},
    hist::HistConfig,
    record::{self, Damage, Entry, Header},
    sink::tee::Tee,
    sink::{
        Flow, Session, Sink, hist::HistSink, human::HumanSink, json::JsonSink, null::NullSink,
        pcap::PcapSink,
    },
    summary::{Counts, Naming, Summary},
    watch::Output,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// As `hist` shows it: the chart, then the distributions.
    Hist(HistConfig),
    /// As `watch` showed it: lines, summaries, the diagnosis and totals at the end.
    Watch,
    /// As `diagnose` shows it: the report only.
    Report,
}

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub path: PathBuf,
    pub view: View,
    pub output: Output,
    /// Pace at the recorded speed instead of as fast as possible.
    pub realtime: bool,
    /// Seconds between summaries in the watch view.
    pub interval: f64,
    pub lines_per_sec: f64,
    /// Histogram view: also write .hgrm files here.
    pub hgrm: Option<PathBuf>,
    /// Also write the recorded packet bytes as pcapng here.
    pub pcap: Option<PathBuf>,
    /// Colour in the human watch view.
    pub style: crate::style::Style,
    /// The watch view as the live screen (a terminal, no `--lines`).
    pub screen: Option<crate::tui::TuiOptions>,
}

/// How a replay went: the damage found (empty for an intact recording).
pub struct Replayed {
    pub damage: Vec<Damage>,
}

/// Replays the recording at `opts.path` into the chosen view on stdout.
pub fn run(opts: &ReplayOptions) -> Result<Replayed> {
    let stdout = BufWriter::new(io::stdout().lock());
    let mut sink: Box<dyn Sink> = match (opts.view, opts.output) {
        (View::Report, _) => Box::new(NullSink),
        (View::Hist(cfg), output) => Box::new(HistSink::new(
            stdout,
            cfg,
            output == Output::Json,
            opts.realtime,
            opts.hgrm.clone(),
        )),
        (View::Watch, Output::Human) => match opts.screen {
            Some(o) => {
                let realtime = opts.realtime;
                Box::new(crate::tui::sink::Screen::new(crate::tui::TuiOptions {
                    replay: Some(realtime),
                    ..o
                }))
            }
            None => Box::new(HumanSink::new(stdout, opts.lines_per_sec).with_style(opts.style)),
        },
        (View::Watch, Output::Json) => Box::new(JsonSink::new(stdout)),
    };
    let mut pcap = opts.pcap.as_deref().map(PcapSink::create).transpose()?;
    let mut tee;
    let sink: &mut dyn Sink = match pcap.as_mut() {
        Some(p) => {
            tee = Tee {
                a: sink.as_mut(),
                b: p,
            };
            &mut tee
        }
        None => sink.as_mut(),
    };
    let (report, replayed) = replay(opts, sink)?;
    if opts.view == View::Report {
        let mut out = io::stdout().lock();
        match opts.output {
            Output::Human => out.write_all(report.render().as_bytes())?,
            Output::Json => {
                serde_json::to_writer_pretty(&mut out, &report)?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()?;
    }
    Ok(replayed)
}

/// Reads the whole recording at `opts.path` into `sink` (which gets the report
/// and the totals at the end, as in a live session) and returns the report.
pub fn replay(opts: &ReplayOptions, sink: &mut dyn Sink) -> Result<(Report, Replayed)> {
    let (header, mut reader) = read(&opts.path)?;
    announce(&opts.path, &header);
    let mut state = State::new(&header, opts);
    sink.on_start(&header)?;
    let mut pace = Pace {
        began: Instant::now(),
        every: sink.poll_every(),
        polled: Instant::now(),
    };
    for (_, entry) in reader.by_ref() {
        if opts.realtime
            && let Some(at) = state.at_s(&entry)
            && pace.wait(Duration::from_secs_f64(at.max(0.0)), sink)? == Flow::Stop
        {
            break;
        }
        state.feed(entry, sink)?;
        if opts.realtime {
            sink.flush()?;
        }
        if pace.due() && pace.poll(sink)? == Flow::Stop {
            break;
        }
    }
    sink.flush()?;
    let (report, summary, session) = state.finish();
    sink.on_report(&report)?;
    sink.finish(&summary, &session)?;
    sink.flush()?;
    let damage = reader.damage().to_vec();
    for d in &damage {
        eprintln!(
            "netdrop: replay: {}: {d}",
            crate::text::safe_path(&opts.path)
        );
    }
    if state.lost.drops + state.lost.others > 0 {
        eprintln!(
            "netdrop: replay: the recorder left out {} drop events and {} other events (writing fell behind); counts are exact",
            state.lost.drops, state.lost.others
        );
    }
    Ok((report, Replayed { damage }))
}

/// The replay's clock, and the sink's input (the live screen: `q` stops,
/// a pause holds the replay where it is).
struct Pace {
    began: Instant,
    /// How often the sink wants polling (None: never).
    every: Option<Duration>,
    polled: Instant,
}

impl Pace {
    fn due(&self) -> bool {
        self.every.is_some_and(|e| self.polled.elapsed() >= e)
    }

    /// Polls the sink; while it holds, the recorded clock stands still.
    fn poll(&mut self, sink: &mut dyn Sink) -> io::Result<Flow> {
        let Some(every) = self.every else {
            return Ok(Flow::Go);
        };
        self.polled = Instant::now();
        let mut flow = sink.poll()?;
        if flow == Flow::Hold {
            let held = Instant::now();
            while flow == Flow::Hold {
                std::thread::sleep(every);
                flow = sink.poll()?;
            }
            self.began += held.elapsed();
        }
        Ok(flow)
    }

    /// Sleeps until `at` after the start (the recorded pace), polling the sink.
    fn wait(&mut self, at: Duration, sink: &mut dyn Sink) -> io::Result<Flow> {
        loop {
            let left = (self.began + at).saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Flow::Go);
            }
            let Some(every) = self.every else {
                std::thread::sleep(left);
                return Ok(Flow::Go);
            };
            std::thread::sleep(left.min(every));
            if self.poll(sink)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
    }
}

/// Opens the recording at `path`: anything but a regular file is refused
/// before it is read, the preamble and header are checked first, and the
/// frames after them are streamed (memory bounded whatever the file's size).
fn read(path: &Path) -> Result<(Header, record::Reader<std::fs::File>)> {
    record::reader::open_file(path)
}

/// What the recording says of itself. Every string in it comes from a file
/// that may have travelled: escaped for the terminal.
fn announce(path: &Path, h: &Header) {
    eprintln!("{}", announcement(path, h));
}

fn announcement(path: &Path, h: &Header) -> String {
    use crate::text::{safe, safe_path};
    let filters = if h.filters.is_empty() {
        String::new()
    } else {
        format!(", filters {}", safe(&h.filters.join(" ")))
    };
    format!(
        "netdrop: replaying {}: recorded by netdrop {} on {} (kernel {}), started {}{filters}",
        safe_path(path),
        safe(&h.netdrop_version),
        safe(&h.hostname),
        safe(&h.kernel_release),
        crate::text::utc(h.start_unix),
    )
}

/// The replay's running state: what the live session keeps beside the sinks.
struct State {
    naming: Naming,
    clock: Clock,
    start_mono_ns: u64,
    diagnosis: Diagnosis,
    counts: Option<Counts>,
    session: Session,
    interval: f64,
    next_tick: f64,
    last_total: u64,
    lost: record::format::LostEntry,
    hooks: crate::diagnose::report::Hooks,
}

impl State {
    fn new(h: &Header, opts: &ReplayOptions) -> State {
        State {
            naming: h.naming(),
            clock: Clock::recorded(h.clock_offset_ns, h.start_mono_ns),
            start_mono_ns: h.start_mono_ns,
            diagnosis: {
                let mut d = Diagnosis::for_kernel(&h.kernel_release);
                d.start_unix = h.start_unix;
                d.start_mono_ns = Some(h.start_mono_ns);
                d.acks_have_a_reason = h.naming().reasons.value("TCP_LISTEN_OVERFLOW").is_some();
                d
            },
            counts: None,
            session: Session::default(),
            interval: opts.interval,
            next_tick: opts.interval,
            last_total: 0,
            lost: Default::default(),
            hooks: h.hooks.clone(),
        }
    }

    /// When the entry happened, seconds since the recording started.
    fn at_s(&self, e: &Entry) -> Option<f64> {
        let mono = |ts: u64| ts.saturating_sub(self.start_mono_ns) as f64 / 1e9;
        match e {
            Entry::Drop(d) => Some(mono(d.rec.ts_ns)),
            Entry::NeighFail(r) => Some(mono(r.ts_ns)),
            Entry::ListenDrop(l) => Some(mono(l.rec.ts_ns)),
            Entry::NeighState(r) => Some(mono(r.ts_ns)),
            Entry::Counters(c) => Some(c.at_s),
            Entry::Snapshot(s) => Some(s.at_s),
            Entry::Netns(n) => Some(n.at_s),
            Entry::Lost(l) => Some(l.at_s),
            Entry::Header(_) | Entry::End(_) => None,
        }
    }

    /// Where replayed records go: the same dispatch as a live session's.
    fn dispatch<'a>(&'a mut self, sink: &'a mut dyn Sink) -> Dispatch<'a> {
        Dispatch {
            diagnosis: &mut self.diagnosis,
            sink,
        }
    }

    fn feed(&mut self, entry: Entry, sink: &mut dyn Sink) -> io::Result<()> {
        match entry {
            Entry::Drop(d) => {
                let reason = self.naming.drop_reason_name(d.rec.reason, &d.location);
                let view = DropView {
                    rec: &d.rec,
                    cause: classify(&reason, d.rec.accept_queue),
                    reason,
                    location: d.location,
                    ts: self.clock.wall(d.rec.ts_ns),
                    owner: d.owner,
                    netns_name: d.netns_name,
                    netns_identity: d.netns_identity,
                };
                self.dispatch(sink).drop(&view)?;
            }
            Entry::NeighFail(r) => {
                let ts = self.clock.wall(r.ts_ns);
                self.dispatch(sink).neigh_fail(&r, ts)?;
            }
            Entry::ListenDrop(l) => {
                let ts = self.clock.wall(l.rec.ts_ns);
                self.dispatch(sink)
                    .listen_drop(&l.rec, l.owner.as_ref(), ts)?;
            }
            Entry::NeighState(r) => {
                let ts = self.clock.wall(r.ts_ns);
                self.dispatch(sink).neigh_state(&r, ts)?;
            }
            Entry::Counters(c) => {
                let counts = c.counts();
                self.session = c.session.into();
                sink.on_counts(c.at_s, &counts, &self.session)?;
                if c.at_s + 1e-6 >= self.next_tick {
                    self.next_tick = c.at_s + self.interval;
                    let summary = self.summary(&counts);
                    sink.tick(&summary, &self.session)?;
                    if sink.wants_live_report() && summary.total_drops != self.last_total {
                        let report =
                            self.diagnosis
                                .report(&summary, &self.session, self.hooks.clone());
                        sink.on_report(&report)?;
                    }
                    self.last_total = summary.total_drops;
                }
                self.counts = Some(counts);
            }
            Entry::Snapshot(s) => self.dispatch(sink).snapshot(*s)?,
            Entry::Netns(n) => self.dispatch(sink).netns_snapshot(n.at_s, n.ns)?,
            Entry::Lost(l) => {
                self.lost.drops += l.drops;
                self.lost.others += l.others;
            }
            Entry::End(e) => {
                self.session = e.session.into();
                // The end frame holds the totals even if LOST frames were damaged.
                self.lost.drops = self.lost.drops.max(e.lost.drops);
                self.lost.others = self.lost.others.max(e.lost.others);
            }
            Entry::Header(_) => {}
        }
        Ok(())
    }

    /// The totals as the live session gave them: counters plus what the
    /// kernel's own counters alone show.
    fn summary(&self, counts: &Counts) -> Summary {
        Summary::from_counts(counts, &self.naming).with_kernel_only(&self.diagnosis.kernel_only())
    }

    fn finish(&mut self) -> (Report, Summary, Session) {
        // No counters record (cut before the first second): every count is 0.
        let counts = self.counts.take().unwrap_or_default();
        let summary = self.summary(&counts);
        let report = self
            .diagnosis
            .report(&summary, &self.session, self.hooks.clone());
        (report, summary, self.session)
    }
}

#[cfg(test)]
mod tests {
    /// A recording is a file that travels: what it says of itself reaches the
    /// terminal escaped.
    #[test]
    fn a_hostile_header_is_escaped() {
        let h = crate::record::Header {
            netdrop_version: "0.1.0".into(),
            kernel_release: "6.18\x1b]8;;http://x\x07".into(),
            hostname: "box\n\x1b[2Jnetdrop: all clear".into(),
            boot_time: 0,
            start_unix: 0.0,
            start_mono_ns: 0,
            clock_offset_ns: 0,
            reasons: vec![],
            has_reason_field: true,
            hooks: Default::default(),
            filters: vec!["--dev \u{202e}0bew".into()],
            capture_bytes: 0,
            counter_interval_s: 1.0,
        };
        let line = super::announcement(std::path::Path::new("x.ndr"), &h);
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{line:?}"
        );
        assert!(line.contains("box\\n\\x1b[2Jnetdrop: all clear"), "{line}");
    }

    #[test]
    fn utc_dates() {
        use crate::text::utc;
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_795_000_000.0), "2026-11-18 11:06:40 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
    }
}
