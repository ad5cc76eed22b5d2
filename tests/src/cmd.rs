//! Running external commands with a time limit, and temporary directories.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What a finished command printed.
#[derive(Debug)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Default limit for helper commands (ip, bpftool, ...).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(20);

/// Reads a pipe to the end on its own thread.
pub(crate) fn drain<R: Read + Send + 'static>(mut pipe: R) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Waits for `child` until `deadline`; kills it (and errors) if it is still running.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant, what: &str) -> Result<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().context("waiting for child")? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what}: still running at the time limit; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` to completion with stdin closed, stdout/stderr captured, killing
/// it after `timeout`. A non-zero exit is not an error here.
pub fn output(cmd: &mut Command, timeout: Duration) -> Result<CmdOutput> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {what}"))?;
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    let status = wait_until(&mut child, Instant::now() + timeout, &what);
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(CmdOutput {
        status: status?,
        stdout,
        stderr,
    })
}

/// Runs `cmd` like [`output`] and fails unless it exits 0; returns stdout.
pub fn run(cmd: &mut Command) -> Result<String> {
    let what = format!("{cmd:?}");
    let out = output(cmd, CMD_TIMEOUT)?;
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, out.stderr.trim());
    }
    Ok(out.stdout)
}

/// Runs a program with arguments, see [`run`].
pub fn run_args(prog: &str, args: &[&str]) -> Result<String> {
    run(Command::new(prog).args(args))
}

static TEMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under /tmp (mode 0755), removed with its contents on Drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let n = TEMP_COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("ndt-{}-tmp{n}", std::process::id()));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        let dir = TempDir { path };
        std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755))?;
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("warning: removing {}: {e}", self.path.display());
        }
    }
}
