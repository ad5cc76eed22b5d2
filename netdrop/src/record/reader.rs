//! Reads a recording, whatever state it is in: every intact frame is returned,
//! and each stretch of damage is described (where, how long, why) instead of
//! stopping the replay. Never panics, whatever the bytes (fuzzed).

use std::fmt;

use super::format::{
    Entry, FRAME_HEAD, FRAME_TAIL, Header, MAX_PAYLOAD, PREAMBLE_LEN, SYNC, VERSION, checksum,
    kind, read_preamble,
};

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
        }
    }
}

/// The frames of a recording after its header, in order, with their offsets.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
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
fn resync_budget(len: usize) -> u64 {
    (1u64 << 30).saturating_add(8 * len as u64)
}

/// Checks the preamble and the header frame: without them nothing can be replayed.
pub fn open(data: &[u8]) -> Result<(Header, Reader<'_>), String> {
    let version = read_preamble(data)?;
    if version > VERSION {
        return Err(format!(
            "recording format version {version} is newer than this netdrop reads (up to {VERSION}): replay it with a newer netdrop"
        ));
    }
    if version == 0 {
        return Err("recording format version 0 does not exist: the file is damaged".into());
    }
    let header = match parse_at(data, PREAMBLE_LEN) {
        Parse::Frame {
            kind: kind::HEADER,
            payload,
            ..
        } => match Entry::decode(kind::HEADER, payload) {
            Some(Ok(Entry::Header(h))) => *h,
            Some(Err(e)) => return Err(format!("the header record does not decode: {e}")),
            _ => unreachable!("HEADER decodes to a header"),
        },
        Parse::Frame { kind, .. } => {
            return Err(format!(
                "the first record is of kind {kind}, not a header: the file is damaged"
            ));
        }
        Parse::Incomplete { need } => {
            return Err(format!(
                "truncated inside the header record (the file has {} bytes, the header needs {})",
                data.len(),
                PREAMBLE_LEN + need
            ));
        }
        Parse::Bad(why) => return Err(format!("the header record is damaged: {why}")),
    };
    let pos = match parse_at(data, PREAMBLE_LEN) {
        Parse::Frame { next, .. } => next,
        _ => unreachable!("parsed above"),
    };
    Ok((
        header,
        Reader {
            data,
            pos,
            damage: Vec::new(),
            ended: false,
            done: false,
            resync_budget: resync_budget(data.len()),
        },
    ))
}

impl Reader<'_> {
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

    /// From `from`, the first offset where an intact frame starts (`Err` when
    /// the checksum budget ran out first).
    fn resync(&mut self, from: usize) -> Result<Option<usize>, ()> {
        let mut i = from;
        while i + SYNC.len() <= self.data.len() {
            let rest = &self.data[i..];
            let Some(at) = rest.windows(SYNC.len()).position(|w| w == SYNC) else {
                return Ok(None);
            };
            i += at;
            let claimed = self
                .data
                .get(i + 4..i + 8)
                .map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
            // Only a frame that fits in the file gets its checksum computed.
            let fits = i + FRAME_HEAD + claimed as usize + FRAME_TAIL <= self.data.len();
            let cost = FRAME_HEAD as u64 + if fits { u64::from(claimed) } else { 0 };
            if cost > self.resync_budget {
                return Err(());
            }
            self.resync_budget -= cost;
            if matches!(parse_at(self.data, i), Parse::Frame { .. }) {
                return Ok(Some(i));
            }
            i += 1;
        }
        Ok(None)
    }

    /// Skips damage at `pos` (described by `bad`) up to the next intact frame.
    fn skip_damage(&mut self, bad: Parse<'_>) {
        let pos = self.pos;
        let found = match self.resync(pos + 1) {
            Ok(found) => found,
            Err(()) => {
                self.damage.push(Damage::Corrupt {
                    offset: pos as u64,
                    len: (self.data.len() - pos) as u64,
                    why: "too many false record signatures to search through: gave up".into(),
                });
                self.pos = self.data.len();
                return;
            }
        };
        match found {
            Some(next) => {
                let why = match bad {
                    Parse::Bad(why) => why,
                    _ => "its length runs past the next record".to_string(),
                };
                self.damage.push(Damage::Corrupt {
                    offset: pos as u64,
                    len: (next - pos) as u64,
                    why,
                });
                self.pos = next;
            }
            None => {
                self.damage.push(match bad {
                    Parse::Incomplete { need } => Damage::Truncated {
                        offset: pos as u64,
                        have: (self.data.len() - pos) as u64,
                        need: need as u64,
                    },
                    Parse::Bad(why) => Damage::Corrupt {
                        offset: pos as u64,
                        len: (self.data.len() - pos) as u64,
                        why,
                    },
                    Parse::Frame { .. } => unreachable!("not damage"),
                });
                self.pos = self.data.len();
            }
        }
    }
}

impl Iterator for Reader<'_> {
    /// (offset of the frame, its entry)
    type Item = (u64, Entry);

    fn next(&mut self) -> Option<(u64, Entry)> {
        loop {
            if self.done {
                return None;
            }
            if self.pos >= self.data.len() {
                self.done = true;
                if !self.ended {
                    self.damage.push(Damage::NoEnd {
                        at: self.data.len() as u64,
                    });
                }
                return None;
            }
            let at = self.pos;
            match parse_at(self.data, at) {
                Parse::Frame {
                    kind,
                    payload,
                    next,
                } => {
                    self.pos = next;
                    match Entry::decode(kind, payload) {
                        None => self.damage.push(Damage::UnknownKind {
                            offset: at as u64,
                            kind,
                        }),
                        Some(Err(e)) => self.damage.push(Damage::BadPayload {
                            offset: at as u64,
                            kind,
                            why: e.to_string(),
                        }),
                        Some(Ok(entry)) => {
                            if matches!(entry, Entry::End(_)) {
                                self.ended = true;
                            }
                            return Some((at as u64, entry));
                        }
                    }
                }
                bad => self.skip_damage(bad),
            }
        }
    }
}

enum Parse<'a> {
    Frame {
        kind: u8,
        payload: &'a [u8],
        next: usize,
    },
    /// The file ends before the frame does; `need` is the frame's full size
    /// (or the fixed head's, if even that is cut).
    Incomplete {
        need: usize,
    },
    Bad(String),
}

fn parse_at(data: &[u8], pos: usize) -> Parse<'_> {
    let rest = &data[pos.min(data.len())..];
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
    if rest.len() < total {
        return Parse::Incomplete { need: total };
    }
    let payload = &rest[FRAME_HEAD..FRAME_HEAD + len as usize];
    let stored = u32::from_le_bytes(rest[total - 4..total].try_into().expect("4 bytes"));
    if stored != checksum(len, kind, payload) {
        return Parse::Bad("checksum mismatch".into());
    }
    Parse::Frame {
        kind,
        payload,
        next: pos + total,
    }
}
