//! Recordings: `netdrop record` (or `watch --record`) writes what the live views
//! and the diagnosis used — the drops as `watch` saw them, the exact kernel
//! counters every second, the snapshots of the kernel's own view — so that
//! `netdrop replay` shows the same thing later, elsewhere, without root.
//!
//! - [`format`]: the bytes on disk (preamble, checked frames, entry types);
//! - [`writer`]: the recording thread, bounded, counting what it leaves out;
//! - [`reader`]: reads any file, intact or not, and describes the damage.
//!
//! The sink that feeds the writer from a live session is `sink::record`.

pub mod format;
pub mod reader;
pub mod writer;

#[cfg(test)]
mod tests;

pub use format::{EndEntry, Entry, Header};
pub use reader::{Damage, Reader, open};
pub use writer::{Recorder, WriteStats};
