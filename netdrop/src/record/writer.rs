//! Writes a recording on its own thread, so a slow disk never stalls the ring
//! buffer. Frames go through a bounded channel; when it is full, detail events
//! are left out and counted, and the count is written to the file (LOST frames
//! and the end frame) — the exact kernel counters are never left out.
//!
//! Durability: every batch is handed to the kernel at once (a SIGKILLed recorder
//! loses at most what was still in the channel), and fsync'd every second (power
//! loss costs at most about a second).

use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use serde::Serialize;

use super::format::{self, EndEntry, Entry, LostEntry};

/// Frames waiting for the disk. At ~150 bytes a drop, 16 MiB of backlog.
const CHANNEL_FRAMES: usize = 1 << 17;
const SYNC_EVERY: Duration = Duration::from_secs(1);

enum Msg {
    Frame(Bytes),
    Finish,
}

/// What the writer thread did.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteStats {
    pub bytes: u64,
    pub frames: u64,
}

pub struct Recorder {
    path: PathBuf,
    tx: SyncSender<Msg>,
    thread: Option<JoinHandle<io::Result<WriteStats>>>,
    buf: BytesMut,
    scratch: Vec<u8>,
    /// Left out since the last LOST frame, and in total.
    pending_lost: LostEntry,
    total_lost: LostEntry,
    frames_sent: u64,
}

/// Whether a recording can be created at `path`: no file there (netdrop never
/// overwrites one), and its directory exists. Checked before the session
/// starts; the file is created only once it has.
pub fn check_path(path: &Path) -> Result<()> {
    if path.symlink_metadata().is_ok() {
        anyhow::bail!(
            "cannot record to {}: it exists (netdrop never overwrites a recording; remove it or pick another name)",
            path.display()
        );
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "cannot record to {}: no directory {}",
            path.display(),
            dir.display()
        );
    }
    Ok(())
}

impl Recorder {
    /// Creates `path` (mode 0600: recordings hold addresses; never over an
    /// existing file) and starts the writer thread.
    pub fn create(path: &Path) -> Result<Recorder> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| {
                format!(
                    "creating the recording {}{}",
                    path.display(),
                    if path.exists() {
                        " (it exists: netdrop never overwrites a recording; remove it or pick another name)"
                    } else {
                        ""
                    }
                )
            })?;
        let mut out = BufWriter::with_capacity(1 << 18, file);
        out.write_all(&format::preamble())
            .and_then(|()| out.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        let (tx, rx) = mpsc::sync_channel(CHANNEL_FRAMES);
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("netdrop-record".into())
            .spawn(move || {
                write_loop(rx, &mut out).map_err(|e| {
                    // What is on disk replays up to its last whole record.
                    let on_disk = out.get_ref().metadata().map_or(0, |m| m.len());
                    io::Error::new(
                        e.kind(),
                        format!(
                            "recording {shown} stopped at {on_disk} bytes: {e}; `netdrop replay {shown}` shows everything up to there"
                        ),
                    )
                })
            })
            .context("starting the recording thread")?;
        Ok(Recorder {
            path: path.to_path_buf(),
            tx,
            thread: Some(thread),
            buf: BytesMut::with_capacity(1 << 16),
            scratch: Vec::with_capacity(512),
            pending_lost: LostEntry::default(),
            total_lost: LostEntry::default(),
            frames_sent: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records left out so far because the disk fell behind.
    pub fn lost(&self) -> LostEntry {
        self.total_lost
    }

    pub fn frames_sent(&self) -> u64 {
        self.frames_sent
    }

    /// A detail event (drop, neighbour, listener): left out and counted if the
    /// writer is behind.
    pub fn event<T: Serialize>(&mut self, kind: u8, payload: &T, at_s: f64) -> io::Result<()> {
        let frame = self.encode(kind, payload);
        match self.tx.try_send(Msg::Frame(frame)) {
            Ok(()) => {
                self.frames_sent += 1;
                if self.pending_lost.drops + self.pending_lost.others > 0 {
                    self.pending_lost.at_s = at_s;
                    let lost = std::mem::take(&mut self.pending_lost);
                    self.must(&Entry::Lost(lost))?;
                }
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                let is_drop = kind == format::kind::DROP_ID;
                let n = if is_drop {
                    &mut self.pending_lost.drops
                } else {
                    &mut self.pending_lost.others
                };
                *n += 1;
                if is_drop {
                    self.total_lost.drops += 1;
                } else {
                    self.total_lost.others += 1;
                }
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(self.thread_error()),
        }
    }

    /// A frame that must not be left out (header, counters, snapshot): waits for room.
    pub fn must(&mut self, entry: &Entry) -> io::Result<()> {
        self.scratch.clear();
        self.scratch = entry.payload(std::mem::take(&mut self.scratch));
        format::frame(entry.kind(), &self.scratch, &mut self.buf);
        let frame = self.buf.split().freeze();
        self.tx
            .send(Msg::Frame(frame))
            .map_err(|_| self.thread_error())?;
        self.frames_sent += 1;
        Ok(())
    }

    /// Writes the end frame, waits for the disk, and says what was written.
    pub fn finish(mut self, mut end: EndEntry) -> Result<WriteStats> {
        end.lost = self.total_lost;
        let sent = self.must(&Entry::End(end));
        let _ = self.tx.send(Msg::Finish);
        let joined = self.thread.take().expect("finished once").join();
        let stats = match joined {
            Ok(r) => r.with_context(|| format!("writing the recording {}", self.path.display()))?,
            Err(_) => anyhow::bail!("the recording thread panicked"),
        };
        sent.with_context(|| format!("writing the recording {}", self.path.display()))?;
        Ok(stats)
    }

    fn encode<T: Serialize + ?Sized>(&mut self, kind: u8, v: &T) -> Bytes {
        self.scratch.clear();
        let scratch = std::mem::take(&mut self.scratch);
        // Serializing plain data into a Vec cannot fail.
        self.scratch = postcard::to_extend(v, scratch).expect("postcard encoding");
        format::frame(kind, &self.scratch, &mut self.buf);
        self.buf.split().freeze()
    }

    /// The writer thread stopped: take its error.
    fn thread_error(&mut self) -> io::Error {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("the recording thread stopped"),
        }
    }
}

fn write_loop(rx: Receiver<Msg>, out: &mut BufWriter<File>) -> io::Result<WriteStats> {
    let mut stats = WriteStats {
        bytes: format::PREAMBLE_LEN as u64,
        frames: 0,
    };
    let mut last_sync = Instant::now();
    let mut write = |m: Msg, out: &mut BufWriter<File>| -> io::Result<bool> {
        match m {
            Msg::Frame(b) => {
                out.write_all(&b)?;
                stats.bytes += b.len() as u64;
                stats.frames += 1;
                Ok(true)
            }
            Msg::Finish => Ok(false),
        }
    };
    loop {
        let first = match rx.recv_timeout(SYNC_EVERY) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Msg::Finish),
        };
        let mut go_on = true;
        if let Some(m) = first {
            go_on = write(m, out)?;
            // The rest of the batch, then hand it to the kernel.
            while go_on {
                match rx.try_recv() {
                    Ok(m) => go_on = write(m, out)?,
                    Err(_) => break,
                }
            }
            out.flush()?;
        }
        if !go_on || last_sync.elapsed() >= SYNC_EVERY {
            out.get_ref().sync_data()?;
            last_sync = Instant::now();
        }
        if !go_on {
            return Ok(stats);
        }
    }
}
