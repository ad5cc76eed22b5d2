//! The live screen as a [`Sink`]: the session (or a replay) feeds the model,
//! and polls it every [`POLL`] for keys and a redraw; `q` (or the end of the
//! observation) puts the normal screen back and prints the final diagnosis
//! and summary there, as the line view does.

use std::{
    io::{self, Write},
    path::PathBuf,
    time::{Duration, Instant},
};

use crossterm::event::{Event, KeyEventKind};

use super::{
    TuiOptions,
    app::{Action, App, Replay},
    filter::Facts,
    model::DropLine,
    render,
    term::{self, Term},
};
use crate::{
    classify::Cause,
    decode::{ListenRecord, NeighRecord, NeighStateRecord},
    diagnose::Report,
    event::DropView,
    owner::Owner,
    record::Header,
    sink::{Flow, Session, Sink, human, record::RecordSink},
    snapshot::{NetnsSnapshot, Snapshot},
    summary::{Counts, Naming, Summary},
    text::safe,
};

/// How often keys are read and the screen may be redrawn.
pub const POLL: Duration = Duration::from_millis(100);
/// Data alone redraws the screen at most this often.
const REDRAW: Duration = Duration::from_millis(250);

pub struct Screen {
    pub app: App,
    opts: TuiOptions,
    /// None until [`Screen::enter`] (and in tests).
    term: Option<Term>,
    naming: Option<Naming>,
    header: Option<Header>,
    /// The latest full snapshot: the first record of a recording started by `r`.
    snapshot: Option<Snapshot>,
    recorder: Option<(RecordSink, PathBuf)>,
    report: Option<Report>,
    summary: Summary,
    session: Session,
    dirty: bool,
    drawn: Option<Instant>,
    quit: bool,
    /// Never takes the terminal (tests).
    detached: bool,
}

impl Screen {
    /// The screen's state, with no terminal yet.
    pub fn new(opts: TuiOptions) -> Screen {
        let app = App {
            replay: opts.replay.map(|realtime| Replay {
                realtime,
                done: false,
            }),
            ..App::default()
        };
        Screen {
            app,
            opts,
            term: None,
            naming: None,
            header: None,
            snapshot: None,
            recorder: None,
            report: None,
            summary: Summary::default(),
            session: Session::default(),
            dirty: true,
            drawn: None,
            quit: false,
            detached: false,
        }
    }

    /// The same state, never drawn (tests).
    pub fn detached(opts: TuiOptions) -> Screen {
        Screen {
            detached: true,
            ..Screen::new(opts)
        }
    }

    /// Takes over the terminal (alternate screen, raw mode).
    pub fn enter(&mut self) -> io::Result<()> {
        if self.opts.replay.is_some() {
            term::catch_signals();
        }
        self.term = Some(Term::enter()?);
        self.draw()
    }

    fn draw(&mut self) -> io::Result<()> {
        let color = self.opts.color;
        if let Some(t) = &mut self.term {
            let app = &self.app;
            t.draw(|f| render::draw(f, app, color))?;
            self.drawn = Some(Instant::now());
            self.dirty = false;
        }
        Ok(())
    }

    /// Keys, stderr lines and signals taken in; the screen redrawn if due.
    fn pump(&mut self) -> io::Result<Flow> {
        let mut now = false;
        let mut events: Vec<Event> = Vec::new();
        if let Some(t) = &self.term {
            loop {
                match t.events.try_recv() {
                    Ok(ev) => events.push(ev),
                    Err(std::sync::mpsc::TryRecvError::Empty) => break,
                    // The key reader ended while the screen is up: the
                    // terminal went away (a closed pty, a dropped ssh).
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        self.quit = true;
                        break;
                    }
                }
            }
        }
        for ev in events {
            match ev {
                Event::Key(k) if k.kind != KeyEventKind::Release => match self.app.key(k) {
                    Action::Quit => self.quit = true,
                    Action::Record => self.toggle_recording(),
                    Action::Redraw => now = true,
                    Action::None => {}
                },
                Event::Resize(..) => now = true,
                _ => {}
            }
        }
        if let Some(line) = self.term.as_ref().and_then(|t| t.stderr_lines().pop()) {
            self.app.message = Some(safe(&line).into_owned());
            now = true;
        }
        if term::signalled() {
            self.quit = true;
        }
        #[cfg(debug_assertions)]
        if self.drawn.is_some() && std::env::var_os("NETDROP_TEST_PANIC").is_some() {
            panic!("NETDROP_TEST_PANIC: a panic while the live screen is up (test builds only)");
        }
        if now || (self.dirty && self.drawn.is_none_or(|d| d.elapsed() >= REDRAW)) {
            self.draw()?;
        }
        Ok(if self.quit {
            Flow::Stop
        } else if self.app.paused() && self.app.replay.is_some() {
            Flow::Hold
        } else {
            Flow::Go
        })
    }

    /// `r`: a recording of what follows (in the current directory), or the
    /// end of the one being written. A replay records nothing.
    fn toggle_recording(&mut self) {
        self.dirty = true;
        if let Some((mut rec, path)) = self.recorder.take() {
            self.app.recording = None;
            self.app.message = Some(match rec.finish(&self.summary, &self.session) {
                Ok(()) => format!("recording saved to {}", crate::text::safe_path(&path)),
                Err(e) => format!(
                    "recording {}: {}",
                    crate::text::safe_path(&path),
                    safe(&e.to_string())
                ),
            });
            return;
        }
        let Some(header) = self.header.clone().filter(|_| self.app.replay.is_none()) else {
            self.app.message = Some("r: recordings are made while watching".into());
            return;
        };
        let stamp: String = crate::text::utc(self.session.duration_s + header.start_unix)
            .chars()
            .filter(|c| c.is_ascii_digit())
            .collect();
        let path = PathBuf::from(format!("netdrop-{}-{}.ndr", &stamp[..8], &stamp[8..]));
        let started = RecordSink::create(&path, false)
            .map_err(|e| format!("{e:#}"))
            .and_then(|mut r| {
                r.on_start(&header).map_err(|e| e.to_string())?;
                if let Some(s) = &self.snapshot {
                    r.on_snapshot(s).map_err(|e| e.to_string())?;
                }
                Ok(r)
            });
        match started {
            Ok(r) => {
                self.app.recording = Some(crate::text::safe_path(&path).into_owned());
                self.app.message = None;
                self.recorder = Some((r, path));
            }
            Err(e) => self.app.message = Some(format!("recording: {}", safe(&e))),
        }
    }

    /// The recording started by `r`, if any, gets `f`; its error ends it.
    fn record(&mut self, f: impl FnOnce(&mut RecordSink) -> io::Result<()>) {
        if let Some((r, path)) = &mut self.recorder
            && let Err(e) = f(r)
        {
            self.app.message = Some(format!(
                "recording {} stopped: {}",
                crate::text::safe_path(path),
                safe(&e.to_string())
            ));
            self.app.recording = None;
            self.recorder = None;
        }
    }

    fn line(&mut self, cause: Cause, line: DropLine, other: Option<(&str, &str)>) {
        let filter = self.app.filter.clone();
        self.app.data.on_line(cause, line, other, &filter);
        self.dirty = true;
    }

    /// The normal screen back, then what the line view prints at its end.
    fn leave_and_print(&mut self, s: &Summary, session: &Session) -> io::Result<()> {
        if let Some(mut t) = self.term.take() {
            t.leave();
        }
        let stdout = io::stdout();
        let mut out = human::HumanSink::new(io::BufWriter::new(stdout.lock()), 1.0);
        if let Some(r) = &self.report {
            out.on_report(r)?;
        }
        out.finish(s, session)?;
        io::stdout().flush()
    }
}

/// What the filter reads of a drop.
fn facts(ev: &DropView<'_>, text: &str) -> Facts {
    let (pid, comm) = match &ev.owner {
        Some(o) => (o.pid, o.comm.clone()),
        None => (ev.rec.pid, ev.rec.comm.clone()),
    };
    let name: Vec<String> = ev
        .netns_name
        .iter()
        .cloned()
        .chain(ev.identity().map(|i| i.human()))
        .collect();
    Facts {
        pid: Some(pid),
        comm: Some(comm),
        netns: Some(ev.rec.netns.into()),
        netns_name: (!name.is_empty()).then(|| name.join(" ")),
        dev: (!ev.rec.dev.is_empty()).then(|| ev.rec.dev.clone()),
        ports: ev
            .rec
            .packet
            .iter()
            .flat_map(|p| [p.sport, p.dport])
            .flatten()
            .collect(),
        text: text.to_string(),
    }
}

impl Sink for Screen {
    fn on_drop(&mut self, ev: &DropView<'_>) -> io::Result<()> {
        // On the screen the cause is the pane's: time, reason, location, detail.
        let text = format!(
            "{} {} {}  {}",
            &human::clock_time(ev.ts)[..12],
            safe(&ev.reason),
            safe(&ev.location),
            human::drop_detail(ev)
        );
        let line = DropLine {
            facts: facts(ev, &text),
            who: human::who(ev),
            text,
        };
        let other =
            (ev.cause == Cause::Other).then_some((ev.reason.as_str(), ev.location.as_str()));
        self.line(ev.cause, line, other);
        self.record(|r| r.on_drop(ev));
        Ok(())
    }

    fn on_neigh_fail(&mut self, rec: &NeighRecord, ts: f64) -> io::Result<()> {
        let text = human::neigh_fail_line(rec, ts, crate::style::Style::plain());
        let line = DropLine {
            facts: Facts {
                pid: Some(rec.pid),
                comm: Some(rec.comm.clone()),
                dev: Some(rec.dev.clone()),
                text: text.clone(),
                ..Facts::default()
            },
            who: format!("task {} {}", rec.pid, safe(&rec.comm)),
            text,
        };
        self.line(Cause::NeighTableOverflow, line, None);
        self.record(|r| r.on_neigh_fail(rec, ts));
        Ok(())
    }

    fn on_listen_drop(
        &mut self,
        rec: &ListenRecord,
        owner: Option<&Owner>,
        ts: f64,
    ) -> io::Result<()> {
        let text = human::listen_line(rec, ts, crate::style::Style::plain());
        let line = DropLine {
            facts: Facts {
                pid: owner.map(|o| o.pid),
                comm: owner.map(|o| o.comm.clone()),
                netns: Some(rec.netns.into()),
                ports: vec![rec.port],
                text: text.clone(),
                ..Facts::default()
            },
            who: owner
                .map(|o| format!("owner {} {}", o.pid, safe(&o.comm)))
                .unwrap_or_default(),
            text,
        };
        self.line(Cause::AcceptQueueFull, line, None);
        self.record(|r| r.on_listen_drop(rec, owner, ts));
        Ok(())
    }

    fn on_neigh_state(&mut self, rec: &NeighStateRecord, ts: f64) -> io::Result<()> {
        self.record(|r| r.on_neigh_state(rec, ts));
        Ok(())
    }

    fn tick(&mut self, s: &Summary, session: &Session) -> io::Result<()> {
        self.app.data.on_tick(s, session);
        self.summary = s.clone();
        self.session = *session;
        self.dirty = true;
        self.record(|r| r.tick(s, session));
        self.pump().map(|_| ())
    }

    fn wants_live_report(&self) -> bool {
        true
    }

    fn on_report(&mut self, report: &Report) -> io::Result<()> {
        self.app.data.on_report(report);
        self.report = Some(report.clone());
        self.dirty = true;
        Ok(())
    }

    fn on_start(&mut self, header: &Header) -> io::Result<()> {
        self.naming = Some(header.naming());
        self.app.data.hooks = header.hooks.clone();
        self.header = Some(header.clone());
        // After the session's notices (on the normal screen, seen again at
        // the end): the screen from here on.
        if !self.detached && self.term.is_none() {
            self.enter()?;
        }
        Ok(())
    }

    fn on_snapshot(&mut self, snap: &Snapshot) -> io::Result<()> {
        self.snapshot = Some(snap.clone());
        self.record(|r| r.on_snapshot(snap));
        Ok(())
    }

    fn on_netns_snapshot(&mut self, at_s: f64, ns: &NetnsSnapshot) -> io::Result<()> {
        self.record(|r| r.on_netns_snapshot(at_s, ns));
        Ok(())
    }

    fn on_counts(&mut self, at_s: f64, counts: &Counts, session: &Session) -> io::Result<()> {
        if let Some(naming) = &self.naming {
            let s = Summary::from_counts(counts, naming);
            self.app.data.on_counts(at_s, &s);
        }
        self.app.data.session = *session;
        self.session = *session;
        self.dirty = true;
        self.record(|r| r.on_counts(at_s, counts, session));
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.record(|r| r.flush());
        Ok(())
    }

    fn poll_every(&self) -> Option<Duration> {
        Some(POLL)
    }

    fn poll(&mut self) -> io::Result<Flow> {
        self.pump()
    }

    /// A replay's screen stays at the end of the recording until `q`; then
    /// (and at the end of a live session) the normal screen and the summary.
    fn finish(&mut self, s: &Summary, session: &Session) -> io::Result<()> {
        self.app.data.on_tick(s, session);
        self.summary = s.clone();
        self.session = *session;
        if let Some(r) = &mut self.app.replay {
            r.done = true;
            self.app.frozen = None;
            self.dirty = true;
            while self.term.is_some() && self.pump()? != Flow::Stop {
                std::thread::sleep(POLL);
            }
        }
        let recorded = self.recorder.take();
        self.leave_and_print(s, session)?;
        if let Some((mut r, path)) = recorded {
            r.finish(s, session)?;
            eprintln!(
                "netdrop: recording saved to {}",
                crate::text::safe_path(&path)
            );
        }
        Ok(())
    }
}
