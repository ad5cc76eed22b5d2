//! Recordings of real drops: a recorded incident replays with the live run's
//! lines, counts, causes and advice; a recorder killed mid-run leaves a file
//! that replays up to its last whole record; replay needs no root. Needs root
//! to record; run one at a time (xtask does).

use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use netdrop_tests::accept::AcceptOverflow;
use netdrop_tests::cmd::TempDir;
use netdrop_tests::neigh::NeighQueueFull;
use netdrop_tests::netdrop::{netdrop_bin, run_netdrop};
use netdrop_tests::rpfilter::RpFilter;
use netdrop_tests::{Netdrop, NetdropOutput, delta, lock, require_root, settle};

fn replay(args: &[&str]) -> (NetdropOutput, i32) {
    let out = run_netdrop(args, Duration::from_secs(60)).expect("running replay");
    eprintln!("--- replay stderr ---\n{}--- end ---", out.stderr);
    let code = out.status.code().unwrap_or(-1);
    (
        NetdropOutput::parse(out.status, &out.stdout, out.stderr),
        code,
    )
}

fn of_type<'a>(out: &'a NetdropOutput, ty: &str) -> Vec<&'a Value> {
    out.lines.iter().filter(|l| l["type"] == ty).collect()
}

/// A live `watch --record` run of two incidents (an unresolved-neighbour queue
/// overflowing and an accept queue overflowing), then `replay` of the file: the
/// same drop lines, the same summary, the same diagnosis with the same advice —
/// computed from the recorded sysctls and listeners, not from this machine (the
/// namespaces are gone by then).
#[test]
fn replay_shows_what_the_live_run_showed() {
    let _serial = lock();
    if !require_root("replay_shows_what_the_live_run_showed") {
        return;
    }
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("incident.ndr");
    let file_s = file.to_str().unwrap();
    let nq = NeighQueueFull::setup().expect("setup neigh");
    let ac = AcceptOverflow::setup().expect("setup accept");
    let nd = Netdrop::start(&["--record", file_s]).expect("starting netdrop");
    nq.generate().expect("neigh traffic");
    let _run = ac.generate().expect("accept traffic");
    settle();
    // Snapshots every second: let one see the state before stopping.
    std::thread::sleep(Duration::from_millis(1200));
    let live = nd.stop().expect("stopping netdrop");
    drop(ac);
    drop(nq);
    live.assert_clean_exit();
    assert!(
        live.stderr.contains("recorded "),
        "no recording line: {}",
        live.stderr
    );
    assert_eq!(
        live.cause("neigh_queue_full"),
        NeighQueueFull::EXPECTED_DROPS,
        "live run saw the neighbour drops"
    );
    assert!(
        live.cause("accept_queue_full") > 0,
        "live run saw no accept drops"
    );

    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "recordings hold addresses: mode 0600");

    let (rep, code) = replay(&["replay", file_s, "--output", "json"]);
    assert_eq!(code, 0, "intact recording replays cleanly");
    assert!(rep.garbage.is_empty(), "{:?}", rep.garbage);
    let live_drops = of_type(&live, "drop");
    assert!(!live_drops.is_empty());
    assert_eq!(of_type(&rep, "drop"), live_drops, "drop lines");
    assert_eq!(
        of_type(&rep, "neigh_create_failed"),
        of_type(&live, "neigh_create_failed")
    );
    assert_eq!(rep.summary, live.summary, "summary");
    let diag = live.diagnosis();
    assert_eq!(rep.diagnosis(), diag, "diagnosis");
    // The advice is there and uses the recorded live values.
    let text = diag.to_string();
    assert!(
        text.contains("unres_qlen_bytes") && text.contains(NeighQueueFull::DEV_A),
        "neighbour advice: {diag}"
    );
    assert!(text.contains("somaxconn"), "accept advice: {diag}");

    // The diagnose view of the same file: the same report.
    let out = run_netdrop(
        &["replay", file_s, "--report", "--output", "json"],
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    let mut report: Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    let mut want = diag.clone();
    want.as_object_mut().unwrap().remove("type");
    report.as_object_mut().unwrap().remove("type");
    assert_eq!(report, want, "replay --report = the live diagnosis");

    // The human view names the causes and the setting to change.
    let out = run_netdrop(&["replay", file_s], Duration::from_secs(60)).unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains("neigh_queue_full") && out.stdout.contains("unres_qlen_bytes"),
        "{}",
        out.stdout
    );

    // Replay never needs root: as nobody, on a copy owned by nobody (as after scp).
    let copy = dir.path().join("copy.ndr");
    std::fs::copy(&file, &copy).unwrap();
    let bin = dir.path().join("netdrop");
    std::fs::copy(netdrop_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&copy, Some(65534), Some(65534)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .args(["replay", "--output", "json"])
        .arg(&copy)
        .env("TMPDIR", dir.path())
        .output()
        .expect("running setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "replay as nobody: {stderr}");
    let as_nobody = NetdropOutput::parse(
        out.status,
        &String::from_utf8_lossy(&out.stdout),
        stderr.into_owned(),
    );
    assert_eq!(as_nobody.summary, live.summary, "replay as nobody");
}

/// `netdrop record` is SIGKILLed mid-run (no chance to write its end record):
/// the file replays every drop it had written, and says how it ends.
#[test]
fn killed_recorder_leaves_a_replayable_file() {
    let _serial = lock();
    if !require_root("killed_recorder_leaves_a_replayable_file") {
        return;
    }
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("killed.ndr");
    let sc = RpFilter::setup().expect("setup");
    let mut rec = Command::new(netdrop_bin())
        .args(["record", "--output"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning netdrop record");
    wait_for_header(&file, &mut rec);
    let before = sc.b.netstat().unwrap();
    sc.generate().expect("traffic");
    settle();
    let after = sc.b.netstat().unwrap();
    let kernel = delta(&before, &after, "TcpExt:IPReversePathFilter");
    assert_eq!(kernel, RpFilter::SENDS as u64, "rp_filter drops provoked");
    // Let a counters record follow the drops, then kill without warning.
    std::thread::sleep(Duration::from_millis(1500));
    rec.kill().expect("SIGKILL");
    let _ = rec.wait();
    drop(sc);

    let file_s = file.to_str().unwrap();
    let (rep, code) = replay(&["replay", file_s, "--output", "json"]);
    assert_eq!(code, 3, "a recording without its end replays with status 3");
    assert!(
        rep.stderr.contains("no end record"),
        "says how the file ends: {}",
        rep.stderr
    );
    let rp: Vec<_> = of_type(&rep, "drop")
        .into_iter()
        .filter(|d| d["cause"] == "rp_filter")
        .collect();
    assert_eq!(
        rp.len() as u64,
        kernel,
        "every rp_filter drop written before the kill"
    );
    assert_eq!(
        rep.cause("rp_filter"),
        kernel,
        "the counters recorded before the kill"
    );

    // Cut the file inside its last record, and damage one in the middle: both
    // are described, and every other record still replays.
    let data = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.ndr");
    std::fs::write(&cut, &data[..data.len() - 3]).unwrap();
    let (cut_rep, code) = replay(&["replay", cut.to_str().unwrap(), "--output", "json"]);
    assert_eq!(code, 3);
    assert!(cut_rep.stderr.contains("cut short"), "{}", cut_rep.stderr);
    let bad = dir.path().join("bad.ndr");
    let mut flipped = data.clone();
    let mid = data.len() / 2;
    flipped[mid] ^= 0x5a;
    std::fs::write(&bad, &flipped).unwrap();
    let (bad_rep, code) = replay(&["replay", bad.to_str().unwrap(), "--output", "json"]);
    assert_eq!(code, 3);
    assert!(bad_rep.stderr.contains("damaged"), "{}", bad_rep.stderr);
    assert!(
        of_type(&bad_rep, "drop").len() + 1 >= rp.len(),
        "at most the one damaged record is lost"
    );
}

/// Waits until the recorder has written its header (hooks attached).
fn wait_for_header(file: &Path, rec: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::fs::metadata(file)
            .map(|m| m.len() > 200)
            .unwrap_or(false)
        {
            return;
        }
        if let Ok(Some(status)) = rec.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            let _ = rec.stderr.take().unwrap().read_to_string(&mut err);
            panic!("netdrop record exited early ({status}): {err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = rec.kill();
    panic!("netdrop record wrote no header within 20 s");
}

/// `record --capture-bytes`, then `replay --pcap`: Wireshark's tshark opens the
/// file and shows each dropped packet with netdrop's comment (cause, reason,
/// location, owner).
#[test]
fn captured_packets_replay_as_pcapng_for_wireshark() {
    let _serial = lock();
    if !require_root("captured_packets_replay_as_pcapng_for_wireshark") {
        return;
    }
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("capture.ndr");
    let pcap = dir.path().join("drops.pcapng");
    let sc = RpFilter::setup().expect("setup");
    let rec = Netdrop::start_command(&[
        "record",
        "--output",
        file.to_str().unwrap(),
        "--capture-bytes",
        "128",
    ])
    .expect("starting netdrop record");
    sc.generate().expect("traffic");
    settle();
    let out = rec.stop().expect("stopping record");
    drop(sc);
    assert!(out.status.success(), "{}", out.stderr);

    let r = run_netdrop(
        &[
            "replay",
            file.to_str().unwrap(),
            "--report",
            "--pcap",
            pcap.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(r.status.success(), "{}", r.stderr);
    assert!(r.stderr.contains("dropped packets to"), "{}", r.stderr);
    let tshark = Command::new("tshark")
        .args(["-r", pcap.to_str().unwrap(), "-T", "fields"])
        .args(["-e", "frame.comment", "-e", "ip.src", "-e", "udp.dstport"])
        .output();
    let Ok(tshark) = tshark else {
        netdrop_tests::skip_loudly(
            "captured_packets_replay_as_pcapng_for_wireshark (tshark part): tshark is not \
             installed (scripts/setup.sh installs it)",
        );
        return;
    };
    let text = String::from_utf8_lossy(&tshark.stdout);
    assert!(
        tshark.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&tshark.stderr)
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("cause=rp_filter"))
        .collect();
    assert_eq!(rows.len(), RpFilter::SENDS, "tshark output:\n{text}");
    for row in rows {
        assert!(row.contains("reason=IP_RPFILTER"), "{row}");
        assert!(row.contains("location="), "{row}");
        assert!(
            row.contains(&RpFilter::SPOOFED.to_string()),
            "source address decoded: {row}"
        );
        assert!(
            row.ends_with(&RpFilter::PORT.to_string()),
            "UDP port decoded: {row}"
        );
    }
}
