//! Strings from the kernel and from other processes, made safe for a terminal.
//!
//! A process chooses its own name (`prctl(PR_SET_NAME)`), an administrator or a
//! container runtime names interfaces and namespaces, and a recording comes from
//! another machine: none of them may move the cursor, clear the screen, recolour
//! the terminal, plant a hyperlink or forge a line in netdrop's human views.
//! Every such string — comm, device, namespace and container names, hostnames,
//! kernel release, paths, reason and symbol names — goes through [`safe`] (or
//! [`Safe`] in a format string) before it is printed for a human. JSON output is
//! not escaped here: serde_json escapes control characters itself, and a JSON
//! consumer gets the exact bytes.
//!
//! The escaping, chosen to be readable and unambiguous (Rust's own notation):
//!
//! | character | shown as |
//! |---|---|
//! | backslash | `\\` |
//! | newline, carriage return, tab | `\n`, `\r`, `\t` |
//! | other C0 controls (U+0000–U+001F) and DEL (U+007F) | `\x1b`, `\x07`, `\x08`, `\x7f` … |
//! | C1 controls (U+0080–U+009F) | `\u{9b}` … |
//! | bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) and the line/paragraph separators U+2028, U+2029 | `\u{202e}` … |
//! | bytes that are not UTF-8 ([`safe_bytes`]) | `\xff` … (one per byte) |
//!
//! Everything else — printable ASCII, accented letters, CJK, emoji, and U+FFFD
//! where a decoder already replaced invalid UTF-8 — is kept as it is. An escape
//! sequence such as `ESC [ 2 J` is therefore shown as `\x1b[2J`: its ESC is
//! escaped and the rest is printable text. Bidi controls are escaped because they
//! reorder what follows them on the line (a name can make a drop line read
//! differently from what it says); a name that legitimately mixes scripts needs none.

use std::{borrow::Cow, fmt};

/// Whether `c` is shown escaped (see the module documentation).
pub fn needs_escape(c: char) -> bool {
    matches!(c,
        '\\'
        | '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// `s` as it may be printed on a terminal: unchanged (borrowed) when nothing in it
/// needs escaping, else with every control character escaped as the module
/// documentation says.
pub fn safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    push_escaped(&mut out, s);
    Cow::Owned(out)
}

/// Bytes that should be text (an OS string, a path, a C string from the kernel):
/// valid UTF-8 escaped as [`safe`] does, each byte of an invalid sequence shown
/// as `\xNN`.
pub fn safe_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return safe(s);
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    for chunk in bytes.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    Cow::Owned(out)
}

/// A path for a terminal (see [`safe_bytes`]).
pub fn safe_path(path: &std::path::Path) -> Cow<'_, str> {
    use std::os::unix::ffi::OsStrExt;
    safe_bytes(path.as_os_str().as_bytes())
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0}'..='\u{1f}' | '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
}

/// [`safe`] in a format string: `format!("{:<20}", Safe(&name))` escapes, then
/// pads (width and alignment count the escaped text).
#[derive(Debug, Clone, Copy)]
pub struct Safe<'a>(pub &'a str);

impl fmt::Display for Safe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&safe(self.0))
    }
}

/// `2026-11-22 10:00:00 UTC` without a date crate.
pub fn utc(unix: f64) -> String {
    let secs = unix.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing a terminal would act on: no C0/C1 control, no DEL, no bidi control.
    fn inert(s: &str) -> bool {
        !s.chars()
            .any(|c| (c != '\\' && needs_escape(c)) || c.is_control())
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in [
            "",
            "python3",
            "kworker/u8:2",
            "swapper/1",
            "eth0",
            "ndt-42-0",
            "container:0123abcd",
            "__neigh_event_send+0x1b8",
            "NEIGH_QUEUEFULL",
            "6.18.44-fc-v769",
            "listener 198.18.5.1:8080 → raise",
            "café ünïcödé 名前 🙂 \u{fffd}",
            "spaces  and\u{a0}nbsp",
        ] {
            assert!(matches!(safe(s), Cow::Borrowed(_)), "{s:?}");
            assert_eq!(safe(s), s);
        }
    }

    #[test]
    fn hostile_fixtures_are_escaped_visibly() {
        let cases: &[(&str, &str)] = &[
            // The issue's process name: a forged line, then red text.
            ("ev\"il\n\x1b[31mRED", "ev\"il\\n\\x1b[31mRED"),
            ("a\rb", "a\\rb"),
            ("clear\x1b[2Jscreen", "clear\\x1b[2Jscreen"),
            // OSC 8 hyperlink, ST-terminated (ESC \) and BEL-terminated.
            (
                "\x1b]8;;http://evil/\x1b\\click\x1b]8;;\x1b\\",
                "\\x1b]8;;http://evil/\\x1b\\\\click\\x1b]8;;\\x1b\\\\",
            ),
            ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
            ("bell\x07", "bell\\x07"),
            ("back\x08\x08ed", "back\\x08\\x08ed"),
            ("tab\there", "tab\\there"),
            ("nul\0", "nul\\x00"),
            ("del\x7f", "del\\x7f"),
            // C1: CSI (U+009B) is ESC [ on terminals that honour 8-bit controls.
            ("c1\u{9b}31m", "c1\\u{9b}31m"),
            ("nel\u{85}", "nel\\u{85}"),
            // Bidi: a right-to-left override makes the rest read backwards.
            ("gnp.\u{202e}exe", "gnp.\\u{202e}exe"),
            ("\u{2066}iso\u{2069}", "\\u{2066}iso\\u{2069}"),
            ("\u{200f}\u{61c}", "\\u{200f}\\u{61c}"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
            // A literal backslash cannot pose as an escape.
            ("a\\x1bb", "a\\\\x1bb"),
        ];
        for (raw, want) in cases {
            let got = safe(raw);
            assert_eq!(got, *want, "{raw:?}");
            assert!(inert(&got), "{got:?}");
            assert!(!got.contains('\n') && !got.contains('\x1b'), "{got:?}");
        }
    }

    #[test]
    fn escaping_is_unambiguous() {
        // Different inputs never look the same once escaped.
        let inputs = [
            "\n", "\\n", "\x1b", "\\x1b", "\u{9b}", "\\u{9b}", "\\", "\\\\",
        ];
        let mut shown: Vec<String> = inputs.iter().map(|s| safe(s).into_owned()).collect();
        shown.sort();
        shown.dedup();
        assert_eq!(shown.len(), inputs.len(), "{shown:?}");
    }

    #[test]
    fn invalid_utf8_bytes_are_shown_as_hex() {
        assert_eq!(safe_bytes(b"eth0"), "eth0");
        assert_eq!(safe_bytes(b"a\xffb"), "a\\xffb");
        assert_eq!(safe_bytes(b"\xc3"), "\\xc3", "a cut sequence");
        assert_eq!(safe_bytes(b"\xc3\xa9\x1b"), "é\\x1b");
        // A lone C1 byte (not UTF-8) and the C1 character are told apart.
        assert_eq!(safe_bytes(b"\x9b"), "\\x9b");
        assert_eq!(safe_bytes("\u{9b}".as_bytes()), "\\u{9b}");
        use std::os::unix::ffi::OsStrExt;
        let p = std::path::Path::new(std::ffi::OsStr::from_bytes(b"/tmp/x\n\xfe"));
        assert_eq!(safe_path(p), "/tmp/x\\n\\xfe");
    }

    #[test]
    fn display_wrapper_escapes_then_pads() {
        assert_eq!(format!("[{:<8}]", Safe("a\nb")), "[a\\nb    ]");
        assert_eq!(format!("[{:>6}]", Safe("eth0")), "[  eth0]");
        assert_eq!(format!("{}", Safe("\x1b[31mRED")), "\\x1b[31mRED");
    }

    #[test]
    fn every_control_character_is_escaped() {
        for c in (0u32..=0x9f)
            .chain(0x2000..=0x206f)
            .filter_map(char::from_u32)
        {
            let s = c.to_string();
            let shown = safe(&s);
            if c.is_control() {
                assert_ne!(shown, s, "U+{:04X} kept raw", c as u32);
                assert!(shown.is_ascii(), "U+{:04X} → {shown:?}", c as u32);
            }
        }
    }
}
