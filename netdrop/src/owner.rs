//! Who owns a socket: socket inode → process, from /proc/PID/fd. Works for
//! sockets opened before netdrop started. The current task at a drop is often
//! the wrong answer (softirq runs whoever was on the CPU; a queue eviction runs
//! in the evicting sender's context), so netdrop names the socket's owner.

use std::{
    collections::HashMap,
    fs,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::container::Identity;

/// A process holding the socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    pub comm: String,
    /// Container id (the 64-hex cgroup path segment, shortened to 12), if any.
    pub container: Option<String>,
    /// Its container and pod, with their names ([`crate::container`]). Not in
    /// the serialized form: recordings carry it beside the owner
    /// (record/format.rs), so recordings made before it still read.
    #[serde(skip)]
    pub identity: Option<Identity>,
}

impl Owner {
    /// The container and pod of the process (for labels: `pod`, `container_name`…).
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }
}

/// Socket inode → owner. The kernel names the owner of TCP sockets it saw
/// connect or listen; for the others /proc is rescanned on a miss: at once for
/// an inode not missed before (a socket just created), else at most every
/// [`RESCAN_EVERY`] (a storm of drops on closed sockets must not become a storm
/// of scans).
#[derive(Debug, Default)]
pub struct Owners {
    by_ino: HashMap<u64, Owner>,
    by_pid: HashMap<u32, Owner>,
    missed: std::collections::HashSet<u64>,
    last_scan: Option<Instant>,
}

pub const RESCAN_EVERY: Duration = Duration::from_millis(200);
/// Even first misses wait this long after a scan.
pub const RESCAN_MIN: Duration = Duration::from_millis(10);
/// Bounds the memory of inodes already missed.
const MAX_MISSED: usize = 65536;

impl Owners {
    /// The owner of socket `ino`; `tgid` is the owner the kernel learned (0: none).
    pub fn lookup(&mut self, ino: u64, tgid: u32) -> Option<Owner> {
        if ino == 0 {
            return None;
        }
        if tgid != 0 {
            return Some(
                self.by_pid
                    .entry(tgid)
                    .or_insert_with(|| process(tgid))
                    .clone(),
            );
        }
        if !self.by_ino.contains_key(&ino) {
            let since = self.last_scan.map(|t| t.elapsed());
            let first_miss = self.missed.len() < MAX_MISSED && self.missed.insert(ino);
            let wait = if first_miss { RESCAN_MIN } else { RESCAN_EVERY };
            if since.is_none_or(|s| s >= wait) {
                self.rescan();
            }
        }
        self.by_ino.get(&ino).cloned()
    }

    pub fn rescan(&mut self) {
        self.by_ino = scan_all();
        self.by_pid.clear();
        self.last_scan = Some(Instant::now());
    }
}

/// Every socket inode of every process (the lowest pid wins for shared sockets).
fn scan_all() -> HashMap<u64, Owner> {
    let mut out: HashMap<u64, Owner> = HashMap::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return out;
    };
    let mut pids: Vec<u32> = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let inos = socket_inodes(pid);
        if inos.is_empty() {
            continue;
        }
        let owner = process(pid);
        for ino in inos {
            out.entry(ino).or_insert_with(|| owner.clone());
        }
    }
    out
}

fn process(pid: u32) -> Owner {
    let identity = crate::container::of_pid(pid);
    Owner {
        pid,
        comm: comm_of(pid),
        container: identity.as_ref().map(|i| i.short_id().to_string()),
        identity,
    }
}

/// Socket inodes open in process `pid` (its threads share the fd table).
pub fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|fd| {
            let target = fs::read_link(fd.path()).ok()?;
            parse_socket_link(target.to_str()?)
        })
        .collect()
}

/// `socket:[12345]` → 12345.
pub fn parse_socket_link(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

pub fn comm_of(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default()
}

/// The 12-digit id of process `pid`'s container, if it is in one.
pub fn container_of(pid: u32) -> Option<String> {
    crate::container::of_pid(pid).map(|i| i.short_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link("socket:[4026]"), Some(4026));
        assert_eq!(parse_socket_link("pipe:[4026]"), None);
        assert_eq!(parse_socket_link("socket:[x]"), None);
    }

    #[test]
    fn finds_the_owner_of_a_socket_opened_before() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsRawFd;
        let link = fs::read_link(format!("/proc/self/fd/{}", sock.as_raw_fd())).unwrap();
        let ino = parse_socket_link(link.to_str().unwrap()).unwrap();
        let mut owners = Owners::default();
        let o = owners.lookup(ino, 0).expect("our socket is found");
        assert_eq!(o.pid, std::process::id());
        assert!(owners.lookup(1, 0).is_none(), "no such socket");
        // The kernel's word wins and needs no scan.
        let me = std::process::id();
        assert_eq!(owners.lookup(2, me).map(|o| o.pid), Some(me));
        assert_eq!(owners.lookup(0, me), None, "no socket, no owner");
    }
}
