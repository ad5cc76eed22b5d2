//! Colour in the human views: `--color auto|always|never` and `NO_COLOR`.
//!
//! `auto` (the default) colours only a terminal, and not at all when `NO_COLOR`
//! is set to anything non-empty (<https://no-color.org>); `always` colours even
//! a pipe or a file, whatever `NO_COLOR` says; `never` never does. JSON is never
//! coloured, and neither is anything else a program reads.
//!
//! Colour wraps text netdrop wrote itself (a cause name, a count, a warning), never
//! an untrusted string: those are escaped by [`crate::text`] first, and an escape
//! sequence of netdrop's own never encloses one.
//!
//! ```
//! use netdrop::style::{self, ColorChoice, Style};
//! let s = Style::new(style::enabled(ColorChoice::Always, false));
//! assert_eq!(s.warning("late"), "\x1b[33mlate\x1b[0m");
//! assert_eq!(Style::plain().cause("rp_filter  "), "rp_filter  ");
//! ```

use std::borrow::Cow;

/// The environment variable that turns colour off in `auto` (any non-empty value).
pub const NO_COLOR: &str = "NO_COLOR";

/// `--color`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set.
    #[default]
    Auto,
    /// Colour even when piped, whatever NO_COLOR says.
    Always,
    /// No colour.
    Never,
}

/// Should output to a stream colour? `is_tty`: is that stream a terminal
/// (`std::io::IsTerminal`). Reads `NO_COLOR` from the environment.
pub fn enabled(choice: ColorChoice, is_tty: bool) -> bool {
    let no_color = std::env::var_os(NO_COLOR).is_some_and(|v| !v.is_empty());
    decide(choice, is_tty, no_color)
}

/// [`enabled`] with `NO_COLOR` given: the whole rule, pure.
pub fn decide(choice: ColorChoice, is_tty: bool, no_color: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_tty && !no_color,
    }
}

/// `--color` as the command line says it, before clap parses it: clap's own help
/// and usage errors are coloured by the same choice. The last one wins (as clap
/// takes it); a value clap will refuse counts as `auto` here.
pub fn choice_in_args<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> ColorChoice {
    use clap::ValueEnum;
    let mut choice = ColorChoice::Auto;
    let mut args = args.iter().map(|a| a.as_ref().to_string_lossy());
    while let Some(a) = args.next() {
        if a == "--" {
            break;
        }
        let value = match a.strip_prefix("--color") {
            Some("") => args.next(),
            Some(v) if v.starts_with('=') => Some(Cow::Owned(v[1..].to_string())),
            _ => continue,
        };
        if let Some(c) = value.and_then(|v| ColorChoice::from_str(&v, false).ok()) {
            choice = c;
        }
    }
    choice
}

/// SGR codes of the roles netdrop colours.
const CAUSE: &str = "1;36"; // bold cyan
const NUMBER: &str = "1"; // bold
const WARNING: &str = "33"; // yellow
const ERROR: &str = "1;31"; // bold red

/// Paints text when colour is on; hands it back unchanged when off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    on: bool,
}

impl Style {
    pub fn new(on: bool) -> Self {
        Style { on }
    }

    /// No colour.
    pub fn plain() -> Self {
        Style { on: false }
    }

    pub fn is_on(self) -> bool {
        self.on
    }

    /// A cause name (`rp_filter`).
    pub fn cause(self, text: &str) -> Cow<'_, str> {
        self.paint(CAUSE, text)
    }

    /// A count worth the eye (non-zero).
    pub fn number(self, text: &str) -> Cow<'_, str> {
        self.paint(NUMBER, text)
    }

    /// Something lost, held back or refused.
    pub fn warning(self, text: &str) -> Cow<'_, str> {
        self.paint(WARNING, text)
    }

    /// `error`.
    pub fn error(self, text: &str) -> Cow<'_, str> {
        self.paint(ERROR, text)
    }

    /// `text` in colour `sgr`; the spaces around it (padding of a column) stay
    /// outside the colour, so padded columns keep their width and look the same.
    fn paint<'a>(self, sgr: &str, text: &'a str) -> Cow<'a, str> {
        let core = text.trim_matches(' ');
        if !self.on || core.is_empty() {
            return Cow::Borrowed(text);
        }
        let before = &text[..text.len() - text.trim_start_matches(' ').len()];
        let after = &text[before.len() + core.len()..];
        Cow::Owned(format!("{before}\x1b[{sgr}m{core}\x1b[0m{after}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choice_matrix() {
        use ColorChoice::*;
        // (choice, tty, NO_COLOR set) → colour
        for (choice, tty, no_color, want) in [
            (Auto, true, false, true),
            (Auto, true, true, false),
            (Auto, false, false, false),
            (Auto, false, true, false),
            (Always, true, false, true),
            (Always, true, true, true),
            (Always, false, false, true),
            (Always, false, true, true),
            (Never, true, false, false),
            (Never, true, true, false),
            (Never, false, false, false),
            (Never, false, true, false),
        ] {
            assert_eq!(
                decide(choice, tty, no_color),
                want,
                "{choice:?} tty={tty} NO_COLOR={no_color}"
            );
        }
    }

    #[test]
    fn no_color_from_the_environment() {
        // The only test here that touches NO_COLOR; it restores it.
        let saved = std::env::var_os(NO_COLOR);
        let set = |v: Option<&str>| match v {
            // SAFETY: no other test of this crate reads or writes NO_COLOR.
            Some(v) => unsafe { std::env::set_var(NO_COLOR, v) },
            None => unsafe { std::env::remove_var(NO_COLOR) },
        };
        set(Some("1"));
        assert!(!enabled(ColorChoice::Auto, true), "NO_COLOR=1");
        assert!(enabled(ColorChoice::Always, false), "always overrides");
        set(Some(""));
        assert!(enabled(ColorChoice::Auto, true), "empty NO_COLOR is unset");
        set(None);
        assert!(enabled(ColorChoice::Auto, true));
        assert!(!enabled(ColorChoice::Auto, false), "piped");
        match saved {
            Some(v) => unsafe { std::env::set_var(NO_COLOR, v) },
            None => set(None),
        }
    }

    #[test]
    fn the_flag_is_found_before_parsing() {
        for (args, want) in [
            (&["netdrop", "watch"][..], ColorChoice::Auto),
            (
                &["netdrop", "--color", "always", "watch"],
                ColorChoice::Always,
            ),
            (&["netdrop", "watch", "--color=never"], ColorChoice::Never),
            (
                &["netdrop", "--color=never", "--color", "always"],
                ColorChoice::Always,
            ),
            (&["netdrop", "--color", "purple"], ColorChoice::Auto),
            (&["netdrop", "--color"], ColorChoice::Auto),
            (&["netdrop", "--", "--color=always"], ColorChoice::Auto),
        ] {
            assert_eq!(choice_in_args(args), want, "{args:?}");
        }
    }

    #[test]
    fn paint_keeps_padding_outside_and_off_is_identity() {
        let on = Style::new(true);
        assert_eq!(on.cause("rp_filter   "), "\x1b[1;36mrp_filter\x1b[0m   ");
        assert_eq!(on.number("     42"), "     \x1b[1m42\x1b[0m");
        assert_eq!(on.error("error"), "\x1b[1;31merror\x1b[0m");
        assert_eq!(on.number("   "), "   ", "nothing to colour");
        let off = Style::plain();
        for text in ["rp_filter   ", "  7", ""] {
            assert_eq!(off.cause(text), text);
            assert_eq!(off.warning(text), text);
        }
    }
}
