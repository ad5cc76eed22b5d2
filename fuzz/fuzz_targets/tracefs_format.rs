//! The tracefs format parser against arbitrary text (`--tracefs DIR` reads
//! `events/*/*/format` files from any directory). Its contract
//! (netdrop/src/kernel/tracefs.rs): whatever the text, `TracepointFormat::parse`
//! and the offset readers never panic; a parsed format has a name and at least
//! one field, and every field a non-empty name without `[`.
//!
//! Seeds: netdrop/tests/fixtures/formats/ (real format files of kernels 5.10 to
//! 7.2; `cargo xtask fuzz` passes that directory).

#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use netdrop::kernel::{
    kfree_skb_offsets, neigh_create_offsets, neigh_state_offsets, tracefs::TracepointFormat,
};

fuzz_target!(|data: &[u8]| {
    // The parser gets what fs::read_to_string gives: UTF-8 only.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let format = match TracepointFormat::parse(text) {
        Ok(f) => f,
        Err(e) => {
            black_box(e.to_string());
            return;
        }
    };
    assert!(!format.fields.is_empty(), "parsed with no field");
    for field in &format.fields {
        assert!(
            !field.name.is_empty() && !field.name.contains('['),
            "bad field name {:?}",
            field.name
        );
        assert!(format.field(&field.name).is_some());
    }
    // What KernelFacts::discover takes from each format.
    black_box(kfree_skb_offsets(&format));
    black_box(neigh_create_offsets(&format));
    black_box(neigh_state_offsets(&format));
    black_box(format.offset("skaddr"));
    black_box(format.offset("newstate"));
});
