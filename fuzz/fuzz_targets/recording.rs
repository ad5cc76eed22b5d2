//! The recording reader against arbitrary bytes. Its contract
//! (netdrop/src/record/reader.rs): whatever the input, `open` and the iterator
//! never panic, never loop forever, keep their window within one frame plus a
//! read-ahead, and read the same however the input is cut into reads.
//!
//! Seeds: fuzz/seeds/recording/ (small valid recordings).

#![no_main]

use std::{hint::black_box, io::Read};

use libfuzzer_sys::fuzz_target;
use netdrop::record::{
    Entry,
    reader::{Damage, open_stream, window::MAX_WINDOW},
};

/// Hands out 1 to `max` bytes per read, as a pipe or a slow disk might.
struct Trickle<'a> {
    data: &'a [u8],
    max: usize,
    n: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.n = self.n % self.max + 1;
        let k = self.n.min(out.len()).min(self.data.len());
        out[..k].copy_from_slice(&self.data[..k]);
        self.data = &self.data[k..];
        Ok(k)
    }
}

/// Every entry with its offset, and the damage; `Err` if `open` refused.
type Outcome = Result<(Vec<(u64, Entry)>, Vec<Damage>), String>;

fn read_all<R: Read>(src: R, len: u64) -> Outcome {
    let (header, mut reader) = open_stream(src, Some(len))?;
    black_box(header);
    // Offsets only move forward and stay inside the input: that is what
    // makes the reader terminate.
    let mut entries: Vec<(u64, Entry)> = Vec::new();
    for (offset, entry) in reader.by_ref() {
        assert!(offset < len, "offset {offset} past the end");
        if let Some((last, _)) = entries.last() {
            assert!(*last < offset, "offset {offset} after {last}");
        }
        entries.push((offset, entry));
    }
    // Exhausted stays exhausted.
    assert!(reader.next().is_none());
    assert!(
        reader.window_peak() <= MAX_WINDOW,
        "{}",
        reader.window_peak()
    );
    for damage in reader.damage() {
        let at = match damage {
            Damage::Corrupt { offset, len, .. } => offset + len,
            Damage::Truncated { offset, have, .. } => offset + have,
            Damage::UnknownKind { offset, .. }
            | Damage::BadPayload { offset, .. }
            | Damage::Unreadable { offset, .. } => *offset,
            Damage::NoEnd { at } => *at,
            Damage::SecondRecording { end, .. } => *end,
        };
        assert!(at <= len, "{damage:?} past the end ({len})");
        black_box(damage.to_string());
    }
    Ok((entries, reader.damage().to_vec()))
}

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let whole = read_all(data, len);
    // The same bytes cut into small reads read the same.
    let max = 1 + data.first().map_or(0, |b| usize::from(*b % 13));
    let cut = read_all(Trickle { data, max, n: 0 }, len);
    assert!(whole == cut, "{max}-byte reads differ");
});
