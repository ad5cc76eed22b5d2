//! netdrop's start-up errors: exit codes and the one-line `netdrop: error:`
//! message. Most need root (to get past the privilege check, or to drop
//! privileges with setpriv); they skip loudly otherwise.
//!
//!     cargo test -p netdrop-tests --test errors -- --test-threads=1

use std::process::Command;
use std::time::Duration;

use netdrop_tests::cmd::{self, TempDir};
use netdrop_tests::netdrop::run_netdrop;
use netdrop_tests::{lock, netdrop_bin, require_root};

/// Checks a failed run: non-zero exit, one `netdrop: error:` line; returns stderr.
fn expect_error(out: &cmd::CmdOutput) -> &str {
    assert!(
        !out.status.success(),
        "netdrop succeeded; stderr:\n{}",
        out.stderr
    );
    let errors = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("netdrop: error:"))
        .count();
    assert_eq!(
        errors, 1,
        "one 'netdrop: error:' line expected; stderr:\n{}",
        out.stderr
    );
    &out.stderr
}

const ERROR_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn error_unprivileged() {
    let _serial = lock();
    if !require_root("error_unprivileged") {
        return;
    }
    // A copy in a world-readable directory, so that uid 65534 can execute it.
    let dir = TempDir::new().unwrap();
    let bin = dir.path().join("netdrop");
    std::fs::copy(netdrop_bin(), &bin)
        .unwrap_or_else(|e| panic!("copying {}: {e}", netdrop_bin().display()));
    let out = cmd::output(
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(&bin)
            .args(["watch", "--output", "json", "--duration", "2"]),
        ERROR_TIMEOUT,
    )
    .unwrap();
    let stderr = expect_error(&out);
    assert!(
        stderr.to_lowercase().contains("root"),
        "stderr should say root is needed:\n{stderr}"
    );
}

#[test]
fn error_unknown_flag() {
    let _serial = lock();
    let out = run_netdrop(&["watch", "--bogus-flag"], ERROR_TIMEOUT).unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "usage error exit code; stderr:\n{}",
        out.stderr
    );
}

#[test]
fn error_missing_btf() {
    let _serial = lock();
    if !require_root("error_missing_btf") {
        return;
    }
    let args = [
        "watch",
        "--output",
        "json",
        "--duration",
        "2",
        "--btf",
        "/nonexistent/vmlinux",
    ];
    let out = run_netdrop(&args, ERROR_TIMEOUT).unwrap();
    let stderr = expect_error(&out);
    assert!(
        stderr.to_lowercase().contains("btf"),
        "stderr should mention BTF:\n{stderr}"
    );
}

#[test]
fn error_tracepoint_missing() {
    let _serial = lock();
    if !require_root("error_tracepoint_missing") {
        return;
    }
    // A tracefs without the tracepoint: an events/ directory with nothing in it.
    let empty = TempDir::new().unwrap();
    std::fs::create_dir(empty.path().join("events")).unwrap();
    let tracefs = empty.path().to_str().unwrap();
    let args = [
        "watch",
        "--output",
        "json",
        "--duration",
        "2",
        "--tracefs",
        tracefs,
    ];
    let out = run_netdrop(&args, ERROR_TIMEOUT).unwrap();
    let stderr = expect_error(&out);
    assert!(
        stderr.contains("kfree_skb"),
        "stderr should mention kfree_skb:\n{stderr}"
    );

    // Not a tracefs at all: the error names the path given, not the kernel.
    for bad in ["/nonexistent-netdrop-tracefs", "/tmp"] {
        let args = ["watch", "--duration", "2", "--tracefs", bad];
        let out = run_netdrop(&args, ERROR_TIMEOUT).unwrap();
        let stderr = expect_error(&out);
        assert!(
            stderr.contains(&format!("--tracefs {bad}: not a tracefs mount")),
            "{stderr}"
        );
        assert!(!stderr.contains("not found on this kernel"), "{stderr}");
    }
}

/// `replay` of things that are not replayable: a clear one-line error, and the
/// file left as it was. Needs no root.
#[test]
fn error_replay_bad_files() {
    let dir = TempDir::new().unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "text.ndr",
            b"hello, not a recording\n".to_vec(),
            "not a netdrop recording",
        ),
        ("empty.ndr", Vec::new(), "not a netdrop recording"),
        (
            "future.ndr",
            [b"NDREC\r\n\x1a".as_slice(), &99u32.to_le_bytes(), &[0u8; 4]].concat(),
            "version 99 is newer than this netdrop reads",
        ),
        (
            "short.ndr",
            [
                b"NDREC\r\n\x1a".as_slice(),
                &1u32.to_le_bytes(),
                &[0u8; 4],
                b"ndr",
            ]
            .concat(),
            "truncated inside the header",
        ),
    ];
    for (name, bytes, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let out = run_netdrop(&["replay", path.to_str().unwrap()], ERROR_TIMEOUT).unwrap();
        let stderr = expect_error(&out);
        assert!(stderr.contains(want), "{name}: {stderr}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name} unchanged");
    }
    let missing = dir.path().join("missing.ndr");
    let out = run_netdrop(&["replay", missing.to_str().unwrap()], ERROR_TIMEOUT).unwrap();
    assert!(expect_error(&out).contains("reading the recording"));
}

/// `record` never overwrites: an existing file is refused before anything is
/// attached, and keeps its contents.
#[test]
fn error_record_existing_file() {
    let _serial = lock();
    if !require_root("error_record_existing_file") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("incident.ndr");
    std::fs::write(&path, b"yesterday's incident").unwrap();
    let out = run_netdrop(
        &[
            "record",
            "--output",
            path.to_str().unwrap(),
            "--duration",
            "1",
        ],
        ERROR_TIMEOUT,
    )
    .unwrap();
    let stderr = expect_error(&out);
    assert!(stderr.contains("never overwrites"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), b"yesterday's incident");
}
