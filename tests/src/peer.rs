//! nd-peer processes (tests/bin/nd-peer.rs): clients that run as processes of
//! their own inside a test namespace, so a drop's owner (the process holding
//! the socket) can be told apart from the task that ran when it was freed.
//!
//! The binary's path is only known to integration tests
//! (`env!("CARGO_BIN_EXE_nd-peer")`); they pass it in.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::wait_until;
use crate::netns::Netns;

/// How long a peer may take to print an expected line.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running nd-peer (`ip netns exec NS nd-peer ARGS`); killed on Drop.
pub struct Peer {
    child: Child,
    pid: Option<u32>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Local ports from its `port N` lines, in order.
    pub ports: Vec<u16>,
    what: String,
}

impl Peer {
    /// Starts nd-peer in `ns` without waiting for it (several can start at
    /// about the same time); [`started`](Self::started) waits for its pid.
    pub fn spawn(bin: &str, ns: &Netns, args: &[&str]) -> Result<Self> {
        let mut argv = vec![bin];
        argv.extend_from_slice(args);
        let what = format!("nd-peer {} in {}", args.join(" "), ns.name());
        let mut child = ns
            .exec_cmd(&argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawning {what}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Peer {
            child,
            pid: None,
            stdin,
            lines,
            ports: Vec::new(),
            what,
        })
    }

    /// Waits for the `pid N` line (`ip netns exec` execs nd-peer in place, but
    /// the line is the truth either way) and returns the pid.
    pub fn started(&mut self) -> Result<u32> {
        if self.pid.is_none() {
            self.expect("pid")?;
        }
        self.pid.context("no pid")
    }

    /// The pid from [`started`](Self::started); panics before it.
    pub fn pid(&self) -> u32 {
        self.pid
            .unwrap_or_else(|| panic!("{}: pid not read yet", self.what))
    }

    /// Reads stdout lines until one is `word` or starts with `word `, and returns
    /// the rest of it. `pid` and `port` lines met on the way are recorded.
    pub fn expect(&mut self, word: &str) -> Result<String> {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(l) => l,
                Err(RecvTimeoutError::Timeout) => {
                    bail!("{}: no {word:?} line within {LINE_TIMEOUT:?}", self.what)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    bail!("{}: exited ({status:?}) before a {word:?} line", self.what)
                }
            };
            let (head, rest) = line.split_once(' ').unwrap_or((&line, ""));
            match head {
                "pid" => self.pid = Some(rest.parse().context("pid line")?),
                "port" => self.ports.push(rest.parse().context("port line")?),
                _ => {}
            }
            if head == word {
                return Ok(rest.to_owned());
            }
        }
    }

    /// Writes one line to its stdin ("go").
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin already closed")?;
        writeln!(stdin, "{line}").with_context(|| format!("{}: writing stdin", self.what))?;
        stdin.flush()?;
        Ok(())
    }

    /// Closes its stdin (EOF: the waiting modes exit).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the exit (and reaps it: /proc/PID disappears); kills it after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        wait_until(&mut self.child, Instant::now() + timeout, &self.what)
    }

    /// The socket inodes it has open now (`socket:[N]` links in /proc/PID/fd).
    pub fn socket_inodes(&self) -> Result<Vec<u64>> {
        let dir = format!("/proc/{}/fd", self.pid());
        let mut out = Vec::new();
        for fd in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
            let Ok(link) = std::fs::read_link(fd?.path()) else {
                continue;
            };
            let link = link.to_string_lossy();
            if let Some(ino) = link
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
            {
                out.push(ino.parse()?);
            }
        }
        Ok(out)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stdin = None;
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
