//! netdrop's live screen in a real terminal: tmux (a private server, an
//! 80×24 pane) runs `netdrop watch` while rp_filter, unresolved-queue and
//! NO_SOCKET drops are reproduced; the captured screen shows the causes
//! ranked with their advice and the `other` drops as one aggregated row;
//! keys select, open, filter, pause and quit; the terminal is restored
//! (normal screen, canonical mode, echo) after `q`, SIGTERM and a panic
//! (`NETDROP_TEST_PANIC`, honoured by debug builds only). The recording
//! made meanwhile replays on the same screen, paced, with a pause; `r`
//! records what follows into a file that replays those drops. Needs
//! root and tmux (scripts/setup.sh):
//!
//!     cargo build -p netdrop
//!     cargo test -p netdrop-tests --test screen -- --test-threads=1 --nocapture

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netdrop_tests::neigh::NeighQueueFull;
use netdrop_tests::rpfilter::RpFilter;
use netdrop_tests::tmux::Tmux;
use netdrop_tests::traffic::udp_send;
use netdrop_tests::{lock, netdrop_bin, require_root, skip_loudly};

const START: Duration = Duration::from_secs(40);
const SHOWN: Duration = Duration::from_secs(20);
const EXIT: Duration = Duration::from_secs(30);

/// A directory of the test's own, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("netdrop-screen-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The pane's script: netdrop with `args` (and `env`), then its exit
/// status and the terminal's modes, and a pause so the pane stays.
fn script(dir: &Path, env: &str, args: &str) -> String {
    let path = dir.join("run.sh");
    let text = format!(
        "#!/bin/sh\necho $$ > {dir}/sh.pid\ncd {dir}\n{env} {bin} {args}\necho \"EXIT=$?\"\n\
         stty -a | tr ' ;' '\\n\\n' | grep -x -e '-*icanon' -e '-*echo' | tr '\\n' ' '\necho\nsleep 300\n",
        dir = dir.display(),
        bin = netdrop_bin().display(),
    );
    std::fs::write(&path, text).expect("script");
    format!("sh {}", path.display())
}

/// netdrop's pid: the pane's script's child.
fn netdrop_pid(dir: &Path) -> i32 {
    let sh = std::fs::read_to_string(dir.join("sh.pid")).expect("sh.pid");
    let sh = sh.trim();
    let children =
        std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children")).expect("children");
    children
        .split_whitespace()
        .next()
        .expect("netdrop running")
        .parse()
        .expect("pid")
}

/// After netdrop: the normal screen, the status, canonical mode and echo.
fn assert_restored(t: &Tmux, status: i32) -> String {
    let screen = t
        .wait_for(EXIT, |s| s.contains("EXIT=") && s.contains("icanon"))
        .expect("netdrop exits");
    assert!(
        !t.alternate_on().unwrap(),
        "still on the alternate screen:\n{screen}"
    );
    assert!(screen.contains(&format!("EXIT={status}")), "{screen}");
    let modes = screen
        .lines()
        .find(|l| l.contains("icanon"))
        .expect(&screen);
    assert!(
        modes.split_whitespace().any(|w| w == "icanon")
            && modes.split_whitespace().any(|w| w == "echo"),
        "the terminal is left raw: {modes}"
    );
    screen
}

fn ready(t: &Tmux) -> String {
    t.wait_for(START, |s| {
        s.starts_with("netdrop watch") && s.contains("causes")
    })
    .expect("the live screen")
}

fn preconditions(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    if !Tmux::available() {
        skip_loudly(&format!(
            "{test}: tmux is not installed (scripts/setup.sh installs it)"
        ));
        return false;
    }
    true
}

/// The cause under the selection mark.
fn selected(screen: &str) -> String {
    let line = screen.lines().find(|l| l.starts_with("▶ ")).expect(screen);
    line[4..].split_whitespace().next().unwrap().to_string()
}

#[test]
fn watch_on_a_terminal_is_one_screen_driven_by_keys_and_replays() {
    let _serial = lock();
    if !preconditions("screen") {
        return;
    }
    let dir = Dir::new("watch");
    let rp = RpFilter::setup().expect("rp_filter namespaces");
    let nq = NeighQueueFull::setup().expect("neighbour queue namespaces");
    let t = Tmux::start(
        "watch",
        80,
        24,
        &script(&dir.0, "", "watch --record rec.ndr"),
    )
    .unwrap();
    ready(&t);
    assert!(t.alternate_on().unwrap());
    rp.generate().expect("rp_filter drops");
    nq.generate().expect("unresolved-queue drops");
    // Datagrams to a port nobody listens on in B: NO_SOCKET, cause `other`.
    let closed = SocketAddrV4::new(RpFilter::DST, RpFilter::PORT);
    udp_send(&rp.a, None, closed, 12).expect("NO_SOCKET drops");
    let screen = t
        .wait_for(SHOWN, |s| {
            s.contains("▶ ")
                && s.contains("rp_filter  ")
                && s.contains("neigh_queue_full  ")
                && s.contains("→ ")
                && s.contains("NO_SOCKET")
                && s.contains("groups of ")
        })
        .expect("the causes, their advice and the other row");
    println!("--- the screen ---\n{screen}");
    // Ranked: each cause row's drops/s is at most the one above's.
    let rates: Vec<f64> = screen
        .lines()
        .filter(|l| {
            l.starts_with("▶ ")
                || (l.starts_with("  ") && l.contains("/s ") && !l.contains("  NO_SOCKET"))
        })
        .take_while(|l| !l.contains("groups of"))
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.ends_with("/s"))?
                .trim_end_matches("/s")
                .parse()
                .ok()
        })
        .collect();
    assert!(rates.len() >= 3, "{screen}");
    assert!(
        rates.windows(2).all(|w| w[0] >= w[1]),
        "not ranked: {rates:?}\n{screen}"
    );
    assert!(
        screen.contains("unres_qlen_bytes") || screen.contains("rp_filter ="),
        "advice: {screen}"
    );
    // `other` is one row per reason and location, with a count.
    let row = screen
        .lines()
        .find(|l| l.trim_start().starts_with("NO_SOCKET"))
        .expect(&screen);
    let count: u64 = row.split_whitespace().last().unwrap().parse().expect(row);
    assert!(count >= 1, "{row}");
    assert_eq!(
        screen
            .lines()
            .filter(|l| l.trim_start().starts_with("NO_SOCKET "))
            .count(),
        1,
        "one aggregated row: {screen}"
    );

    // Sorted by total (rates fall once the drops stop): select the next
    // cause, open it, back, the first again; filter, pause, help, quit.
    t.keys(&["s"]).unwrap();
    let by_total = t
        .wait_for(SHOWN, |s| s.lines().next().unwrap().contains("sort total"))
        .unwrap();
    let first = selected(&by_total);
    t.keys(&["j"]).unwrap();
    let moved = t.wait_for(SHOWN, |s| selected(s) != first).unwrap();
    let second = selected(&moved);
    t.keys(&["Enter"]).unwrap();
    t.wait_for(SHOWN, |s| {
        s.contains(&format!("groups of {second} (")) && s.contains("Esc: back")
    })
    .unwrap();
    // One key at a time: ESC then a key at once reads as Alt+key.
    t.keys(&["Escape"]).unwrap();
    t.wait_for(SHOWN, |s| !s.contains("Esc: back")).unwrap();
    t.keys(&["k"]).unwrap();
    t.wait_for(SHOWN, |s| selected(s) == first).unwrap();
    t.keys(&["/"]).unwrap();
    t.type_text("dev:rpb0").unwrap();
    t.keys(&["Enter"]).unwrap();
    let filtered = t
        .wait_for(SHOWN, |s| {
            s.lines().next().unwrap().contains("filter: dev:rpb0")
        })
        .unwrap();
    println!("--- filtered ---\n{filtered}");
    t.keys(&["p"]).unwrap();
    t.wait_for(SHOWN, |s| s.lines().next().unwrap().contains("PAUSED"))
        .unwrap();
    t.keys(&["?"]).unwrap();
    t.wait_for(SHOWN, |s| s.contains("keys (any key closes)"))
        .unwrap();
    t.keys(&["Escape"]).unwrap();
    t.wait_for(SHOWN, |s| !s.contains("keys (any key closes)"))
        .unwrap();
    t.keys(&["q"]).unwrap();
    let after = assert_restored(&t, 0);
    assert!(
        after.contains("netdrop summary") && after.contains("rp_filter"),
        "{after}"
    );
    drop(t);

    // The recording, on the same screen at the recorded pace.
    let t = Tmux::start(
        "replay",
        80,
        24,
        &script(&dir.0, "", "replay rec.ndr --realtime"),
    )
    .unwrap();
    let playing = t
        .wait_for(START, |s| s.starts_with("netdrop replay ▶"))
        .expect("the replay's screen");
    assert!(t.alternate_on().unwrap(), "{playing}");
    t.keys(&["Space"]).unwrap();
    let paused = t
        .wait_for(SHOWN, |s| s.lines().next().unwrap().contains("PAUSED"))
        .unwrap();
    let at = |s: &str| {
        s.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .nth(3)
            .unwrap_or("")
            .to_string()
    };
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        at(&t.capture().unwrap()),
        at(&paused),
        "a paused replay stands still"
    );
    t.keys(&["Space"]).unwrap();
    let end = t
        .wait_for(Duration::from_secs(120), |s| {
            s.contains("end of recording") && s.contains("rp_filter")
        })
        .unwrap();
    println!("--- the replay's end ---\n{end}");
    t.keys(&["q"]).unwrap();
    let after = assert_restored(&t, 0);
    assert!(after.contains("netdrop summary"), "{after}");
}

#[test]
fn sigterm_and_a_panic_restore_the_terminal() {
    let _serial = lock();
    if !preconditions("screen_sigterm") {
        return;
    }
    let dir = Dir::new("term");
    let t = Tmux::start("term", 80, 24, &script(&dir.0, "", "watch")).unwrap();
    ready(&t);
    // SAFETY: a signal to the netdrop this test started.
    assert_eq!(unsafe { libc::kill(netdrop_pid(&dir.0), libc::SIGTERM) }, 0);
    let after = assert_restored(&t, 0);
    assert!(after.contains("netdrop summary"), "{after}");
    drop(t);

    let t = Tmux::start(
        "panic",
        80,
        24,
        &script(&dir.0, "RUST_BACKTRACE=0 NETDROP_TEST_PANIC=1", "watch"),
    )
    .unwrap();
    match t.wait_for(Duration::from_secs(20), |s| s.contains("EXIT=")) {
        Ok(_) => {
            let after = assert_restored(&t, 101);
            assert!(
                after.contains("NETDROP_TEST_PANIC"),
                "the panic's message: {after}"
            );
        }
        Err(_) => {
            // A release build ignores the variable: it runs on.
            let _ = unsafe { libc::kill(netdrop_pid(&dir.0), libc::SIGTERM) };
            assert_restored(&t, 0);
            skip_loudly(
                "screen_panic: the binary under test is not a debug build (NETDROP_TEST_PANIC is ignored)",
            );
        }
    }
}

#[test]
fn lines_on_a_terminal_with_lines() {
    let _serial = lock();
    if !preconditions("screen_lines") {
        return;
    }
    let dir = Dir::new("lines");
    let t = Tmux::start(
        "lines",
        80,
        24,
        &script(&dir.0, "", "watch --lines --duration 2"),
    )
    .unwrap();
    let after = assert_restored(&t, 0);
    assert!(
        after.contains("netdrop summary") && !after.contains("causes · drops/s"),
        "{after}"
    );
}

/// `r` starts a recording of what follows in the current directory and `r`
/// again stops it: the file replays the drops made in between.
#[test]
fn r_records_what_follows() {
    let _serial = lock();
    if !preconditions("screen_record") {
        return;
    }
    let rp = RpFilter::setup().expect("rp_filter setup");
    let dir = Dir::new("record");
    let t = Tmux::start("record", 80, 24, &script(&dir.0, "", "watch")).unwrap();
    ready(&t);
    t.keys(&["r"]).unwrap();
    t.wait_for(SHOWN, |s| s.contains("recording") || s.contains(".ndr"))
        .expect("the screen says it records");
    let sent = rp.generate().expect("rp_filter drops");
    std::thread::sleep(Duration::from_secs(2));
    t.keys(&["r"]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    t.keys(&["q"]).unwrap();
    assert_restored(&t, 0);
    let files: Vec<PathBuf> = std::fs::read_dir(&dir.0)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndr"))
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one recording in {}: {files:?}",
        dir.0.display()
    );
    let out = std::process::Command::new(netdrop_bin())
        .args(["replay", "-o", "json"])
        .arg(&files[0])
        .output()
        .expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"type\":\"drop\"") && l.contains("\"cause\":\"rp_filter\""))
        .count();
    assert_eq!(lines, sent, "rp_filter drop lines in the recording");
}

/// The terminal goes away under a replay's screen (its pty closed, as when
/// script(1) or an ssh session dies): netdrop ends instead of reading
/// end-of-file for ever.
#[test]
fn a_screen_whose_terminal_went_away_ends() {
    if std::process::Command::new("script")
        .arg("-V")
        .output()
        .is_err()
    {
        skip_loudly("screen_hangup: script(1) (util-linux) is not installed");
        return;
    }
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/recording/all-kinds");
    let line = format!("{} replay {}", netdrop_bin().display(), seed.display());
    let mut pty = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("script");
    let children = format!("/proc/{0}/task/{0}/children", pty.id());
    let mut nd = None;
    for _ in 0..100 {
        nd = std::fs::read_to_string(&children)
            .ok()
            .and_then(|c| c.split_whitespace().next()?.parse::<i32>().ok());
        if nd.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let nd = nd.expect("netdrop under script(1)");
    std::thread::sleep(Duration::from_secs(2));
    let alive = || {
        Path::new(&format!("/proc/{nd}")).exists()
            && !std::fs::read_to_string(format!("/proc/{nd}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    assert!(alive(), "the replay's screen ended by itself");
    let _ = pty.kill();
    let _ = pty.wait();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = alive();
    if left {
        // SAFETY: the netdrop this test started.
        unsafe { libc::kill(nd, libc::SIGKILL) };
    }
    assert!(!left, "netdrop still runs 5 s after its terminal went away");
}
