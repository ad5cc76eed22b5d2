//! A real terminal for netdrop's live screen: a tmux server of its own
//! (`-L`, a private socket), one session of a fixed size, keys sent with
//! `send-keys`, the screen read with `capture-pane -p`. The server is
//! killed when the guard drops, whatever happened.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Whether tmux is installed (scripts/setup.sh installs it).
    pub fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// A `width`×`height` session running `command` under `sh -c`.
    pub fn start(name: &str, width: u16, height: u16, command: &str) -> Result<Tmux> {
        let t = Tmux {
            socket: format!("netdrop-test-{}-{name}", std::process::id()),
        };
        t.tmux(&[
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "-s",
            "t",
            command,
        ])?;
        Ok(t)
    }

    /// `tmux ARGS` on this test's private server (a tmux subcommand and its arguments).
    fn tmux(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .context("running tmux")?;
        if !out.status.success() {
            bail!("tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The screen as text, a line per row.
    pub fn capture(&self) -> Result<String> {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    /// Keys as `send-keys` names them (`j`, `Enter`, `Escape`, `Space`).
    pub fn keys(&self, keys: &[&str]) -> Result<()> {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args).map(|_| ())
    }

    /// Text typed literally.
    pub fn type_text(&self, text: &str) -> Result<()> {
        self.tmux(&["send-keys", "-t", "t", "-l", text]).map(|_| ())
    }

    /// Whether the pane shows the alternate screen.
    pub fn alternate_on(&self) -> Result<bool> {
        Ok(self
            .tmux(&["display-message", "-p", "-t", "t", "#{alternate_on}"])?
            .trim()
            == "1")
    }

    /// Waits until the screen satisfies `pred`; the last screen either way.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Result<String> {
        let start = Instant::now();
        loop {
            let screen = self.capture()?;
            if pred(&screen) {
                return Ok(screen);
            }
            if start.elapsed() > timeout {
                bail!("timed out after {timeout:?}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}
