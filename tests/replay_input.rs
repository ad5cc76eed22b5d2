//! `netdrop replay` against its input: what is not a recording file is refused
//! at once in one line, a 2 GiB file of zeros without reading it, a ~1 GiB
//! recording replays in bounded memory, two recordings one after the other
//! are told apart. No root, no kernel state: only files in $TMPDIR.
//!
//!     cargo build -p netdrop && cargo test -p netdrop-tests --test replay_input
//!
//! The recordings are written here, byte by byte, from the format's
//! description (netdrop/src/record/format.rs: preamble, frames of
//! `sync · len · kind · payload · CRC-32`, postcard payloads), so this is also
//! a second, independent writer of the format.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use netdrop_tests::cmd::{self, CmdOutput, TempDir};
use netdrop_tests::netdrop::run_netdrop;
use netdrop_tests::{netdrop_bin, skip_loudly};

/// Refusals must come at once; this is only the point where a hang is killed.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(20);
/// "At once": well under what reading gigabytes would take.
const AT_ONCE: Duration = Duration::from_secs(3);
/// The address space the large replay gets (`prlimit --as`).
const AS_CEILING: u64 = 400 << 20;
/// Resident memory the large replay must stay under.
const RSS_CEILING_KIB: i64 = 100 << 10;
const BIG: u64 = 1 << 30;

// ---- the format, written independently --------------------------------------

mod enc {
    /// postcard: unsigned integers as LEB128 varints.
    pub fn uvar(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    /// Signed: zigzag, then varint.
    pub fn ivar(out: &mut Vec<u8>, v: i64) {
        uvar(out, ((v << 1) ^ (v >> 63)) as u64);
    }
    pub fn f64(out: &mut Vec<u8>, v: f64) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn str(out: &mut Vec<u8>, s: &str) {
        uvar(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    pub fn strs(out: &mut Vec<u8>, v: &[&str]) {
        uvar(out, v.len() as u64);
        for s in v {
            str(out, s);
        }
    }
    /// CRC-32 (IEEE, reflected), bit by bit: only a few frames are computed.
    pub fn crc32(parts: &[&[u8]]) -> u32 {
        let mut crc = !0u32;
        for b in parts.iter().flat_map(|p| p.iter()) {
            crc ^= u32::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}

const PREAMBLE: &[u8; 16] = b"NDREC\r\n\x1a\x01\0\0\0\0\0\0\0";
const HEADER: u8 = 1;
const END: u8 = 9;
const COUNTERS: u8 = 10;
const DROP_NS: u8 = 11;
/// NEIGH_QUEUEFULL in the header's reason table: cause neigh_queue_full.
const REASON: u32 = 77;
const START_MONO_NS: u64 = 5_000_000_000;

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let mut f = b"ndr\xfe".to_vec();
    f.extend_from_slice(&len);
    f.push(kind);
    f.extend_from_slice(payload);
    let crc = enc::crc32(&[&len, &[kind], payload]);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

/// format::Header.
fn header(host: &str, start_unix: f64) -> Vec<u8> {
    let mut p = Vec::new();
    enc::str(&mut p, "0.1.0");
    enc::str(&mut p, "6.18.0-replay-input");
    enc::str(&mut p, host);
    enc::uvar(&mut p, start_unix as u64 - 3600); // boot_time
    enc::f64(&mut p, start_unix);
    enc::uvar(&mut p, START_MONO_NS);
    enc::ivar(&mut p, (start_unix * 1e9) as i64 - START_MONO_NS as i64); // clock_offset_ns
    enc::uvar(&mut p, 2); // reasons
    enc::uvar(&mut p, 2);
    enc::str(&mut p, "NOT_SPECIFIED");
    enc::uvar(&mut p, u64::from(REASON));
    enc::str(&mut p, "NEIGH_QUEUEFULL");
    p.push(1); // has_reason_field
    enc::strs(&mut p, &["raw_tracepoint/kfree_skb"]); // hooks.attached
    enc::strs(&mut p, &[]); // hooks.unavailable
    enc::strs(&mut p, &[]); // filters
    enc::uvar(&mut p, 256); // capture_bytes
    enc::f64(&mut p, 1.0); // counter_interval_s
    frame(HEADER, &p)
}

/// format::Tagged<DropEntry>: a drop with 256 captured bytes, as
/// `record --capture-bytes 256` writes them.
fn drop_frame(ts_ns: u64) -> Vec<u8> {
    let mut p = Vec::new();
    enc::uvar(&mut p, ts_ns);
    enc::uvar(&mut p, u64::from(REASON));
    for v in [0xffff_ffff_8100_0000u64, 0xffff_8880_0000_1000, 0, 0] {
        enc::uvar(&mut p, v); // location, skbaddr, sk, rx_sk
    }
    enc::uvar(&mut p, 4_026_531_840); // netns
    enc::uvar(&mut p, 2); // ifindex
    enc::str(&mut p, "veth-ri");
    enc::uvar(&mut p, 0x0800); // protocol
    enc::uvar(&mut p, 4242); // pid
    enc::str(&mut p, "replay-input");
    p.push(0); // packet: None
    enc::uvar(&mut p, 256); // bytes
    p.extend((0..=255u8).map(|b| b ^ 0x45));
    enc::uvar(&mut p, 1500); // pkt_len
    for v in [0, 0, 0, 0, 0] {
        enc::uvar(&mut p, v); // owner_ino, owner_uid, owner_src, scope, owner_tgid
    }
    p.push(0); // accept_queue: None
    enc::str(&mut p, "__neigh_event_send+0x2a4"); // location
    p.push(0); // owner: None
    p.push(0); // netns_name: None
    enc::uvar(&mut p, 7); // netns_cookie
    frame(DROP_NS, &p)
}

fn session(p: &mut Vec<u8>, duration_s: f64, events: u64) {
    enc::f64(p, duration_s);
    enc::uvar(p, events);
    enc::uvar(p, 0);
}

/// format::CountersEntry: `drops` NEIGH_QUEUEFULL drops so far, all sent.
fn counters(at_s: f64, drops: u64) -> Vec<u8> {
    let mut p = Vec::new();
    enc::f64(&mut p, at_s);
    enc::uvar(&mut p, 1); // drops: one reason
    enc::uvar(&mut p, u64::from(REASON));
    enc::uvar(&mut p, drops);
    enc::uvar(&mut p, 0); // lost
    enc::uvar(&mut p, 0); // stats
    session(&mut p, at_s, drops);
    p.push(1); // sent: Some
    enc::uvar(&mut p, 1);
    enc::uvar(&mut p, u64::from(REASON));
    enc::uvar(&mut p, drops);
    frame(COUNTERS, &p)
}

/// format::EndEntry.
fn end(duration_s: f64, events: u64) -> Vec<u8> {
    let mut p = Vec::new();
    session(&mut p, duration_s, events);
    enc::f64(&mut p, duration_s); // lost.at_s
    enc::uvar(&mut p, 0);
    enc::uvar(&mut p, 0);
    frame(END, &p)
}

/// Writes a recording of `drops` drops (over 10 s, counters every second) to
/// `out`; returns its size.
fn write_recording(out: &mut impl Write, host: &str, start_unix: f64, drops: u64) -> u64 {
    let mut n = 0u64;
    let mut put = |out: &mut dyn Write, b: &[u8]| {
        out.write_all(b).unwrap();
        n += b.len() as u64;
    };
    put(out, PREAMBLE);
    put(out, &header(host, start_unix));
    // Ten seconds, each with its own drop frame (written over and over) and
    // the counters at its end.
    let mut written = 0;
    for s in 0..10u64 {
        let upto = drops * (s + 1) / 10;
        let f = drop_frame(START_MONO_NS + s * 1_000_000_000 + 1_000);
        for _ in written..upto {
            put(out, &f);
        }
        written = upto;
        put(out, &counters((s + 1) as f64, written));
    }
    put(out, &end(10.0, drops));
    n
}

fn recording_file(path: &Path, host: &str, start_unix: f64, drops: u64) -> u64 {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let n = write_recording(&mut out, host, start_unix, drops);
    out.into_inner().unwrap().sync_all().unwrap();
    n
}

/// How many drops make a recording of about `bytes`.
fn drops_for(bytes: u64) -> u64 {
    bytes / drop_frame(START_MONO_NS).len() as u64
}

// ---- helpers ---------------------------------------------------------------

fn replay(path: &Path, extra: &[&str], timeout: Duration) -> (CmdOutput, Duration) {
    let started = Instant::now();
    let mut args = vec!["replay", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run_netdrop(&args, timeout).unwrap();
    (out, started.elapsed())
}

/// A refusal: exit 1, stderr exactly `netdrop: error: <want>`, quickly.
fn expect_refused(path: &Path, want: &str) {
    let (out, took) = replay(path, &[], REFUSE_TIMEOUT);
    let want = format!("netdrop: error: {want}");
    println!(
        "{}: exit {:?} after {took:.2?}; stderr {:?}; expected {want:?}, exit 1, under {AT_ONCE:?}",
        path.display(),
        out.status.code(),
        out.stderr.trim_end()
    );
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", out.stderr);
    assert_eq!(out.stderr.trim_end(), want, "one line, exactly");
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
    assert!(took < AT_ONCE, "took {took:?}");
}

/// The total of the `── netdrop summary: N drops in …` line (the last one).
fn summary_total(stdout: &str) -> Option<u64> {
    stdout
        .lines()
        .rev()
        .find_map(|l| l.split("netdrop summary: ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
}

/// Free bytes for an unprivileged writer under `dir`.
fn free_bytes(dir: &Path) -> u64 {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs with a valid C string and a zeroed out-struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    st.f_bavail as u64 * st.f_frsize as u64
}

/// The peak resident memory of the largest child waited for so far, KiB.
fn children_peak_rss_kib() -> i64 {
    // SAFETY: getrusage into a zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss
}

/// A file removed on Drop (even when the test fails).
struct Removed(PathBuf);
impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---- the tests ---------------------------------------------------------------

#[test]
fn devices_are_refused_at_once() {
    for dev in ["/dev/zero", "/dev/urandom", "/dev/null"] {
        expect_refused(
            Path::new(dev),
            &format!(
                "{dev}: not a regular file (a character device): a recording is a file written by netdrop record"
            ),
        );
    }
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = TempDir::new().unwrap();
    let fifo = dir.path().join("incident.ndr");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    // Nobody ever writes to it: an open or a read that blocks would hang
    // until REFUSE_TIMEOUT kills it.
    expect_refused(
        &fifo,
        &format!(
            "{}: not a regular file (a FIFO): a recording is a file written by netdrop record",
            fifo.display()
        ),
    );
}

#[test]
fn a_directory_is_refused() {
    let dir = TempDir::new().unwrap();
    expect_refused(
        dir.path(),
        &format!(
            "{}: not a regular file (a directory): a recording is a file written by netdrop record",
            dir.path().display()
        ),
    );
}

/// 2 GiB of zeros (sparse: no disk used) fail at the signature without being
/// read: at once, and within an address space far smaller than the file.
#[test]
fn a_2gib_file_of_zeros_is_refused_without_reading_it() {
    let dir = TempDir::new().unwrap();
    let zeros = dir.path().join("zeros.ndr");
    File::create(&zeros).unwrap().set_len(2 << 30).unwrap();
    let started = Instant::now();
    let out = cmd::output(
        Command::new("prlimit")
            .arg(format!("--as={AS_CEILING}"))
            .arg(netdrop_bin())
            .arg("replay")
            .arg(&zeros),
        REFUSE_TIMEOUT,
    )
    .unwrap();
    let took = started.elapsed();
    let want = format!(
        "netdrop: error: {}: not a netdrop recording (no NDREC signature at the start)",
        zeros.display()
    );
    println!(
        "2 GiB of zeros under prlimit --as={AS_CEILING}: exit {:?} after {took:.2?}; stderr {:?}; expected {want:?}",
        out.status.code(),
        out.stderr.trim_end()
    );
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", out.stderr);
    assert_eq!(out.stderr.trim_end(), want);
    assert!(took < AT_ONCE, "took {took:?}");
}

/// A ~1 GiB recording (3 million drops with 256 captured bytes each) replays
/// whole in an address space of 400 MiB, under 100 MiB resident, and its
/// summary counts every drop.
#[test]
fn a_1gib_recording_replays_in_bounded_memory() {
    let tmp = std::env::temp_dir();
    let need = BIG + (256 << 20);
    let free = free_bytes(&tmp);
    if free < need {
        skip_loudly(&format!(
            "a_1gib_recording_replays_in_bounded_memory: {} has {} MiB free, the test needs {} MiB",
            tmp.display(),
            free >> 20,
            need >> 20
        ));
        return;
    }
    let path = tmp.join(format!("netdrop-replay-input-{}.ndr", std::process::id()));
    let _removed = Removed(path.clone());
    let drops = drops_for(BIG);
    let started = Instant::now();
    let size = recording_file(&path, "big-box", 1_795_000_000.0, drops);
    println!(
        "wrote {} ({size} bytes, {drops} drops) in {:.1?}",
        path.display(),
        started.elapsed()
    );
    assert!(size >= BIG - (1 << 20), "{size} bytes");

    let started = Instant::now();
    let out = cmd::output(
        Command::new("prlimit")
            .arg(format!("--as={AS_CEILING}"))
            .arg(netdrop_bin())
            .arg("replay")
            .arg(&path),
        Duration::from_secs(900),
    )
    .unwrap();
    let took = started.elapsed();
    let rss = children_peak_rss_kib();
    let total = summary_total(&out.stdout);
    println!(
        "replay under prlimit --as={AS_CEILING}: exit {:?} in {took:.1?}, peak RSS {} MiB (ceiling {} MiB), \
         summary total {total:?} (expected {drops}), {} stdout lines; stderr:\n{}",
        out.status.code(),
        rss >> 10,
        RSS_CEILING_KIB >> 10,
        out.stdout.lines().count(),
        out.stderr
    );
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(total, Some(drops), "stdout tail:\n{}", tail(&out.stdout));
    let cause_line = format!("NEIGH_QUEUEFULL {drops}");
    assert!(
        out.stdout
            .lines()
            .rev()
            .take(10)
            .any(|l| l.trim_start().starts_with("neigh_queue_full") && l.ends_with(&cause_line)),
        "the summary's cause line counts every drop ({cause_line}):\n{}",
        tail(&out.stdout)
    );
    assert!(
        rss < RSS_CEILING_KIB,
        "peak RSS {rss} KiB over {RSS_CEILING_KIB}"
    );
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Two recordings one after the other (`cat a b`): the first is replayed
/// with its own counts only, the second is named (bytes, host, start) and
/// exit status 3 says the file was not one intact recording; the `dd` the
/// message suggests cuts out a second recording that replays cleanly.
#[test]
fn two_concatenated_recordings_are_told_apart() {
    let dir = TempDir::new().unwrap();
    let both = dir.path().join("both.ndr");
    let mut bytes = Vec::new();
    let first = write_recording(&mut bytes, "box-a", 1_794_990_000.0, 40);
    let second = write_recording(&mut bytes, "box-b", 1_795_000_000.0, 25);
    std::fs::write(&both, &bytes).unwrap();

    let (out, _) = replay(&both, &[], REFUSE_TIMEOUT);
    let want = format!(
        "netdrop: replay: {}: bytes {first}..{} are a second recording (netdrop 0.1.0 on box-b, started 2026-11-18 11:06:40 UTC), appended to this one and not replayed: replay it separately (e.g. dd if=FILE of=second.ndr iflag=skip_bytes skip={first})",
        both.display(),
        first + second
    );
    let total = summary_total(&out.stdout);
    println!(
        "box-a (40 drops) + box-b (25): exit {:?}, summary total {total:?} (expected 40, not 65); stderr:\n{}expected the line:\n{want}",
        out.status.code(),
        out.stderr
    );
    assert_eq!(out.status.code(), Some(3), "damage exit status");
    assert_eq!(total, Some(40), "only the first recording's drops");
    assert!(
        out.stderr.lines().any(|l| l == want),
        "stderr:\n{}",
        out.stderr
    );
    assert!(!out.stderr.contains("damaged"), "nothing called damaged");

    // The dd the message suggests.
    let cut = dir.path().join("second.ndr");
    cmd::run(
        Command::new("dd")
            .arg(format!("if={}", both.display()))
            .arg(format!("of={}", cut.display()))
            .args(["iflag=skip_bytes", &format!("skip={first}"), "status=none"]),
    )
    .unwrap();
    let (out, _) = replay(&cut, &[], REFUSE_TIMEOUT);
    let total = summary_total(&out.stdout);
    println!(
        "the second cut out with dd: exit {:?}, summary total {total:?} (expected 25); stderr:\n{}",
        out.status.code(),
        out.stderr
    );
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(total, Some(25));
    assert!(out.stderr.contains("recorded by netdrop 0.1.0 on box-b"));
}

/// The writer here and netdrop agree: a small recording replays clean with
/// exit 0 and its exact count (else the tests above prove nothing).
#[test]
fn the_recordings_written_here_replay_clean() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("small.ndr");
    let size = recording_file(&path, "box-s", 1_795_000_000.0, 1000);
    let (out, _) = replay(&path, &["--report", "-o", "json"], REFUSE_TIMEOUT);
    println!(
        "{size} bytes, 1000 drops: exit {:?}; stderr:\n{}",
        out.status.code(),
        out.stderr
    );
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let totals = &report["totals"];
    println!(
        "totals.total_drops {} causes.neigh_queue_full {} (expected 1000 each)",
        totals["total_drops"], totals["causes"]["neigh_queue_full"]
    );
    assert_eq!(totals["total_drops"], 1000);
    assert_eq!(totals["causes"]["neigh_queue_full"], 1000);
}
