//! Command-line conventions through the real binary: the completion scripts
//! parse in their shells, the man pages render without a warning, `--color`
//! and `NO_COLOR` decide colour, the exit codes are the documented ones. No
//! root, no kernel state: files in $TMPDIR and the recordings in
//! fuzz/seeds/recording.
//!
//!     cargo build -p netdrop && cargo test -p netdrop-tests --test cli -- --nocapture

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netdrop_tests::cmd::{self, CmdOutput, TempDir};
use netdrop_tests::{netdrop_bin, skip_loudly};

const TIMEOUT: Duration = Duration::from_secs(30);
const SUBCOMMANDS: [&str; 8] = [
    "watch",
    "diagnose",
    "record",
    "replay",
    "hist",
    "serve",
    "completions",
    "man",
];
const ESC: &str = "\x1b[";

/// `netdrop ARGS` with `env` set and NO_COLOR removed unless `env` sets it.
fn netdrop(args: &[&str], env: &[(&str, &str)]) -> CmdOutput {
    let mut c = Command::new(netdrop_bin());
    c.args(args)
        .env_remove("NO_COLOR")
        .envs(env.iter().copied());
    cmd::output(&mut c, TIMEOUT).unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = netdrop(args, &[]);
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        out.status,
        out.stderr
    );
    out.stdout
}

/// Is `prog` on PATH (and runnable)?
fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn recording(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds/recording")
        .join(name)
}

#[test]
fn completion_scripts_parse_in_their_shells() {
    let dir = TempDir::new().unwrap();
    let mut checked = Vec::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&["completions", shell]);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell}: {sub}");
        }
        if !have(shell) {
            skip_loudly(&format!(
                "{shell} -n: {shell} is not installed (scripts/setup.sh installs it)"
            ));
            continue;
        }
        let path = dir.path().join(format!("netdrop.{shell}"));
        std::fs::write(&path, &script).unwrap();
        let out = cmd::output(Command::new(shell).arg("-n").arg(&path), TIMEOUT).unwrap();
        println!("{shell} -n: {} {}", out.status, out.stderr.trim());
        assert!(out.status.success(), "{shell} -n: {}", out.stderr);
        assert_eq!(out.stderr, "", "{shell} -n says something");
        checked.push(shell);
    }
    assert!(checked.contains(&"bash"), "bash is always there");
    // bash: the script registers the completion and completes a subcommand.
    let path = dir.path().join("netdrop.bash");
    let probe = format!(
        ". {}; COMP_WORDS=(netdrop wa); COMP_CWORD=1; COMP_LINE='netdrop wa'; COMP_POINT=10; \
         _netdrop netdrop wa netdrop; echo \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let out = cmd::output(Command::new("bash").args(["-c", &probe]), TIMEOUT).unwrap();
    println!("bash completes `netdrop wa` to {:?}", out.stdout.trim());
    assert_eq!(out.stdout.trim(), "watch", "{}", out.stderr);
}

#[test]
fn man_pages_render_without_warnings() {
    let dir = TempDir::new().unwrap();
    ok(&["man", "--dir", &dir.path().to_string_lossy()]);
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    let mut want: Vec<String> = SUBCOMMANDS
        .iter()
        .map(|s| format!("netdrop-{s}.1"))
        .collect();
    want.push("netdrop.1".into());
    want.sort();
    assert_eq!(pages, want);
    // Without --dir: netdrop.1 on stdout.
    assert_eq!(
        ok(&["man"]),
        std::fs::read_to_string(dir.path().join("netdrop.1")).unwrap()
    );
    if !have("man") {
        skip_loudly("man -l: man-db is not installed (scripts/setup.sh installs it)");
        return;
    }
    for page in &pages {
        let path = dir.path().join(page);
        let out = cmd::output(
            Command::new("man")
                .args(["--warnings", "-l"])
                .arg(&path)
                .env("MANWIDTH", "80")
                .env("MAN_KEEP_FORMATTING", "0")
                .env_remove("MANPAGER")
                .env("PAGER", "cat"),
            TIMEOUT,
        )
        .unwrap();
        println!(
            "man --warnings -l {page}: {}, {} bytes",
            out.status,
            out.stdout.len()
        );
        assert!(out.status.success(), "{page}: {}", out.stderr);
        assert_eq!(out.stderr, "", "{page}: groff warnings");
        // Rendered (overstrike bold stripped): the sections a reader looks for.
        let text = strip_overstrike(&out.stdout);
        for section in [
            "NAME",
            "SYNOPSIS",
            "OPTIONS",
            "EXIT STATUS",
            "ENVIRONMENT",
            "SEE ALSO",
        ] {
            assert!(
                text.lines().any(|l| l == section),
                "{page}: {section} in\n{text}"
            );
        }
        assert!(text.contains("NO_COLOR"), "{page}");
        if page == "netdrop.1" {
            for sub in SUBCOMMANDS {
                assert!(text.contains(&format!("netdrop-{sub}(1)")), "{page}: {sub}");
            }
        }
    }
}

/// `man` to a pipe may still embolden with `X\bX`: the plain text.
fn strip_overstrike(s: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in s.chars() {
        if c == '\u{8}' {
            out.pop();
            continue;
        }
        out.push(c);
    }
    out.into_iter().collect()
}

#[test]
fn color_follows_the_flag_and_no_color() {
    let rec = recording("all-kinds");
    let rec = rec.to_str().unwrap();
    // (arguments, environment, coloured)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], bool);
    let cases: &[Case] = &[
        (&["replay", rec], &[], false),                  // auto, piped
        (&["replay", rec], &[("NO_COLOR", "1")], false), // auto, NO_COLOR
        (&["--color", "always", "replay", rec], &[], true),
        (
            &["replay", rec, "--color=always"],
            &[("NO_COLOR", "1")],
            true,
        ), // always wins
        (&["--color", "never", "replay", rec], &[], false),
        (
            &["--color", "always", "replay", rec, "-o", "json"],
            &[],
            false,
        ), // JSON: never
        (
            &["--color", "always", "replay", rec, "--report", "-o", "json"],
            &[],
            false,
        ),
    ];
    for (args, env, coloured) in cases {
        let out = netdrop(args, env);
        assert!(out.status.success(), "{args:?}: {}", out.stderr);
        assert!(
            out.stdout.contains("neigh_queue_full"),
            "{args:?}: {}",
            out.stdout
        );
        println!(
            "{args:?} {env:?}: ESC[ in stdout: {}",
            out.stdout.contains(ESC)
        );
        assert_eq!(out.stdout.contains(ESC), *coloured, "{args:?} {env:?}");
        if args.contains(&"json") {
            let first = out.stdout.lines().next().unwrap();
            let _: serde_json::Value = serde_json::from_str(first)
                .or_else(|_| serde_json::from_str(&out.stdout))
                .unwrap();
        }
    }
    // The error line: coloured only when asked, one line either way.
    for (color, coloured) in [("auto", false), ("always", true), ("never", false)] {
        let out = netdrop(&["--color", color, "replay", "/nonexistent/x.ndr"], &[]);
        assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{:?}", out.stderr);
        assert_eq!(
            out.stderr.contains(ESC),
            coloured,
            "{color}: {:?}",
            out.stderr
        );
        assert!(out.stderr.starts_with("netdrop: "), "{:?}", out.stderr);
    }
    // clap's own usage errors follow --color too.
    for (color, coloured) in [("always", true), ("never", false)] {
        let out = netdrop(&["--color", color, "watch", "--bogus"], &[]);
        assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
        assert_eq!(
            out.stderr.contains(ESC),
            coloured,
            "{color}: {:?}",
            out.stderr
        );
    }
}

/// On a real terminal (a pty from script(1)): auto colours, NO_COLOR stops it.
#[test]
fn on_a_terminal_auto_colours_unless_no_color() {
    if !have("script") {
        skip_loudly("terminal colour: script(1) (util-linux) is not installed");
        return;
    }
    let rec = recording("all-kinds");
    for (no_color, coloured) in [(None, true), (Some("1"), false), (Some(""), true)] {
        // --lines: on a terminal, replay would open the live screen.
        let line = format!(
            "{} replay --lines {}",
            netdrop_bin().display(),
            rec.display()
        );
        let mut c = Command::new("script");
        c.args(["-qec", &line, "/dev/null"]).env_remove("NO_COLOR");
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let out = cmd::output(&mut c, TIMEOUT).unwrap();
        println!(
            "pty, NO_COLOR={no_color:?}: {}, ESC[ {}",
            out.status,
            out.stdout.contains(ESC)
        );
        assert!(out.status.success(), "{}", out.stderr);
        assert!(out.stdout.contains("neigh_queue_full"), "{}", out.stdout);
        assert_eq!(out.stdout.contains(ESC), coloured, "NO_COLOR={no_color:?}");
    }
}

#[test]
fn exit_codes_are_the_documented_ones() {
    let no_end = recording("no-end");
    let no_end = no_end.to_str().unwrap();
    for (args, code) in [
        (&["--version"][..], 0),
        (&["replay", "--help"], 0),
        (&["completions", "bash"], 0),
        (&["replay", "/nonexistent/x.ndr"], 1),
        (&["watch", "--bogus"], 2),
        (&["completions", "tcsh"], 2),
        (&[], 2),
        (&["replay", no_end], 3),
    ] {
        let out = netdrop(args, &[]);
        println!("{args:?}: exit {:?}", out.status.code());
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", out.stderr);
    }
    let page = ok(&["man"]);
    for code in ["0", "1", "2", "3"] {
        assert!(
            page.contains(&format!(".TP\n\\fB{code}\\fR")),
            "exit {code} in netdrop.1"
        );
    }
}
