//! The live screen's state and its keys: the data (what `p` freezes), what
//! is selected and open, the filter being typed, help. Pure: keys in,
//! state and an [`Action`] for the sink out.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{
    filter::Filter,
    model::{Data, Sort},
};
use crate::classify::Cause;

/// Which list the arrows move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    /// The causes, ranked.
    #[default]
    Causes,
    /// The groups of the selected cause (Enter on a cause).
    Groups,
    /// One group (Enter on a group): its lines.
    Group,
}

/// What the sink does after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    /// Draw again.
    Redraw,
    /// End: the session stops, the summary is printed on the normal screen.
    Quit,
    /// Start or stop writing a recording (`r`).
    Record,
}

/// Where a replay stands (`netdrop replay` on the screen).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Replay {
    /// Paced at the recorded speed.
    pub realtime: bool,
    /// Everything was read (the screen stays until `q`).
    pub done: bool,
}

#[derive(Debug, Clone, Default)]
pub struct App {
    pub data: Data,
    /// A copy of `data` taken by `p`: drawn instead while paused.
    pub frozen: Option<Data>,
    pub selected: Option<Cause>,
    pub pane: Pane,
    /// Index among the selected cause's (filtered) groups.
    pub group: usize,
    pub sort: Sort,
    pub filter: Filter,
    /// The filter being typed after `/`.
    pub input: Option<String>,
    pub help: bool,
    /// One line for the status bar (a filter error, the recording's path).
    pub message: Option<String>,
    /// The recording being written (`r`), escaped.
    pub recording: Option<String>,
    /// Set for a replay.
    pub replay: Option<Replay>,
}

impl App {
    /// What is drawn: the frozen copy while paused.
    pub fn shown(&self) -> &Data {
        self.frozen.as_ref().unwrap_or(&self.data)
    }

    pub fn paused(&self) -> bool {
        self.frozen.is_some()
    }

    /// The selected cause, kept while it is ranked; else the first.
    pub fn cause(&self) -> Option<Cause> {
        let ranked = self.shown().ranked(self.sort);
        self.selected
            .filter(|c| ranked.iter().any(|r| r.cause == *c))
            .or_else(|| ranked.first().map(|r| r.cause))
    }

    pub fn key(&mut self, k: KeyEvent) -> Action {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if let Some(text) = &mut self.input {
            match k.code {
                KeyCode::Enter => {
                    let text = self.input.take().unwrap_or_default();
                    self.set_filter(&text);
                }
                KeyCode::Esc => self.input = None,
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) if text.chars().count() < 200 => text.push(c),
                _ => {}
            }
            return Action::Redraw;
        }
        if self.help {
            self.help = false;
            return match k.code {
                KeyCode::Char('q') => Action::Quit,
                _ => Action::Redraw,
            };
        }
        match k.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('r') => return Action::Record,
            KeyCode::Up | KeyCode::Char('k') => self.step(-1),
            KeyCode::Down | KeyCode::Char('j') => self.step(1),
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => self.open(),
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Left | KeyCode::Char('h') => self.back(),
            KeyCode::Char('/') => self.input = Some(self.filter.source.clone()),
            KeyCode::Char('p') | KeyCode::Char(' ') => {
                self.frozen = match self.frozen.take() {
                    Some(_) => None,
                    None => Some(self.data.clone()),
                }
            }
            KeyCode::Char('s') => {
                self.sort = match self.sort {
                    Sort::Rate => Sort::Total,
                    Sort::Total => Sort::Rate,
                }
            }
            KeyCode::Char('?') => self.help = true,
            _ => return Action::None,
        }
        Action::Redraw
    }

    /// `/` then Enter: an empty text clears the filter; a bad one is said.
    fn set_filter(&mut self, text: &str) {
        match Filter::parse(text) {
            Ok(f) => {
                self.data.other_filtered = (!f.is_empty()).then(Default::default);
                self.filter = f;
                self.group = 0;
                self.message = None;
            }
            Err(e) => self.message = Some(format!("filter: {}", crate::text::safe(&e))),
        }
    }

    fn step(&mut self, by: isize) {
        let Some(cause) = self.cause() else {
            return;
        };
        match self.pane {
            Pane::Causes => {
                let ranked = self.shown().ranked(self.sort);
                let at = ranked.iter().position(|r| r.cause == cause).unwrap_or(0);
                let next = (at as isize + by).clamp(0, ranked.len() as isize - 1) as usize;
                self.selected = Some(ranked[next].cause);
                self.group = 0;
            }
            Pane::Groups | Pane::Group => {
                let n = self.shown().groups(cause, &self.filter).len();
                self.group = (self.group as isize + by).clamp(0, n.max(1) as isize - 1) as usize;
            }
        }
    }

    fn open(&mut self) {
        let Some(cause) = self.cause() else {
            return;
        };
        self.selected = Some(cause);
        self.pane = match self.pane {
            Pane::Causes => Pane::Groups,
            Pane::Groups if !self.shown().groups(cause, &self.filter).is_empty() => Pane::Group,
            p => p,
        };
    }

    fn back(&mut self) {
        self.pane = match self.pane {
            Pane::Group => Pane::Groups,
            _ => Pane::Causes,
        };
    }
}
