//! Argument validation through the real binary.
//!
//! - Bad values clap refuses (`usage_*`): one `error: invalid value …` line, exit 2,
//!   before anything is read or loaded. Need no root.
//! - `--netns` that names no network namespace (`netns_*`): a one-line
//!   `netdrop: error: --netns …` and a non-zero exit, after the privilege check and
//!   before any BPF program is loaded. **Need root** (to get past the privilege
//!   check); they skip loudly otherwise.
//! - `--dev` of an interface that does not exist (`dev_missing_*`): a one-line
//!   notice, and netdrop watches (and exits 0 at `--duration`). **Need root: they
//!   load BPF and create a namespace.**
//!
//! Run them one at a time:
//!
//!     cargo build -p netdrop
//!     cargo test -p netdrop-tests --test args -- --test-threads=1

use std::time::Duration;

use netdrop_tests::cmd::CmdOutput;
use netdrop_tests::netdrop::run_netdrop;
use netdrop_tests::{Netns, lock, require_root};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs netdrop; expects clap's usage error: exit 2, `error: invalid value
/// '<value>' for '<flag> <NAME>': <why>` as its first line, no panic.
fn expect_usage_error(args: &[&str], first_line: &str) {
    let out = run_netdrop(args, TIMEOUT).unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: usage error exit code; stderr:\n{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    assert_eq!(
        out.stderr.lines().next().unwrap_or(""),
        first_line,
        "{args:?}; stderr:\n{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{args:?}: stdout {:?}", out.stdout);
}

const DURATION: &str = "expected seconds from 0.001 to 31536000 (365 days)";
const INTERVAL: &str = "expected seconds from 0.01 to 3600 (1 hour)";

#[test]
fn usage_durations_are_bounded() {
    // `--duration 1e308` used to panic (exit 101: cannot convert float seconds
    // to Duration); NaN, infinity, negative, zero and over a year are refused.
    for cmd in [
        &["watch"][..],
        &["diagnose"],
        &["hist"],
        &["record", "-o", "/nonexistent/x.ndr"],
    ] {
        for value in ["1e308", "nan", "inf", "-1", "0", "31536001", "ten"] {
            let args: Vec<&str> = cmd.iter().copied().chain(["--duration", value]).collect();
            expect_usage_error(
                &args,
                &format!("error: invalid value '{value}' for '--duration <SECONDS>': {DURATION}"),
            );
        }
    }
}

#[test]
fn usage_intervals_are_bounded() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["watch", "--interval"], "0", "SECONDS"),
        (&["watch", "--interval"], "7200", "SECONDS"),
        (&["watch", "--interval"], "nan", "SECONDS"),
        (&["watch", "--snapshot-interval"], "0.001", "SECONDS"),
        (&["diagnose", "--snapshot-interval"], "1e308", "SECONDS"),
        (
            &["record", "-o", "/nonexistent/x.ndr", "--interval"],
            "inf",
            "SECONDS",
        ),
        (
            &["replay", "/nonexistent/x.ndr", "--interval"],
            "0",
            "SECONDS",
        ),
        (
            &["replay", "/nonexistent/x.ndr", "--interval"],
            "-5",
            "SECONDS",
        ),
    ];
    for (args, value, unit) in cases {
        let flag = args.last().unwrap();
        let argv: Vec<&str> = args.iter().copied().chain([*value]).collect();
        expect_usage_error(
            &argv,
            &format!("error: invalid value '{value}' for '{flag} <{unit}>': {INTERVAL}"),
        );
    }
}

#[test]
fn usage_burst_gap_and_line_rate_are_bounded() {
    for value in ["0", "nan", "-1", "3600001"] {
        for cmd in [&["hist"][..], &["replay", "/nonexistent/x.ndr", "--hist"]] {
            let args: Vec<&str> = cmd
                .iter()
                .copied()
                .chain(["--burst-gap-ms", value])
                .collect();
            expect_usage_error(
                &args,
                &format!(
                    "error: invalid value '{value}' for '--burst-gap-ms <MS>': expected milliseconds from 0.001 to 3600000 (1 hour)"
                ),
            );
        }
    }
    for value in ["0", "nan", "inf", "-2", "1e7"] {
        for cmd in [&["watch"][..], &["replay", "/nonexistent/x.ndr"]] {
            let args: Vec<&str> = cmd
                .iter()
                .copied()
                .chain(["--lines-per-sec", value])
                .collect();
            expect_usage_error(
                &args,
                &format!(
                    "error: invalid value '{value}' for '--lines-per-sec <N>': expected lines per second from 0.001 to 1000000"
                ),
            );
        }
    }
}

#[test]
fn usage_filters_are_checked() {
    let dev = "expected an interface name: 1 to 15 bytes, not \".\" or \"..\", without '/', ':' or whitespace";
    for value in ["", "..", "a/b", "eth0:1", "eth 0", "sixteen-bytes-xx"] {
        for cmd in ["watch", "diagnose", "record", "hist"] {
            let mut args = vec![cmd];
            if cmd == "record" {
                args.extend(["-o", "/nonexistent/x.ndr"]);
            }
            args.extend(["--dev", value]);
            expect_usage_error(
                &args,
                &format!("error: invalid value '{value}' for '--dev <NAME>': {dev}"),
            );
        }
    }
    expect_usage_error(
        &["watch", "--pid", "0"],
        "error: invalid value '0' for '--pid <PID>': 0 is not in 1..=4294967295",
    );
    expect_usage_error(
        &["watch", "--netns", ""],
        "error: invalid value '' for '--netns <NETNS>': expected an inode number, an `ip netns` name or a path",
    );
    // Unchanged: clap's own checks of ports, addresses, pids and causes.
    for args in [
        &["watch", "--port", "65536"][..],
        &["watch", "--addr", "198.18.0.256"],
        &["watch", "--pid", "x"],
        &["watch", "--cause", "bogus"],
    ] {
        let out = run_netdrop(args, TIMEOUT).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
    }
}

/// A run refused after the privilege check: non-zero exit, exactly one
/// `netdrop: error:` line, which is returned.
fn expect_error(out: &CmdOutput) -> String {
    assert!(
        !out.status.success(),
        "netdrop succeeded; stderr:\n{}",
        out.stderr
    );
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("netdrop: error:"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one error line expected; stderr:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("netdrop: watching"),
        "nothing may be attached; stderr:\n{}",
        out.stderr
    );
    errors[0].to_string()
}

/// Needs root. `--netns` that names no network namespace used to watch nothing
/// and exit 0; now each is refused before anything is loaded.
#[test]
fn netns_must_exist_and_be_a_network_namespace() {
    let _serial = lock();
    if !require_root("netns_must_exist_and_be_a_network_namespace") {
        return;
    }
    let cases = [
        (
            "12345",
            "netdrop: error: --netns 12345: no network namespace with that inode (see ip netns / ls -l /proc/*/ns/net)",
        ),
        // /proc/self is netdrop itself: its mount namespace.
        (
            "/proc/self/ns/mnt",
            "netdrop: error: --netns /proc/self/ns/mnt: not a network namespace (a mount namespace)",
        ),
        (
            "/proc/self/ns/uts",
            "netdrop: error: --netns /proc/self/ns/uts: not a network namespace (a UTS namespace)",
        ),
        (
            "/proc/self/status",
            "netdrop: error: --netns /proc/self/status: not a namespace file (a network namespace is /run/netns/NAME or /proc/PID/ns/net)",
        ),
        (
            "/nonexistent/ns",
            "netdrop: error: --netns /nonexistent/ns: no such file",
        ),
        (
            "ndt-no-such-namespace",
            "netdrop: error: --netns ndt-no-such-namespace: no network namespace named ndt-no-such-namespace in /run/netns (see ip netns)",
        ),
    ];
    for cmd in ["watch", "diagnose", "hist"] {
        for (netns, want) in cases {
            let args = [cmd, "--output", "json", "--duration", "2", "--netns", netns];
            let out = run_netdrop(&args, TIMEOUT).unwrap();
            assert_eq!(expect_error(&out), want, "{args:?}");
            assert!(out.stdout.is_empty(), "{args:?}: stdout {:?}", out.stdout);
        }
    }
}

/// The inode of a mount namespace is no network namespace's. Needs root.
#[test]
fn netns_inode_of_another_kind_is_refused() {
    let _serial = lock();
    if !require_root("netns_inode_of_another_kind_is_refused") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let mnt = std::fs::metadata("/proc/self/ns/mnt")
        .unwrap()
        .ino()
        .to_string();
    let out = run_netdrop(&["watch", "--duration", "2", "--netns", &mnt], TIMEOUT).unwrap();
    assert_eq!(
        expect_error(&out),
        format!(
            "netdrop: error: --netns {mnt}: no network namespace with that inode (see ip netns / ls -l /proc/*/ns/net)"
        )
    );
}

/// Needs root; loads BPF and creates a namespace. An interface that is not
/// there (yet) is a notice, and netdrop watches for it; one that is there is
/// not mentioned. Also: `--netns` by name, inode and path are all accepted.
#[test]
fn dev_missing_in_the_watched_namespace_is_a_notice() {
    let _serial = lock();
    if !require_root("dev_missing_in_the_watched_namespace_is_a_notice") {
        return;
    }
    let ns = Netns::new().expect("creating a namespace");
    let inode = ns.inode().to_string();
    let path = ns.path();
    let path = path.to_str().unwrap();
    for (netns, shown) in [
        (
            ns.name(),
            format!("network namespace {} ({inode})", ns.name()),
        ),
        (inode.as_str(), format!("network namespace {inode}")),
        (path, format!("network namespace {path} ({inode})")),
    ] {
        let args = [
            "watch",
            "--output",
            "json",
            "--duration",
            "1",
            "--netns",
            netns,
            "--dev",
            "nd-none-x9",
        ];
        let out = run_netdrop(&args, TIMEOUT).unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}; stderr:\n{}",
            out.stderr
        );
        let notice = format!(
            "netdrop: notice: no interface nd-none-x9 in {shown} now; its drops will be counted if it appears"
        );
        let notices: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.contains("no interface"))
            .collect();
        assert_eq!(
            notices,
            [notice.as_str()],
            "{args:?}; stderr:\n{}",
            out.stderr
        );
        assert!(
            out.stdout
                .lines()
                .any(|l| l.contains("\"type\":\"summary\"")),
            "{args:?}: it watched and summed up; stdout:\n{}",
            out.stdout
        );
    }
    // `lo` is in every namespace: no notice.
    let args = [
        "watch",
        "--output",
        "json",
        "--duration",
        "1",
        "--netns",
        ns.name(),
        "--dev",
        "lo",
    ];
    let out = run_netdrop(&args, TIMEOUT).unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", out.stderr);
    assert!(
        !out.stderr.contains("no interface"),
        "stderr:\n{}",
        out.stderr
    );
}
