//! Kernel-side diagnostics (`-v`): the eBPF programs log their rare failures
//! (a ring buffer reserve that failed, a reason out of range, a map insert
//! refused, a packet read that failed) with aya-log, once per site per CPU
//! (`netdrop-ebpf/src/diag.rs`). Without `-v` the level written into the
//! object before load is 0 (off): the verifier removes every log site, and
//! no logger reads the log ring buffer.
//!
//! The records are forwarded to the agent's `tracing` output (stderr) under
//! the target `netdrop::kernel`, escaped with [`crate::text::safe`]: a record
//! is built from the object's own strings and numbers, but nothing read from
//! a buffer the kernel fills reaches the terminal raw.

use anyhow::{Context, Result};
use aya::Ebpf;
use aya_log::{EbpfLogger, Level};
use tokio::io::unix::AsyncFd;

use crate::text::safe;

/// The value of aya-log-ebpf's `AYA_LOG_LEVEL` global for `-v` given
/// `verbose` times: 0 (off) without it, warnings (what the sites log) with it.
pub fn level(verbose: u8) -> u8 {
    if verbose == 0 { 0 } else { Level::Warn as u8 }
}

/// Forwards aya-log records to `tracing`.
pub struct Forward;

impl log::Log for Forward {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = line(record.target(), &record.args().to_string());
        match record.level() {
            log::Level::Error => tracing::error!(target: "netdrop::kernel", "{line}"),
            log::Level::Warn => tracing::warn!(target: "netdrop::kernel", "{line}"),
            log::Level::Info => tracing::info!(target: "netdrop::kernel", "{line}"),
            log::Level::Debug => tracing::debug!(target: "netdrop::kernel", "{line}"),
            log::Level::Trace => tracing::trace!(target: "netdrop::kernel", "{line}"),
        }
    }

    fn flush(&self) {}
}

/// One kernel record as shown: where it comes from (the eBPF module, e.g.
/// `netdrop::probes::kfree_skb`, shortened to its last part) and the message,
/// both escaped.
pub fn line(target: &str, message: &str) -> String {
    let from = target.rsplit("::").next().unwrap_or(target);
    format!("kernel [{}] {}", safe(from), safe(message))
}

/// The log ring buffer, polled by the session loop.
pub struct KernelLog {
    fd: AsyncFd<EbpfLogger<Forward>>,
}

impl KernelLog {
    /// Takes the log ring buffer out of `ebpf` (after the programs are loaded).
    pub fn start(ebpf: &mut Ebpf) -> Result<KernelLog> {
        let logger = EbpfLogger::init_with_logger(ebpf, Forward)
            .context("starting the kernel-side logger (aya-log)")?;
        tracing::info!(
            "kernel-side diagnostics on (aya-log): rare kernel-side failures are logged once per CPU"
        );
        // SAFETY: the logger owns its ring buffer's fd and outlives the
        // registration (the AsyncFd owns the logger).
        let fd = unsafe { AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("polling the kernel-side log: {}", e.into_parts().1))?;
        Ok(KernelLog { fd })
    }

    /// Waits for records and forwards them.
    pub async fn forward(&mut self) -> Result<()> {
        let mut guard = self.fd.readable_mut().await?;
        guard.get_inner_mut().flush();
        guard.clear_ready();
        Ok(())
    }

    /// Forwards what is there now (at the end of a session).
    pub fn flush(&mut self) {
        self.fd.get_mut().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_is_off_without_v_and_warn_with_it() {
        assert_eq!(level(0), 0);
        assert_eq!(level(1), Level::Warn as u8);
        assert_eq!(level(2), Level::Warn as u8);
        assert_ne!(level(1), 0);
    }

    #[test]
    fn a_kernel_line_names_its_module_and_is_escaped() {
        assert_eq!(
            line("netdrop::probes::kfree_skb", "ring buffer full"),
            "kernel [kfree_skb] ring buffer full"
        );
        assert_eq!(line("x", "a\x1b[2Jb\nc"), "kernel [x] a\\x1b[2Jb\\nc");
        assert_eq!(line("m\u{202e}", "ok"), "kernel [m\\u{202e}] ok");
    }
}
