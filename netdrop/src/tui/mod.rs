//! The live screen: `netdrop watch` and `netdrop replay` on a terminal.
//! One screen that stays put (ratatui on crossterm, alternate screen): the
//! causes ranked by drops/s with their exact totals, a minute of history and
//! the advice; the selected cause's groups with their owners; `other` drops
//! counted by reason and kernel location; the latest drop lines; health.
//!
//! It is a [`Sink`](crate::sink::Sink) ([`sink::Screen`]) fed like any other:
//! `model` and `app` hold the state and the keys (pure, unit-tested),
//! `render` draws it (tested on ratatui's `TestBackend`), `term` owns the
//! terminal (keys on a thread of their own, restored on every way out).

pub mod app;
pub mod filter;
pub mod model;
pub mod render;
pub mod sink;
pub mod term;

#[cfg(test)]
mod tests;

use std::io::IsTerminal;

/// How the screen looks and behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TuiOptions {
    /// Colours (false: bold and reverse only; `--color never`, `NO_COLOR`).
    pub color: bool,
    /// A replay (the screen stays at its end until `q`), paced at the
    /// recorded speed or not.
    pub replay: Option<bool>,
}

impl Default for TuiOptions {
    fn default() -> Self {
        TuiOptions {
            color: true,
            replay: None,
        }
    }
}

/// Whether the human view is the screen: stdout and stdin are a terminal
/// and `--lines` was not given.
pub fn wanted(lines: bool) -> bool {
    !lines && std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}
