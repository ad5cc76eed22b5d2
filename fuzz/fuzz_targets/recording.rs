//! The recording reader against arbitrary bytes. Its contract
//! (netdrop/src/record/reader.rs): whatever the input, `open` and the iterator
//! never panic, never loop forever, and only borrow the input.
//!
//! Seeds: fuzz/seeds/recording/ (small valid recordings).

#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, mut reader) = match netdrop::record::open(data) {
        Ok(v) => v,
        Err(why) => {
            black_box(why);
            return;
        }
    };
    black_box(header);
    // Drain every entry. Offsets only move forward and stay inside the input:
    // that is what makes the reader terminate.
    let mut last = None;
    for (offset, entry) in reader.by_ref() {
        assert!(offset < data.len() as u64, "offset {offset} past the end");
        assert!(last < Some(offset), "offset {offset} after {last:?}");
        last = Some(offset);
        black_box(entry);
    }
    // Exhausted stays exhausted.
    assert!(reader.next().is_none());
    for damage in reader.damage() {
        black_box(damage.to_string());
    }
});
