//! A bounded window over a byte stream: the reader looks at most one frame
//! ahead (64 MiB + 13 bytes, [`MAX_FRAME`]), plus one read's worth, whatever
//! the size of the file.

use std::io::{self, Read};

use super::super::format::{FRAME_HEAD, FRAME_TAIL, MAX_PAYLOAD};

/// The largest frame a reader ever needs whole.
pub const MAX_FRAME: usize = FRAME_HEAD + MAX_PAYLOAD as usize + FRAME_TAIL;
/// How much is read at a time when more is needed (read-ahead).
pub const CHUNK: usize = 256 << 10;
/// The first read: a small file (a foreign one refused at its first bytes)
/// costs no more; the read-ahead doubles from here up to [`CHUNK`].
pub const FIRST_READ: usize = 8 << 10;
/// The most the window's buffer ever holds.
pub const MAX_WINDOW: usize = MAX_FRAME + CHUNK;

/// Bytes `off..off + (end - start)` of the stream are `buf[start..end]`.
/// Offsets only move forward: what is before the window is gone.
pub struct Window<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The stream offset of `buf[start]`.
    off: u64,
    /// The stream has ended (or failed: see `error`).
    eof: bool,
    /// The read error that ended the stream early, and where.
    error: Option<(u64, io::Error)>,
    /// The largest the buffer has been.
    peak: usize,
}

impl<R: Read> Window<R> {
    pub fn new(src: R) -> Window<R> {
        Window {
            src,
            buf: Vec::new(),
            start: 0,
            end: 0,
            off: 0,
            eof: false,
            error: None,
            peak: 0,
        }
    }

    /// The bytes from stream offset `at` on that are in the window, at least
    /// `n` of them unless the stream ends first (`n` is at most
    /// [`MAX_FRAME`]). Bytes before `at` are let go: `at` must not be before
    /// an offset asked for earlier.
    pub fn get(&mut self, at: u64, n: usize) -> &[u8] {
        debug_assert!(n <= MAX_FRAME, "window of {n} bytes asked for");
        let n = n.min(MAX_FRAME);
        self.seek(at);
        while self.end - self.start < n && !self.eof {
            self.read_more(n);
        }
        &self.buf[self.start..self.end]
    }

    /// Whether the stream ends exactly at `at` (nothing there, and no more).
    pub fn ends_at(&mut self, at: u64) -> bool {
        self.get(at, 1).is_empty()
    }

    /// Reads (and lets go of) everything up to the end of the stream; returns
    /// its length.
    pub fn skip_to_end(&mut self) -> u64 {
        loop {
            let have = (self.end - self.start) as u64;
            self.seek(self.off + have);
            if self.eof {
                return self.off;
            }
            self.read_more(CHUNK);
        }
    }

    /// The stream's length, once its end has been read.
    pub fn end_offset(&self) -> Option<u64> {
        self.eof
            .then_some(self.off + (self.end - self.start) as u64)
    }

    /// The read error that ended the stream early: where, and what.
    pub fn error(&self) -> Option<(u64, &io::Error)> {
        self.error.as_ref().map(|(at, e)| (*at, e))
    }

    /// The largest the buffer has been, in bytes.
    pub fn peak(&self) -> usize {
        self.peak
    }

    fn seek(&mut self, at: u64) {
        debug_assert!(
            at >= self.off,
            "window moved back from {} to {at}",
            self.off
        );
        let at = at.max(self.off);
        loop {
            let have = (self.end - self.start) as u64;
            let skip = (at - self.off).min(have);
            self.start += skip as usize;
            self.off += skip;
            if self.off == at || self.eof {
                return;
            }
            // Past the window: read on (and let go) up to `at`.
            self.read_more(CHUNK);
        }
    }

    /// One read towards `n` bytes from `start`. The window works towards
    /// what is missing but at most doubles per read (a frame's claimed length
    /// is believed only as far as the bytes go: a short file that claims
    /// 64 MiB costs no 64 MiB buffer), and is never under the read-ahead
    /// ([`FIRST_READ`] doubling up to [`CHUNK`]). What is left is moved to the front only when the room
    /// after it is too small: about once per window's worth of reading.
    fn read_more(&mut self, n: usize) {
        let have = self.end - self.start;
        let missing = n.saturating_sub(have).max(1);
        // The read-ahead grows from FIRST_READ as reading goes on.
        let ahead = CHUNK.min((2 * self.buf.len()).max(FIRST_READ));
        let size = (have + missing)
            .min((2 * have).max(have + CHUNK))
            .max(ahead)
            .min(MAX_WINDOW);
        let room = self.buf.len() - self.end;
        if size > self.buf.len() || room < missing.min(size.saturating_sub(have)) {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = have;
        }
        if size > self.buf.len() {
            // Doubling (a few reallocations in all), but never past the bound
            // (which Vec's own growth would overshoot).
            let size = size.max(2 * self.buf.len()).min(MAX_WINDOW);
            self.buf.reserve_exact(size - self.buf.len());
            self.buf.resize(size, 0);
            self.peak = self.peak.max(self.buf.capacity());
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.error = Some((self.off + (self.end - self.start) as u64, e));
                    self.eof = true;
                }
            }
            return;
        }
    }
}
