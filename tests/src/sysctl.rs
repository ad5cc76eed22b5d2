//! Global (root namespace) sysctls that are put back on Drop.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// `net.ipv4.neigh.default.gc_thresh3` -> `/proc/sys/net/ipv4/neigh/default/gc_thresh3`.
pub fn key_path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

/// Reads a sysctl of the calling thread's namespace.
pub fn read(key: &str) -> Result<String> {
    let path = key_path(key);
    let v =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(v.trim().to_owned())
}

/// Writes a sysctl of the calling thread's namespace.
pub fn write(key: &str, value: &str) -> Result<()> {
    let path = key_path(key);
    std::fs::write(&path, value).with_context(|| format!("writing {} = {value}", path.display()))
}

/// Saves a sysctl value, sets a new one, and writes the saved value back on
/// Drop (also when the test panics). Use it from the root namespace (the
/// test's main thread) for global sysctls such as the neighbour gc_thresh*.
#[derive(Debug)]
pub struct SysctlGuard {
    key: String,
    saved: String,
    restored: bool,
}

impl SysctlGuard {
    pub fn set(key: &str, value: &str) -> Result<Self> {
        let saved = read(key)?;
        // The guard exists before the write: a failed or partial write is undone too.
        let guard = SysctlGuard {
            key: key.to_owned(),
            saved,
            restored: false,
        };
        write(key, value)?;
        Ok(guard)
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value that Drop writes back.
    pub fn saved(&self) -> &str {
        &self.saved
    }

    /// Writes the saved value back now (Drop then does nothing).
    pub fn restore(mut self) -> Result<()> {
        let r = write(&self.key, &self.saved);
        // On failure Drop tries once more.
        self.restored = r.is_ok();
        r
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        if self.restored {
            return;
        }
        if let Err(e) = write(&self.key, &self.saved) {
            eprintln!(
                "\n********\nERROR: could not restore sysctl {} = {}: {e:#}\n********\n",
                self.key, self.saved
            );
        }
    }
}
