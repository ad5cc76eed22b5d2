//! Children the benchmark runs (storm, tracers), Ctrl-C, and what it reads
//! about a process from /proc.
//!
//! Every child gets its own process group, so the terminal's Ctrl-C reaches only
//! the benchmark, which then stops in order (children killed, sysctl restored)
//! instead of racing them; and PR_SET_PDEATHSIG, so a benchmark killed with
//! SIGKILL takes its children with it. [`Proc`] kills its child on Drop.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::parse;
use crate::storm;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT, SIGTERM and SIGHUP set a flag that every wait here checks.
pub fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// Fails once Ctrl-C (or SIGTERM/SIGHUP) was received.
pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps `d`, in short steps, failing early on Ctrl-C.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check_interrupted()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// A child process, killed (SIGKILL) and reaped on Drop unless waited for.
pub struct Proc {
    pub child: Child,
    pub what: String,
    done: bool,
}

impl Proc {
    /// Spawns `cmd` in a process group of its own, with PR_SET_PDEATHSIG SIGKILL.
    pub fn spawn(mut cmd: Command, what: &str) -> Result<Proc> {
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {what} ({cmd:?})"))?;
        Ok(Proc {
            child,
            what: what.to_owned(),
            done: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` (e.g. SIGINT) to the child.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own, not yet reaped, child.
        unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
    }

    /// Waits for the child to exit, at most `timeout` (then kills it and fails).
    /// Ctrl-C here fails at once (Drop kills the child).
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().context("waiting for a child")? {
                self.done = true;
                return Ok(st);
            }
            check_interrupted()?;
            if Instant::now() >= end {
                bail!("{} did not exit within {timeout:?}; killed", self.what);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGINT, then waits up to `timeout`.
    pub fn interrupt(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.signal(libc::SIGINT);
        self.wait(timeout)
    }

    /// Fails if the child has exited already (it should still be running).
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(st) = self.child.try_wait()? {
            self.done = true;
            bail!("{} exited early ({st})", self.what);
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads a pipe to the end on a thread; the text comes back from `join`.
pub fn drain<R: Read + Send + 'static>(mut r: R) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Sends a pipe's lines to a channel on a thread (until EOF).
pub fn lines<R: Read + Send + 'static>(r: R) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `marker` on `rx` and returns it (other lines go to `seen`).
pub fn wait_for_line(
    rx: &mpsc::Receiver<String>,
    marker: &str,
    timeout: Duration,
    seen: &mut Vec<String>,
) -> Result<String> {
    let end = Instant::now() + timeout;
    loop {
        check_interrupted()?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("no {marker:?} within {timeout:?}");
        }
        match rx.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok(l) if l.contains(marker) => return Ok(l),
            Ok(l) => seen.push(l),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("the output ended before {marker:?}")
            }
        }
    }
}

/// utime + stime of a process (all its threads), seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(parse::parse_stat_cpu_ticks(&stat)? as f64 / hz)
}

/// A size field of /proc/PID/status (VmHWM: peak RSS, VmRSS: now), KiB.
pub fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse::parse_status_kib(&status, key).with_context(|| format!("no {key} for pid {pid}"))
}

/// Ids of the BPF programs a process holds (program and link descriptors in
/// /proc/PID/fdinfo): who owns what when bpftool cannot tell (no `pids`).
pub fn owned_prog_ids(pid: u32) -> std::collections::BTreeSet<u64> {
    let mut ids = std::collections::BTreeSet::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for e in dir.flatten() {
        if let Some(id) = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|t| parse::fdinfo_prog_id(&t))
        {
            ids.insert(id);
        }
    }
    ids
}

/// A running nd-storm (`--json`), started and seen storming.
pub struct Storm {
    proc: Proc,
    stdout: Option<JoinHandle<String>>,
    stderr_lines: mpsc::Receiver<String>,
    seconds: f64,
}

impl Storm {
    /// Starts `nd-storm --json --seconds S [--threads N]` and waits for its
    /// `nd-storm: storming` line: the senders start right after it.
    pub fn start(bin: &Path, seconds: f64, threads: Option<usize>) -> Result<Storm> {
        let mut cmd = Command::new(bin);
        cmd.args(["--json", "--seconds", &seconds.to_string()]);
        if let Some(n) = threads {
            cmd.args(["--threads", &n.to_string()]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn(cmd, "nd-storm")?;
        let stdout = drain(proc.child.stdout.take().expect("piped"));
        let stderr_lines = lines(proc.child.stderr.take().expect("piped"));
        let mut seen = Vec::new();
        wait_for_line(
            &stderr_lines,
            "nd-storm: storming",
            Duration::from_secs(30),
            &mut seen,
        )
        .with_context(|| format!("nd-storm did not start: {}", seen.join("\n")))?;
        Ok(Storm {
            proc,
            stdout: Some(stdout),
            stderr_lines,
            seconds,
        })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.proc.child.try_wait(), Ok(None))
    }

    /// Waits for the end (calling `tick` about every `every` meanwhile) and
    /// returns its report.
    pub fn finish(
        mut self,
        every: Duration,
        mut tick: impl FnMut() -> Result<()>,
    ) -> Result<storm::Report> {
        let end = Instant::now() + Duration::from_secs_f64(self.seconds + 30.0);
        let mut next = Instant::now() + every;
        while self.running() {
            check_interrupted()?;
            if Instant::now() >= end {
                bail!("nd-storm ran 30 s past its {} s", self.seconds);
            }
            if Instant::now() >= next {
                tick()?;
                next += every;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let st = self.proc.wait(Duration::from_secs(1))?;
        let out = self.stdout.take().expect("once").join().unwrap_or_default();
        let err: Vec<String> = self.stderr_lines.try_iter().collect();
        if !st.success() {
            bail!("nd-storm failed ({st}): {}", err.join("\n"));
        }
        let v: serde_json::Value = serde_json::from_str(out.trim())
            .with_context(|| format!("nd-storm's output is not JSON: {out:?}"))?;
        storm::Report::from_json(&v)
    }

    /// `Udp: NoPorts` now in the storm's counting namespace.
    pub fn noports_now(&self) -> Option<u64> {
        Storm::noports_of_pid(self.pid())
    }

    /// `Udp: NoPorts` in the counting namespace of the nd-storm process `pid`:
    /// that of any of its threads other than the main one (whose namespace is
    /// the host's); /proc/PID/task/TID/net follows the thread's namespace.
    pub fn noports_of_pid(pid: u32) -> Option<u64> {
        let main_ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
        for e in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            // A thread may end between the listing and the reads.
            let Ok(ns) = std::fs::read_link(e.path().join("ns/net")) else {
                continue;
            };
            if ns == main_ns {
                continue;
            }
            if let Ok(snmp) = std::fs::read_to_string(e.path().join("net/snmp")) {
                return storm::parse_snmp(&snmp, "Udp", "NoPorts");
            }
        }
        None
    }
}
