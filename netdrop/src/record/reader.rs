//! Reads a recording, whatever state it is in: every intact frame is returned,
//! and each stretch of damage is described (where, how long, why) instead of
//! stopping the replay. Never panics, whatever the bytes (fuzzed).
//!
//! The reader streams: it checks the preamble and the header frame before
//! reading further, then reads frame by frame through a bounded window (one
//! frame of at most [`MAX_PAYLOAD`] bytes plus a read-ahead, see
//! [`window::MAX_WINDOW`]), so its memory does not depend on the file's size.
//! [`open_file`] refuses what is not a regular file before reading a byte.
//!
//! A second recording appended to the first (its own `NDREC` preamble and
//! header after the first's frames) ends the reading: it is reported as
//! [`Damage::SecondRecording`], never merged into the first.

use std::{fmt, io::Read, ops::Range};

use super::format::{
    Entry, FRAME_HEAD, FRAME_TAIL, Header, MAGIC, MAX_PAYLOAD, PREAMBLE_LEN, SYNC, VERSION,
    checksum, kind, read_preamble,
};

mod file;
pub mod window;

pub use file::{NOT_A_FILE, open_file};
use window::Window;

/// What was wrong with a recording, and where (byte offsets in the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// Bytes that are not an intact frame, skipped up to the next intact one.
    Corrupt { offset: u64, len: u64, why: String },
    /// The file ends inside a frame (the recorder was killed while writing it,
    /// or the copy was cut short).
    Truncated { offset: u64, have: u64, need: u64 },
    /// An intact frame of a kind this netdrop does not know (a newer writer).
    UnknownKind { offset: u64, kind: u8 },
    /// An intact frame whose contents do not decode.
    BadPayload { offset: u64, kind: u8, why: String },
    /// No end frame: the recording was not stopped cleanly.
    NoEnd { at: u64 },
    /// Another recording starts at `offset` (files concatenated): reading
    /// stopped there. `end` is the end of the file; `about` says what the
    /// second recording's header says (or why it cannot).
    SecondRecording {
        offset: u64,
        end: u64,
        about: String,
    },
    /// Reading the file failed at `offset`: nothing after it was read.
    Unreadable { offset: u64, why: String },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Corrupt { offset, len, why } => write!(
                f,
                "bytes {offset}..{} ({len} bytes) are damaged ({why}): skipped",
                offset + len
            ),
            Damage::Truncated { offset, have, need } => write!(
                f,
                "the file ends inside the record at byte {offset} ({have} of its {need} bytes are there): it was cut short"
            ),
            Damage::UnknownKind { offset, kind } => write!(
                f,
                "record at byte {offset} has kind {kind}, unknown to this netdrop: skipped"
            ),
            Damage::BadPayload { offset, kind, why } => write!(
                f,
                "record at byte {offset} (kind {kind}) passed its checksum but does not decode ({why}): skipped"
            ),
            Damage::NoEnd { at } => write!(
                f,
                "no end record after byte {at}: the recorder did not stop cleanly (killed, crashed or power lost); everything before is replayed"
            ),
            Damage::SecondRecording { offset, end, about } => write!(
                f,
                "bytes {offset}..{end} are a second recording ({about}), appended to this one and not replayed: \
                 replay it separately (e.g. dd if=FILE of=second.ndr iflag=skip_bytes skip={offset})"
            ),
            Damage::Unreadable { offset, why } => write!(
                f,
                "reading stopped at byte {offset} ({why}): the rest of the file was not replayed"
            ),
        }
    }
}

/// The frames of a recording after its header, in order, with their offsets.
pub struct Reader<R> {
    win: Window<R>,
    /// Where the next frame starts.
    pos: u64,
    /// The file's size when it was opened, if known.
    len: Option<u64>,
    damage: Vec<Damage>,
    ended: bool,
    done: bool,
    /// Bytes the search for intact frames inside damage may still checksum.
    /// Each candidate costs its claimed length, so a crafted file of many
    /// overlapping frame heads would otherwise take time quadratic in its size.
    resync_budget: u64,
}

/// Checksum work allowed for resynchronising: generous for real damage (every
/// candidate of a file several times over), bounded for crafted input.
fn resync_budget(len: u64) -> u64 {
    (1u64 << 30).saturating_add(len.saturating_mul(8))
}

/// [`open_stream`] over bytes in memory (tests, the fuzz target).
pub fn open(data: &[u8]) -> Result<(Header, Reader<&[u8]>), String> {
    open_stream(data, Some(data.len() as u64))
}

/// Checks the preamble and the header frame of the recording `src` (of `len`
/// bytes, if known) before reading any further: without them nothing can be
/// replayed. The frames after the header are read as the reader is iterated.
pub fn open_stream<R: Read>(src: R, len: Option<u64>) -> Result<(Header, Reader<R>), String> {
    let mut win = Window::new(src);
    let unreadable = |win: &Window<R>| {
        win.error()
            .map(|(at, e)| format!("cannot read it (at byte {at}): {e}"))
    };
    let preamble = win.get(0, PREAMBLE_LEN);
    let version = match read_preamble(preamble) {
        Ok(v) => v,
        Err(e) => return Err(unreadable(&win).unwrap_or(e)),
    };
    if version > VERSION {
        return Err(format!(
            "recording format version {version} is newer than this netdrop reads (up to {VERSION}): replay it with a newer netdrop"
        ));
    }
    if version == 0 {
        return Err("recording format version 0 does not exist: the file is damaged".into());
    }
    let at = PREAMBLE_LEN as u64;
    let header = match parse(&mut win, at) {
        Parse::Frame {
            kind: kind::HEADER,
            payload,
            next,
        } => match Entry::decode(kind::HEADER, &win.get(at, 0)[payload]) {
            Some(Ok(Entry::Header(h))) => (*h, next),
            Some(Err(e)) => return Err(format!("the header record does not decode: {e}")),
            _ => unreachable!("HEADER decodes to a header"),
        },
        Parse::Frame { kind, .. } => {
            return Err(format!(
                "the first record is of kind {kind}, not a header: the file is damaged"
            ));
        }
        Parse::Incomplete { need } => {
            if let Some(e) = unreadable(&win) {
                return Err(e);
            }
            return Err(format!(
                "truncated inside the header record (the file has {} bytes, the header needs {})",
                win.end_offset().unwrap_or(at),
                PREAMBLE_LEN + need
            ));
        }
        Parse::Bad(why) => return Err(format!("the header record is damaged: {why}")),
    };
    let (header, pos) = header;
    Ok((
        header,
        Reader {
            win,
            pos,
            len,
            damage: Vec::new(),
            ended: false,
            done: false,
            resync_budget: resync_budget(len.unwrap_or(0)),
        },
    ))
}

/// Where the search through damage stopped.
struct Found {
    at: u64,
    /// A second recording's preamble (not a frame) starts there.
    second: bool,
}

impl<R: Read> Reader<R> {
    #[cfg(test)]
    pub(crate) fn set_resync_budget(&mut self, bytes: u64) {
        self.resync_budget = bytes;
    }

    /// Damage found so far (all of it once the iterator is exhausted).
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// Whether an end record was read.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The most memory the reader's window has held, in bytes.
    pub fn window_peak(&self) -> usize {
        self.win.peak()
    }

    /// The end of the file: known once it was read, else its size when opened,
    /// else found by reading on.
    fn file_end(&mut self, at_least: u64) -> u64 {
        match (self.win.end_offset(), self.len) {
            (Some(end), _) => end,
            (None, Some(len)) if len >= at_least => len,
            _ => self.win.skip_to_end(),
        }
    }

    /// From `from`, the first offset where an intact frame (or a second
    /// recording) starts (`Err` when the checksum budget ran out first).
    fn resync(&mut self, from: u64) -> Result<Option<Found>, ()> {
        let mut i = from;
        while let Some(at) = self.next_candidate(i) {
            i = at;
            let second = self.win.get(i, MAGIC.len()).starts_with(&MAGIC);
            if second {
                // Only a signature followed by a real version counts.
                let preamble = self.win.get(i, PREAMBLE_LEN);
                if matches!(read_preamble(preamble), Ok(v) if v > 0) {
                    return Ok(Some(Found { at: i, second }));
                }
                i += 1;
                continue;
            }
            let head = self.win.get(i, FRAME_HEAD);
            let claimed = head
                .get(4..8)
                .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
            // Only a plausible frame that fits in the file gets its checksum computed.
            let total = FRAME_HEAD + claimed as usize + FRAME_TAIL;
            let fits = claimed <= MAX_PAYLOAD && self.win.get(i, total).len() >= total;
            let cost = FRAME_HEAD as u64 + if fits { u64::from(claimed) } else { 0 };
            if cost > self.resync_budget {
                return Err(());
            }
            self.resync_budget -= cost;
            if matches!(parse(&mut self.win, i), Parse::Frame { .. }) {
                return Ok(Some(Found { at: i, second }));
            }
            i += 1;
        }
        Ok(None)
    }

    /// From `from`, the next offset holding a frame's sync word or a
    /// preamble's signature (its first 4 bytes); `None` at the end.
    fn next_candidate(&mut self, mut from: u64) -> Option<u64> {
        loop {
            let bytes = self.win.get(from, window::CHUNK);
            if bytes.len() < SYNC.len() {
                return None;
            }
            if let Some(at) = bytes
                .windows(SYNC.len())
                .position(|w| w == SYNC || w == &MAGIC[..SYNC.len()])
            {
                return Some(from + at as u64);
            }
            from += (bytes.len() + 1 - SYNC.len()) as u64;
        }
    }

    /// Skips damage at `pos` (described by `bad`) up to the next intact frame.
    fn skip_damage(&mut self, bad: Parse) {
        let pos = self.pos;
        let found = match self.resync(pos + 1) {
            Ok(found) => found,
            Err(()) => {
                let end = self.win.skip_to_end();
                self.damage.push(Damage::Corrupt {
                    offset: pos,
                    len: end - pos,
                    why: "too many false record signatures to search through: gave up".into(),
                });
                self.pos = end;
                return;
            }
        };
        match found {
            Some(Found { at: next, second }) => {
                let why = match bad {
                    Parse::Bad(why) => why,
                    _ if second => {
                        "its length runs past the start of a second recording".to_string()
                    }
                    _ => "its length runs past the next record".to_string(),
                };
                self.damage.push(Damage::Corrupt {
                    offset: pos,
                    len: next - pos,
                    why,
                });
                self.pos = next;
            }
            None => {
                let end = self.win.skip_to_end();
                self.pos = end;
                if self.win.error().is_some() {
                    // The file did not end here: reading failed (said next).
                    return;
                }
                self.damage.push(match bad {
                    Parse::Incomplete { need } => Damage::Truncated {
                        offset: pos,
                        have: end - pos,
                        need: need as u64,
                    },
                    Parse::Bad(why) => Damage::Corrupt {
                        offset: pos,
                        len: end - pos,
                        why,
                    },
                    Parse::Frame { .. } => unreachable!("not damage"),
                });
            }
        }
    }

    /// A second recording starts at `at` (its preamble, or its header frame
    /// when `preamble` is false): say so and stop.
    fn second_recording(&mut self, at: u64, preamble: bool) {
        let header_at = if preamble {
            at + PREAMBLE_LEN as u64
        } else {
            at
        };
        let version = if preamble {
            read_preamble(self.win.get(at, PREAMBLE_LEN)).ok()
        } else {
            None
        };
        let header = match parse(&mut self.win, header_at) {
            Parse::Frame {
                kind: kind::HEADER,
                payload,
                ..
            } => match Entry::decode(kind::HEADER, &self.win.get(header_at, 0)[payload]) {
                Some(Ok(Entry::Header(h))) => Ok(h),
                _ => Err("its header does not decode"),
            },
            Parse::Frame { .. } => Err("no header after its preamble"),
            Parse::Incomplete { .. } => Err("the file ends inside its header"),
            Parse::Bad(_) => Err("its header is damaged"),
        };
        let mut about = match header {
            // The header's strings are the file's: shown escaped.
            Ok(h) => format!(
                "netdrop {} on {}, started {}",
                crate::text::safe(&h.netdrop_version),
                crate::text::safe(&h.hostname),
                crate::text::utc(h.start_unix)
            ),
            Err(why) => why.to_string(),
        };
        if let Some(v) = version.filter(|&v| v != VERSION) {
            about.push_str(&format!(", format version {v}"));
        }
        if !preamble {
            about.push_str(", its preamble missing");
        }
        if !self.ended {
            self.damage.push(Damage::NoEnd { at });
        }
        let end = self.file_end(at);
        self.damage.push(Damage::SecondRecording {
            offset: at,
            end,
            about,
        });
        self.done = true;
    }
}

impl<R: Read> Iterator for Reader<R> {
    /// (offset of the frame, its entry)
    type Item = (u64, Entry);

    fn next(&mut self) -> Option<(u64, Entry)> {
        loop {
            if self.done {
                return None;
            }
            let at = self.pos;
            if self.win.ends_at(at) {
                self.done = true;
                if let Some((offset, e)) = self.win.error() {
                    self.damage.push(Damage::Unreadable {
                        offset,
                        why: e.to_string(),
                    });
                } else if !self.ended {
                    self.damage.push(Damage::NoEnd { at });
                }
                return None;
            }
            if self.win.get(at, PREAMBLE_LEN).starts_with(&MAGIC)
                && matches!(read_preamble(self.win.get(at, PREAMBLE_LEN)), Ok(v) if v > 0)
            {
                self.second_recording(at, true);
                continue;
            }
            match parse(&mut self.win, at) {
                Parse::Frame {
                    kind: kind::HEADER, ..
                } => {
                    // Only a second recording has a header here.
                    self.second_recording(at, false);
                }
                Parse::Frame {
                    kind,
                    payload,
                    next,
                } => {
                    self.pos = next;
                    match Entry::decode(kind, &self.win.get(at, 0)[payload]) {
                        None => self.damage.push(Damage::UnknownKind { offset: at, kind }),
                        Some(Err(e)) => self.damage.push(Damage::BadPayload {
                            offset: at,
                            kind,
                            why: e.to_string(),
                        }),
                        Some(Ok(entry)) => {
                            if matches!(entry, Entry::End(_)) {
                                self.ended = true;
                            }
                            return Some((at, entry));
                        }
                    }
                }
                bad => self.skip_damage(bad),
            }
        }
    }
}

enum Parse {
    /// An intact frame: its payload is at `payload` in the window from its
    /// offset on; the next frame starts at `next`.
    Frame {
        kind: u8,
        payload: Range<usize>,
        next: u64,
    },
    /// The file ends before the frame does; `need` is the frame's full size
    /// (or the fixed head's, if even that is cut).
    Incomplete {
        need: usize,
    },
    Bad(String),
}

/// The frame at stream offset `pos`.
fn parse<R: Read>(win: &mut Window<R>, pos: u64) -> Parse {
    let rest = win.get(pos, FRAME_HEAD);
    if rest.len() < FRAME_HEAD {
        let n = rest.len().min(SYNC.len());
        return if rest[..n] == SYNC[..n] {
            Parse::Incomplete { need: FRAME_HEAD }
        } else {
            Parse::Bad("no record signature".into())
        };
    }
    if rest[..SYNC.len()] != SYNC {
        return Parse::Bad("no record signature".into());
    }
    let len = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    let kind = rest[8];
    if len > MAX_PAYLOAD {
        return Parse::Bad(format!("implausible record length {len}"));
    }
    let total = FRAME_HEAD + len as usize + FRAME_TAIL;
    let rest = win.get(pos, total);
    if rest.len() < total {
        return Parse::Incomplete { need: total };
    }
    let payload = FRAME_HEAD..FRAME_HEAD + len as usize;
    let stored = u32::from_le_bytes(rest[total - 4..total].try_into().expect("4 bytes"));
    if stored != checksum(len, kind, &rest[payload.clone()]) {
        return Parse::Bad("checksum mismatch".into());
    }
    Parse::Frame {
        kind,
        payload,
        next: pos + total as u64,
    }
}
