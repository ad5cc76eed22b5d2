//! Running the netdrop binary under test.
//!
//! Contract: `netdrop watch --output json [ARGS]` prints `netdrop: watching`
//! on stderr once its hooks are attached, one JSON object per stdout line
//! while it runs (`"type": "drop"` / `"neigh_create_failed"`), and a
//! `{"type":"summary",...}` line when it exits; SIGINT ends it with code 0.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::{self, CmdOutput, drain, wait_until};

/// How long netdrop may take to attach its hooks.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long netdrop may take to exit after SIGINT.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// The stderr line netdrop prints when its hooks are attached.
pub const READY_MARKER: &str = "netdrop: watching";

/// The binary under test: $NETDROP_BIN, or the workspace's target/debug/netdrop.
pub fn netdrop_bin() -> PathBuf {
    match std::env::var_os("NETDROP_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/netdrop"),
    }
}

fn existing_bin() -> Result<PathBuf> {
    let bin = netdrop_bin();
    if !bin.is_file() {
        bail!(
            "netdrop binary not found at {}: build it (cargo build -p netdrop) or set NETDROP_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

/// `args` with $NETDROP_TEST_ARGS (space-separated) inserted after the
/// subcommand: how the kernel matrix (`cargo xtask vm-test`) runs a test
/// through another hook, e.g. `--no-fentry` for the kprobe path.
pub fn with_test_args(args: &[&str]) -> Vec<String> {
    let extra = std::env::var("NETDROP_TEST_ARGS").unwrap_or_default();
    let mut out: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let at = out.len().min(1);
    for (i, a) in extra.split_whitespace().enumerate() {
        out.insert(at + i, a.to_string());
    }
    out
}

/// With $NETDROP_EXPECT_HOOKS (comma-separated hook labels), fails unless
/// netdrop's `watching (...)` line names each of them: the kernel matrix's
/// proof that a test ran through the hook it is about (fentry, kprobe, the
/// raw tracepoint). A hook the arguments turn off is not expected.
pub fn check_expected_hooks(stderr: &str, args: &[String]) -> Result<()> {
    let expect = std::env::var("NETDROP_EXPECT_HOOKS").unwrap_or_default();
    let line = stderr
        .lines()
        .find(|l| l.contains(READY_MARKER))
        .unwrap_or_default();
    for hook in expect.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let off = (hook.starts_with("raw_tracepoint:")
            && args.iter().any(|a| a == "--no-raw-tracepoint"))
            || (hook.starts_with("fentry:") && args.iter().any(|a| a == "--no-fentry"));
        if !off && !line.contains(hook) {
            bail!("expected hook {hook} is not attached: {line}\nstderr:\n{stderr}");
        }
    }
    Ok(())
}

/// Runs netdrop once with `args` (no `--output json` added), killing it after `timeout`.
pub fn run_netdrop(args: &[&str], timeout: Duration) -> Result<CmdOutput> {
    cmd::output(Command::new(existing_bin()?).args(args), timeout)
}

/// A running `netdrop watch --output json ...`; killed on Drop if still running.
pub struct Netdrop {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Arc<Mutex<String>>,
    stderr_thread: Option<JoinHandle<()>>,
}

impl Netdrop {
    /// Starts `netdrop watch --output json ARGS` and waits until it reports that
    /// its hooks are attached.
    pub fn start(args: &[&str]) -> Result<Self> {
        Self::start_command(&[&["watch", "--output", "json"], args].concat())
    }

    /// Starts `netdrop ARGS` (any subcommand) and waits until its hooks are attached.
    pub fn start_command(args: &[&str]) -> Result<Self> {
        Self::start_command_env(args, &[])
    }

    /// [`Netdrop::start_command`] with these environment variables set for netdrop.
    pub fn start_command_env(args: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        let bin = existing_bin()?;
        let args = with_test_args(args);
        let mut child = Command::new(&bin)
            .args(&args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_pipe = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        let stderr_thread = std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut nd = Netdrop {
            child,
            stdout: Some(stdout),
            stderr,
            stderr_thread: Some(stderr_thread),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if nd.stderr_text().lines().any(|l| l.contains(READY_MARKER)) {
                check_expected_hooks(&nd.stderr_text(), &args)?;
                return Ok(nd);
            }
            if let Some(status) = nd.child.try_wait()? {
                nd.join_stderr();
                bail!(
                    "netdrop exited before attaching ({status}); stderr:\n{}",
                    nd.stderr_text()
                );
            }
            if Instant::now() >= deadline {
                let _ = nd.child.kill();
                let _ = nd.child.wait();
                nd.join_stderr();
                bail!(
                    "netdrop did not print {READY_MARKER:?} within {START_TIMEOUT:?}; stderr:\n{}",
                    nd.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn join_stderr(&mut self) {
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
    }

    /// Sends SIGINT, waits for the exit and returns what netdrop printed.
    pub fn stop(mut self) -> Result<NetdropOutput> {
        let pid = libc::pid_t::try_from(self.child.id()).context("pid")?;
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        if unsafe { libc::kill(pid, libc::SIGINT) } != 0 {
            bail!("kill(SIGINT): {}", std::io::Error::last_os_error());
        }
        let waited = wait_until(
            &mut self.child,
            Instant::now() + STOP_TIMEOUT,
            "netdrop after SIGINT",
        );
        self.collect(waited)
    }

    /// Waits, without signalling it, until netdrop exits by itself (e.g. the
    /// process of `--pid` exited); kills it and fails after `timeout`.
    pub fn wait_exit(mut self, timeout: Duration) -> Result<NetdropOutput> {
        let waited = wait_until(
            &mut self.child,
            Instant::now() + timeout,
            "netdrop exiting by itself",
        );
        self.collect(waited)
    }

    /// What netdrop printed, once it has exited (or was killed).
    fn collect(&mut self, waited: Result<ExitStatus>) -> Result<NetdropOutput> {
        let stdout = self
            .stdout
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        self.join_stderr();
        let stderr = self.stderr_text();
        eprintln!("--- netdrop stderr ---\n{stderr}--- end of netdrop stderr ---");
        let status = waited.with_context(|| format!("stderr:\n{stderr}"))?;
        let out = NetdropOutput::parse(status, &stdout, stderr);
        match &out.summary {
            Some(s) => eprintln!("netdrop summary: {s}"),
            None => eprintln!("netdrop printed no summary"),
        }
        Ok(out)
    }
}

impl Drop for Netdrop {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a netdrop run printed.
#[derive(Debug)]
pub struct NetdropOutput {
    pub status: ExitStatus,
    /// Every JSON line of stdout, in order (the summary included).
    pub lines: Vec<Value>,
    /// The `{"type":"summary"}` line, if there was one.
    pub summary: Option<Value>,
    /// stdout lines that were not JSON objects.
    pub garbage: Vec<String>,
    pub stderr: String,
}

impl NetdropOutput {
    pub fn parse(status: ExitStatus, stdout: &str, stderr: String) -> Self {
        let mut lines = Vec::new();
        let mut garbage = Vec::new();
        let mut summary = None;
        for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Value>(line) {
                Ok(v) if v.is_object() => {
                    if v["type"] == "summary" {
                        summary = Some(v.clone());
                    }
                    lines.push(v);
                }
                _ => garbage.push(line.to_owned()),
            }
        }
        NetdropOutput {
            status,
            lines,
            summary,
            garbage,
            stderr,
        }
    }

    /// Asserts exit code 0, only JSON on stdout, and a summary that lists every cause.
    pub fn assert_clean_exit(&self) {
        assert_eq!(
            self.status.code(),
            Some(0),
            "netdrop exit status; stderr:\n{}",
            self.stderr
        );
        assert!(
            self.garbage.is_empty(),
            "non-JSON stdout lines: {:?}",
            self.garbage
        );
        let summary = self.summary();
        for cause in crate::CAUSES {
            assert!(
                summary["causes"][cause].is_u64(),
                "summary.causes.{cause} missing: {summary}"
            );
        }
        for key in ["neigh_create_failures", "lost_events", "events_read"] {
            assert!(summary[key].is_u64(), "summary.{key} missing: {summary}");
        }
        assert!(
            summary["duration_s"].is_number(),
            "summary.duration_s: {summary}"
        );
    }

    /// The `{"type":"diagnosis"}` line watch prints before the summary.
    pub fn diagnosis(&self) -> &Value {
        self.lines
            .iter()
            .find(|l| l["type"] == "diagnosis")
            .unwrap_or_else(|| panic!("netdrop printed no diagnosis; stderr:\n{}", self.stderr))
    }

    /// The diagnosis entry of `cause`, if the cause had drops.
    pub fn diagnosed(&self, cause: &str) -> Option<&Value> {
        self.diagnosis()["causes"]
            .as_array()?
            .iter()
            .find(|c| c["cause"] == cause)
    }

    /// The summary line; panics (showing stderr) if there was none.
    pub fn summary(&self) -> &Value {
        self.summary
            .as_ref()
            .unwrap_or_else(|| panic!("netdrop printed no summary; stderr:\n{}", self.stderr))
    }

    /// summary.causes[cause] (must be present).
    pub fn cause(&self, cause: &str) -> u64 {
        let s = self.summary();
        s["causes"][cause]
            .as_u64()
            .unwrap_or_else(|| panic!("summary.causes.{cause} missing: {s}"))
    }

    /// The kernel gives no drop reasons (5.10–5.16): netdrop said so.
    pub fn without_reasons(&self) -> bool {
        self.stderr.contains("gives no drop reasons")
    }

    /// The reason of a UDP datagram to a closed port on this kernel:
    /// NO_SOCKET, or UNKNOWN where the kernel gives no reasons.
    pub fn no_socket_reason(&self) -> &'static str {
        if self.without_reasons() {
            "UNKNOWN"
        } else {
            "NO_SOCKET"
        }
    }

    /// The diagnosis of a cause handled from its declaration (the cause
    /// registry's), in a reproduction that makes one group of it: asserts its
    /// kernel counter's name, its counter's change over the observation
    /// (`delta`: None leaves it to the caller) and that it has exactly one
    /// group, of kind `declared` and grouped `by`. Returns the cause's
    /// report and that group.
    pub fn declared_group(
        &self,
        cause: &str,
        counter: &str,
        delta: Option<u64>,
        by: &str,
    ) -> (&Value, &Value) {
        let d = self
            .diagnosed(cause)
            .unwrap_or_else(|| panic!("{cause} in the diagnosis: {}", self.diagnosis()));
        assert_eq!(d["kernel_counter"]["name"], counter, "{d}");
        if let Some(delta) = delta {
            assert_eq!(
                d["kernel_counter"]["delta"],
                serde_json::json!(delta),
                "{d}"
            );
        }
        let groups = d["groups"].as_array().expect("groups");
        assert_eq!(groups.len(), 1, "{d}");
        let g = &groups[0];
        assert_eq!(g["kind"], "declared", "{g}");
        assert_eq!(g["by"], by, "{g}");
        (d, g)
    }

    /// summary.reasons[reason], 0 when absent (only nonzero reasons are
    /// listed); on kernels without drop reasons the same drops classified by
    /// where they were freed (`REASON(by location)`) count too.
    pub fn reason(&self, reason: &str) -> u64 {
        [reason.to_string(), format!("{reason}{BY_LOCATION}")]
            .iter()
            .map(|name| {
                let v = &self.summary()["reasons"][name.as_str()];
                if v.is_null() {
                    return 0;
                }
                v.as_u64()
                    .unwrap_or_else(|| panic!("summary.reasons.{name} not a count: {v}"))
            })
            .sum()
    }

    pub fn neigh_create_failures(&self) -> u64 {
        self.summary()["neigh_create_failures"]
            .as_u64()
            .expect("summary.neigh_create_failures")
    }

    pub fn lost_events(&self) -> u64 {
        self.summary()["lost_events"]
            .as_u64()
            .expect("summary.lost_events")
    }

    fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.lines.iter().filter(move |v| v["type"] == ty)
    }

    /// `"type":"drop"` lines.
    pub fn drops(&self) -> Vec<&Value> {
        self.of_type("drop").collect()
    }

    /// Drop lines with the given cause.
    pub fn drops_with_cause(&self, cause: &str) -> Vec<&Value> {
        self.of_type("drop")
            .filter(|v| v["cause"] == cause)
            .collect()
    }

    /// `"type":"neigh_create_failed"` lines.
    pub fn neigh_create_failed(&self) -> Vec<&Value> {
        self.of_type("neigh_create_failed").collect()
    }

    /// summary.kernel_only[cause]: drops of the cause known only from the
    /// kernel's counters (already included in summary.causes); 0 when the cause
    /// is not listed. Panics when the summary has no `kernel_only` object.
    pub fn kernel_only(&self, cause: &str) -> u64 {
        let s = self.summary();
        let ko = &s["kernel_only"];
        assert!(ko.is_object(), "summary.kernel_only missing: {s}");
        let v = &ko[cause];
        if v.is_null() {
            return 0;
        }
        v.as_u64()
            .unwrap_or_else(|| panic!("summary.kernel_only.{cause} not a count: {s}"))
    }

    /// The diagnosis' `drops` of `cause`; 0 when the cause is not diagnosed.
    pub fn diagnosed_drops(&self, cause: &str) -> u64 {
        match self.diagnosed(cause) {
            None => 0,
            Some(c) => c["drops"]
                .as_u64()
                .unwrap_or_else(|| panic!("diagnosis {cause}.drops: {c}")),
        }
    }

    /// The diagnosis' `kernel_counters` row of `counter`
    /// (e.g. `TcpExt:IPReversePathFilter`), if there is one.
    pub fn counter_row(&self, counter: &str) -> Option<&Value> {
        self.diagnosis()["kernel_counters"]
            .as_array()?
            .iter()
            .find(|r| r["counter"] == counter)
    }

    /// "One truth": for every cause the summary's total equals the diagnosis'
    /// drops (0 when the diagnosis does not list the cause). `other` is compared
    /// only where the diagnosis lists it (it reports other reasons apart).
    /// Prints both sides.
    pub fn assert_one_truth(&self) {
        let mut wrong = Vec::new();
        for cause in crate::CAUSES {
            let summary = self.cause(cause);
            if cause == "other" && self.diagnosed(cause).is_none() {
                continue;
            }
            let diagnosis = self.diagnosed_drops(cause);
            eprintln!("one truth: {cause:<22} summary {summary:>6}  diagnosis {diagnosis:>6}");
            if summary != diagnosis {
                wrong.push(format!(
                    "{cause}: summary {summary} != diagnosis {diagnosis}"
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "summary.causes and the diagnosis disagree: {wrong:?}\nsummary: {}\ndiagnosis: {}",
            self.summary(),
            self.diagnosis()
        );
    }
}

/// How netdrop marks a reason inferred from where a drop was freed, on
/// kernels without drop reasons (5.10–5.16).
pub const BY_LOCATION: &str = "(by location)";

/// A drop line's reason, without the [`BY_LOCATION`] mark: the reason a
/// kernel with drop reasons gives the same drop.
pub fn reason_of(line: &Value) -> &str {
    let r = line["reason"].as_str().unwrap_or_default();
    r.strip_suffix(BY_LOCATION).unwrap_or(r)
}

/// Asserts the field types the JSON contract gives a drop line.
pub fn assert_drop_line_shape(v: &Value) {
    assert!(v["ts"].is_number(), "ts: {v}");
    assert!(
        crate::CAUSES.contains(&v["cause"].as_str().unwrap_or("")),
        "cause: {v}"
    );
    let reason = v["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("reason: {v}"));
    assert!(
        !reason.starts_with("SKB_DROP_REASON_"),
        "reason keeps its prefix: {v}"
    );
    assert!(v["location"].is_string(), "location: {v}");
    for key in ["netns", "ifindex", "protocol", "pid"] {
        assert!(v[key].is_u64(), "{key}: {v}");
    }
    assert!(v["dev"].is_string(), "dev: {v}");
    assert!(v["comm"].is_string(), "comm: {v}");
    for key in ["saddr", "daddr", "l4"] {
        assert!(v[key].is_string() || v[key].is_null(), "{key}: {v}");
    }
    for key in ["sport", "dport"] {
        assert!(v[key].is_u64() || v[key].is_null(), "{key}: {v}");
    }
}

/// Names of loaded BPF programs that contain "netdrop" (`bpftool prog show`;
/// the kernel keeps 15 characters: netdrop_kfree_skb shows as netdrop_kfree_s).
/// The netdrop programs still loaded once `within` has passed, or as soon as
/// none is: the kernel frees a program after its last reference closes, a
/// little after the process that held it has exited.
pub fn programs_left_after(within: Duration) -> Result<Vec<String>> {
    let deadline = Instant::now() + within;
    loop {
        let left = netdrop_programs()?;
        if left.is_empty() || Instant::now() >= deadline {
            return Ok(left);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn netdrop_programs() -> Result<Vec<String>> {
    let out = cmd::run_args("bpftool", &["-j", "prog", "show"])?;
    let progs: Value = serde_json::from_str(&out).context("bpftool JSON")?;
    let progs = progs.as_array().context("bpftool: expected an array")?;
    Ok(progs
        .iter()
        .filter_map(|p| p["name"].as_str())
        .filter(|n| n.contains("netdrop"))
        .map(str::to_owned)
        .collect())
}
