//! netdrop: attribute kernel packet drops to their cause.
//!
//! The data path reads top to bottom: `kernel` (facts about the running
//! kernel) → `loader` (programs attached) → ring buffer → `decode` →
//! `classify`/`event` → `sink`s, with `counters`/`summary` giving exact totals.

pub mod advice;
pub mod causes;
pub mod classify;
pub mod cli;
pub mod container;
pub mod context;
pub mod counters;
pub mod decode;
pub mod diagnose;
pub mod dispatch;
pub mod event;
pub mod filter;
pub mod hist;
pub mod kernel;
pub mod kernel_log;
pub mod loader;
pub mod manual;
pub mod namespaces;
pub mod netns_id;
pub mod owner;
pub mod pcapng;
pub mod privileges;
pub mod reads;
pub mod record;
pub mod replay;
pub mod serve;
pub mod session;
pub mod sink;
pub mod snapshot;
pub mod style;
pub mod summary;
pub mod text;
pub mod tui;
pub mod watch;
