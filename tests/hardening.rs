//! Nothing left behind, Unix manners, least privilege: tracefs mounted by
//! netdrop is gone even after SIGKILL; a recording that cannot start leaves no
//! file; a closed stdout ends netdrop quietly; a full disk says where the
//! recording stopped; netdrop works with only the capabilities it documents and
//! drops those it no longer needs once attached. Needs root; one at a time.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netdrop_tests::cmd::TempDir;
use netdrop_tests::netdrop::{netdrop_bin, programs_left_after, run_netdrop};
use netdrop_tests::rpfilter::RpFilter;
use netdrop_tests::{Netdrop, delta, lock, require_root, settle, skip_loudly};

const TRACEFS: &str = "/sys/kernel/tracing";

fn tracefs_mounts(mountinfo: &str) -> usize {
    mountinfo
        .lines()
        .filter(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|t| t.starts_with("tracefs "))
        })
        .count()
}

fn host_tracefs_mounts() -> usize {
    tracefs_mounts(&std::fs::read_to_string("/proc/self/mountinfo").unwrap())
}

/// Unmounts the host's tracefs for the test (so netdrop has to mount it) and
/// puts it back afterwards, even on failure.
struct NoHostTracefs {
    was_mounted: bool,
}

impl NoHostTracefs {
    fn new() -> NoHostTracefs {
        let was_mounted = host_tracefs_mounts() > 0;
        while host_tracefs_mounts() > 0 {
            let ok = Command::new("umount").arg(TRACEFS).status();
            if !ok.is_ok_and(|s| s.success()) {
                break;
            }
        }
        NoHostTracefs { was_mounted }
    }
}

impl Drop for NoHostTracefs {
    fn drop(&mut self) {
        if self.was_mounted && host_tracefs_mounts() == 0 {
            let _ = Command::new("mount")
                .args(["-t", "tracefs", "tracefs", TRACEFS])
                .status();
        }
    }
}

#[test]
fn tracefs_mounted_by_netdrop_never_reaches_the_host() {
    let _serial = lock();
    if !require_root("tracefs_mounted_by_netdrop_never_reaches_the_host") {
        return;
    }
    let guard = NoHostTracefs::new();
    if host_tracefs_mounts() > 0 {
        skip_loudly("tracefs_mounted_by_netdrop: the host's tracefs cannot be unmounted (busy)");
        return;
    }
    let nd = Netdrop::start(&[]).expect("netdrop starts, mounting tracefs itself");
    let pid = nd.pid();
    assert_eq!(
        host_tracefs_mounts(),
        0,
        "tracefs mounted in the host's mount namespace"
    );
    let own = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert_eq!(
        tracefs_mounts(&own),
        0,
        "netdrop still holds tracefs after attaching"
    );
    let host_ns = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let its_ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_eq!(
        its_ns, host_ns,
        "netdrop is back in the host's mount namespace"
    );
    // SIGKILL: no exit path of netdrop's own runs.
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let _ = nd.wait_exit(Duration::from_secs(5));
    assert_eq!(
        host_tracefs_mounts(),
        0,
        "tracefs left mounted after SIGKILL"
    );
    assert_eq!(
        programs_left_after(Duration::from_secs(5)).unwrap(),
        Vec::<String>::new(),
        "programs left loaded"
    );
    drop(guard);
}

#[test]
fn a_recording_that_cannot_start_leaves_no_file() {
    let _serial = lock();
    if !require_root("a_recording_that_cannot_start_leaves_no_file") {
        return;
    }
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("x.ndr");
    let f = file.to_str().unwrap();
    for (why, args) in [
        (
            "bad --btf",
            vec![
                "record",
                "-o",
                f,
                "--duration",
                "1",
                "--btf",
                "/nonexistent",
            ],
        ),
        (
            "bad --tracefs",
            vec!["record", "-o", f, "--duration", "1", "--tracefs", "/tmp"],
        ),
    ] {
        let out = run_netdrop(&args, Duration::from_secs(20)).unwrap();
        eprintln!("{why}: {:?} {}", out.status, out.stderr.trim());
        assert!(!out.status.success(), "{why}: should fail");
        assert!(!file.exists(), "{why}: left {}", file.display());
    }
    // Not root: setpriv drops to nobody.
    let out = netdrop_tests::cmd::output(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(netdrop_bin())
            .args(["record", "-o", f, "--duration", "1"]),
        Duration::from_secs(20),
    )
    .unwrap();
    assert!(!out.status.success(), "not root: should fail");
    assert!(!file.exists(), "not root: left {}", file.display());
    // And then the retry with the right privileges is not refused.
    let out = run_netdrop(
        &["record", "-o", f, "--duration", "1"],
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(out.status.success(), "retry: {}", out.stderr);
    assert!(file.exists());
}

#[test]
fn a_closed_stdout_ends_netdrop_quietly() {
    let _serial = lock();
    if !require_root("a_closed_stdout_ends_netdrop_quietly") {
        return;
    }
    // `netdrop watch -o json --interval 1 | head -1`
    let mut child = Command::new(netdrop_bin())
        .args(["watch", "-o", "json", "--interval", "1", "--duration", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is gone (dropped above): the next write meets EPIPE.
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "netdrop kept running with its stdout closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    eprintln!("first line {first:?}; exit {status:?}; stderr:\n{stderr}");
    assert!(first.starts_with('{'), "a JSON line first: {first:?}");
    assert!(
        status.success(),
        "a closed stdout is not an error: {status:?}"
    );
    assert!(!stderr.contains("netdrop: error"), "quiet: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "quiet: {stderr}");
    assert_eq!(
        programs_left_after(Duration::from_secs(5)).unwrap(),
        Vec::<String>::new(),
        "programs left loaded"
    );
}

/// A tmpfs of a few KiB, unmounted on drop.
struct TinyFs {
    dir: TempDir,
}

impl TinyFs {
    fn new(size: &str) -> Option<TinyFs> {
        let dir = TempDir::new().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(TinyFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_says_where_the_recording_stopped() {
    let _serial = lock();
    if !require_root("a_full_disk_says_where_the_recording_stopped") {
        return;
    }
    let Some(fs) = TinyFs::new("12k") else {
        skip_loudly("a_full_disk_says_where_the_recording_stopped: cannot mount a tmpfs");
        return;
    };
    let file: PathBuf = fs.path().join("incident.ndr");
    let f = file.to_str().unwrap();
    let out = run_netdrop(
        &[
            "record",
            "-o",
            f,
            "--duration",
            "20",
            "--snapshot-interval",
            "0.2",
        ],
        Duration::from_secs(40),
    )
    .unwrap();
    eprintln!("record: {:?}\n{}", out.status, out.stderr);
    assert!(!out.status.success(), "a full disk is an error");
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("netdrop: error:"))
        .expect("an error line");
    assert!(
        line.contains(&format!("recording {f} stopped at ")),
        "{line}"
    );
    assert!(line.contains("No space left on device"), "{line}");
    assert!(line.contains(&format!("netdrop replay {f}")), "{line}");
    // What was kept replays (damaged end: exit 3).
    let replay = run_netdrop(&["replay", f, "-o", "json"], Duration::from_secs(30)).unwrap();
    eprintln!("replay: {:?}\n{}", replay.status, replay.stderr);
    assert_eq!(replay.status.code(), Some(3), "{}", replay.stderr);
    assert!(
        replay.stdout.contains("\"type\":\"summary\""),
        "{}",
        replay.stdout
    );
}

/// The capabilities the README documents are enough; once attached, netdrop
/// holds only those it still needs.
#[test]
fn least_privilege() {
    let _serial = lock();
    if !require_root("least_privilege") {
        return;
    }
    const DOCUMENTED: &str =
        "-all,+bpf,+perfmon,+sys_admin,+sys_chroot,+sys_ptrace,+dac_read_search,+net_admin,+syslog";
    let sc = RpFilter::setup().expect("setup");
    let bin = netdrop_bin();
    let mut child = Command::new("setpriv")
        .args(["--bounding-set", DOCUMENTED, "--"])
        .arg(&bin)
        .args(["watch", "-o", "json", "--duration", "8"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let err = BufReader::new(child.stderr.take().unwrap());
    let mut ready = false;
    let mut stderr = String::new();
    for l in err.lines() {
        let l = l.unwrap();
        stderr.push_str(&l);
        stderr.push('\n');
        if l.contains("netdrop: watching") {
            ready = true;
            break;
        }
    }
    assert!(
        ready,
        "did not start with the documented capabilities:\n{stderr}"
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    let kept = (1u64 << 39) | (1 << 21) | (1 << 19) | (1 << 2) | (1 << 12);
    assert_eq!(
        eff, kept,
        "after attach: CAP_BPF, CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH, CAP_NET_ADMIN only ({eff:#x})"
    );
    let before = sc.b.netstat().unwrap();
    let sent = sc.generate().expect("traffic");
    settle();
    let after = sc.b.netstat().unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .rfind(|v: &serde_json::Value| v["type"] == "summary")
        .expect("a summary");
    let kernel = delta(&before, &after, "TcpExt:IPReversePathFilter");
    eprintln!(
        "sent {sent}, kernel {kernel}, netdrop {}",
        summary["causes"]["rp_filter"]
    );
    assert!(kernel > 0);
    assert_eq!(
        summary["causes"]["rp_filter"], kernel,
        "counted with the documented capabilities"
    );
    let diag: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|v: &serde_json::Value| v["type"] == "diagnosis")
        .expect("a diagnosis");
    let g = &diag["causes"][0]["groups"][0];
    assert_eq!(
        g["netns_name"],
        serde_json::json!(sc.b.name()),
        "namespaces read (setns): {g}"
    );
}
