//! A process with a hostile name, and what netdrop shows of it.
//!
//! A process names itself `ev"il` + newline + `ESC[31mRED` (prctl(PR_SET_NAME),
//! tests/bin/nd-comm.rs) and sends UDP to a closed port inside a namespace the
//! test creates (198.18.0.0/15 only, 20 datagrams). In the human view its drop
//! line shows the name escaped (`ev"il\n\x1b[31mRED`, netdrop/src/text.rs) on
//! that one line, and nothing netdrop prints holds a raw ESC, CR or C1 control;
//! in JSON the name is exact. Needs root (a namespace, BPF); run one at a time:
//!
//!     cargo build -p netdrop
//!     cargo test -p netdrop-tests --test hostile -- --test-threads=1

use std::time::Duration;

use netdrop_tests::cmd;
use netdrop_tests::{Netdrop, Netns, check_test_cidr, lock, require_root, settle};

const COMM_BIN: &str = env!("CARGO_BIN_EXE_nd-comm");
/// The name the process gives itself: 14 bytes, the kernel keeps them all.
const HOSTILE: &str = "ev\"il\n\x1b[31mRED";
/// How the human view shows it.
const SHOWN: &str = "ev\"il\\n\\x1b[31mRED";
const ADDR: &str = "198.18.77.1/32";
const DST: &str = "198.18.77.1";
/// Nothing listens there in a fresh namespace.
const CLOSED_PORT: &str = "9";
const DATAGRAMS: &str = "20";
const COMM_TIMEOUT: Duration = Duration::from_secs(20);

/// A fresh namespace with the test address on its loopback.
fn namespace() -> Netns {
    check_test_cidr(ADDR);
    let ns = Netns::new().expect("creating a namespace");
    ns.ip(&["addr", "add", ADDR, "dev", "lo"])
        .expect("address on lo");
    ns
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Runs nd-comm in `ns` (it names itself, then sends); returns its pid.
fn hostile_sender(ns: &Netns) -> u32 {
    let name = hex(HOSTILE);
    let out = cmd::output(
        &mut ns.exec_cmd(&[COMM_BIN, &name, DST, CLOSED_PORT, DATAGRAMS]),
        COMM_TIMEOUT,
    )
    .expect("running nd-comm");
    assert!(
        out.status.success(),
        "nd-comm: {}; stderr:\n{}",
        out.status,
        out.stderr
    );
    let field = |key: &str| -> u32 {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key:?} line from nd-comm: {:?}", out.stdout))
    };
    let sent = field("sent ");
    assert!(sent > 0, "nd-comm sent nothing");
    field("pid ")
}

/// Characters a terminal acts on (C0 but newline, DEL, C1) or that reorder a
/// line (bidi controls).
fn raw_controls(text: &str) -> Vec<(usize, char)> {
    text.char_indices()
        .filter(|&(_, c)| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c))
        .collect()
}

#[test]
fn hostile_comm_is_escaped_in_the_human_view() {
    let _serial = lock();
    if !require_root("hostile_comm_is_escaped_in_the_human_view") {
        return;
    }
    let ns = namespace();
    let nd = Netdrop::start_command(&[
        "watch",
        "--output",
        "human",
        "--netns",
        ns.name(),
        "--lines-per-sec",
        "1000",
    ])
    .expect("starting netdrop watch (human)");
    let pid = hostile_sender(&ns);
    settle();
    let out = nd.stop().expect("stopping netdrop");
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", out.stderr);

    // Human output: every non-empty stdout line is "garbage" to the JSON parser.
    let text = out.garbage.join("\n");
    eprintln!("--- human view ---\n{text}\n--- end ---");
    assert!(
        raw_controls(&text).is_empty(),
        "raw control characters in the human view: {:?}",
        raw_controls(&text)
    );
    let task = format!("[task {pid} {SHOWN}]");
    let lines: Vec<&String> = out.garbage.iter().filter(|l| l.contains(&task)).collect();
    assert!(
        !lines.is_empty(),
        "no drop line ends with {task:?} (escaped on one line)"
    );
    for l in &lines {
        assert!(l.ends_with(&task), "{l}");
        // NO_SOCKET; UNKNOWN before 5.17 (no drop reasons).
        assert!(l.contains("NO_SOCKET") || l.contains("UNKNOWN"), "{l}");
    }
    // No line was forged: nothing starts where the name's newline was.
    assert!(
        !out.garbage
            .iter()
            .any(|l| l.starts_with("\x1b") || l.starts_with("[31mRED")),
        "a line forged by the name:\n{text}"
    );
    // stderr (netdrop's notices and logs) never carries the raw name either.
    assert!(!out.stderr.contains(HOSTILE), "stderr:\n{}", out.stderr);
}

#[test]
fn hostile_comm_is_exact_in_json() {
    let _serial = lock();
    if !require_root("hostile_comm_is_exact_in_json") {
        return;
    }
    let ns = namespace();
    let nd = Netdrop::start(&["--netns", ns.name()]).expect("starting netdrop watch (json)");
    let pid = hostile_sender(&ns);
    settle();
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();
    let drops = out.drops();
    let mine: Vec<_> = drops
        .iter()
        .filter(|l| l["pid"].as_u64() == Some(u64::from(pid)))
        .collect();
    assert!(
        !mine.is_empty(),
        "no drop line of nd-comm (pid {pid}); drops: {drops:?}"
    );
    for l in &mine {
        assert_eq!(l["comm"], HOSTILE, "the exact name in JSON: {l}");
        assert!(
            l["reason"] == "NO_SOCKET" || l["reason"] == "UNKNOWN",
            "{l}"
        );
        assert_eq!(l["netns"], ns.inode(), "{l}");
    }
}
