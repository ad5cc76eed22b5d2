//! The sink that feeds a live session into a recording (`record/`).

use std::{io, path::Path};

use anyhow::Result;

use super::{Session, Sink};
use crate::{
    decode::{ListenRecord, NeighRecord, NeighStateRecord},
    event::DropView,
    owner::Owner,
    record::{
        EndEntry, Entry, Header, Recorder,
        format::{self, DropEntryRef, ListenEntryRef},
        writer,
    },
    snapshot::{NetnsSnapshot, Snapshot},
    summary::{Counts, Summary},
};

/// Feeds a live session into a recording.
pub struct RecordSink {
    /// Where to write; the file is made when the session starts (hooks
    /// attached), so a session that cannot start leaves nothing behind.
    path: std::path::PathBuf,
    rec: Option<Recorder>,
    start_mono_ns: u64,
    /// Print a progress line on stderr every interval (`netdrop record`).
    progress: bool,
}

impl RecordSink {
    /// Checks that a recording can be made at `path` (it does not exist, its
    /// directory does); the file itself is created at [`Sink::on_start`].
    pub fn create(path: &Path, progress: bool) -> Result<RecordSink> {
        writer::check_path(path)?;
        Ok(RecordSink {
            path: path.to_path_buf(),
            rec: None,
            start_mono_ns: 0,
            progress,
        })
    }

    fn rec(&mut self) -> &mut Recorder {
        self.rec
            .as_mut()
            .expect("recording not started, or finished")
    }

    fn at_s(&self, ts_ns: u64) -> f64 {
        ts_ns.saturating_sub(self.start_mono_ns) as f64 / 1e9
    }
}

impl Sink for RecordSink {
    fn on_start(&mut self, header: &Header) -> io::Result<()> {
        self.start_mono_ns = header.start_mono_ns;
        let rec = Recorder::create(&self.path).map_err(|e| io::Error::other(format!("{e:#}")))?;
        self.rec
            .insert(rec)
            .must(&Entry::Header(Box::new(header.clone())))
    }

    fn on_snapshot(&mut self, snap: &Snapshot) -> io::Result<()> {
        self.rec().must(&Entry::Snapshot(Box::new(snap.clone())))
    }

    fn on_netns_snapshot(&mut self, at_s: f64, ns: &NetnsSnapshot) -> io::Result<()> {
        let entry = format::NetnsEntry::new(at_s, ns);
        self.rec().must(&Entry::Netns(Box::new(entry)))
    }

    fn on_counts(&mut self, at_s: f64, counts: &Counts, session: &Session) -> io::Result<()> {
        let entry = format::CountersEntry::new(at_s, counts, session);
        self.rec().must(&Entry::Counters(Box::new(entry)))
    }

    fn on_drop(&mut self, ev: &DropView<'_>) -> io::Result<()> {
        let at = self.at_s(ev.rec.ts_ns);
        let entry = format::Identified {
            entry: format::Tagged {
                entry: DropEntryRef {
                    rec: ev.rec,
                    location: &ev.location,
                    owner: ev.owner.as_ref(),
                    netns_name: ev.netns_name.as_deref(),
                },
                netns_cookie: ev.rec.netns_cookie,
            },
            owner: ev.owner.as_ref().and_then(Owner::identity),
            netns: ev.netns_identity.as_ref(),
        };
        self.rec().event(format::kind::DROP_ID, &entry, at)
    }

    fn on_neigh_fail(&mut self, rec: &NeighRecord, _ts: f64) -> io::Result<()> {
        let at = self.at_s(rec.ts_ns);
        self.rec().event(format::kind::NEIGH_FAIL, rec, at)
    }

    fn on_listen_drop(
        &mut self,
        rec: &ListenRecord,
        owner: Option<&Owner>,
        _ts: f64,
    ) -> io::Result<()> {
        let at = self.at_s(rec.ts_ns);
        let entry = format::Identified {
            entry: format::Tagged {
                entry: ListenEntryRef { rec, owner },
                netns_cookie: rec.netns_cookie,
            },
            owner: owner.and_then(Owner::identity),
            netns: None,
        };
        self.rec().event(format::kind::LISTEN_DROP_ID, &entry, at)
    }

    fn on_neigh_state(&mut self, rec: &NeighStateRecord, _ts: f64) -> io::Result<()> {
        let at = self.at_s(rec.ts_ns);
        self.rec().event(format::kind::NEIGH_STATE, rec, at)
    }

    fn tick(&mut self, summary: &Summary, session: &Session) -> io::Result<()> {
        if self.progress {
            let r = self.rec();
            eprintln!(
                "netdrop: recording {}: {:.0}s, {} drops counted, {} records written{}",
                r.path().display(),
                session.duration_s,
                summary.total_drops,
                r.frames_sent(),
                match r.lost() {
                    l if l.drops + l.others > 0 => format!(
                        ", {} left out (disk too slow: {} drops, {} others)",
                        l.drops + l.others,
                        l.drops,
                        l.others
                    ),
                    _ => String::new(),
                }
            );
        }
        Ok(())
    }

    fn finish(&mut self, _summary: &Summary, session: &Session) -> io::Result<()> {
        let Some(rec) = self.rec.take() else {
            return Ok(());
        };
        let path = rec.path().to_path_buf();
        let end = EndEntry {
            session: session.into(),
            lost: Default::default(),
        };
        let lost = rec.lost();
        let stats = rec
            .finish(end)
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        eprintln!(
            "netdrop: recorded {} records ({:.1} KiB) to {}{}",
            stats.frames,
            stats.bytes as f64 / 1024.0,
            path.display(),
            if lost.drops + lost.others > 0 {
                format!(
                    "; {} drop events and {} other events were left out because writing fell behind (counts are exact)",
                    lost.drops, lost.others
                )
            } else {
                String::new()
            }
        );
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
