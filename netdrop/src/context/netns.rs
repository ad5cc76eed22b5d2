//! Network namespaces: which exist, which one we are in, and running code inside one.
//!
//! A namespace is identified by the inode of its nsfs file (the kernel's `ns.inum`,
//! what `readlink /proc/PID/ns/net` prints as `net:[INODE]`).
//!
//! Namespace membership is per *thread*. [`in_netns`] moves a fresh thread, never the
//! caller. Inside it, use `/proc/thread-self/net/...`: `/proc/net` is a symlink to
//! `/proc/self/net`, which shows the namespace of the thread-group leader, not of the
//! calling thread. `/proc/sys/net/...` and sockets created by the thread do follow the
//! thread's namespace.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The initial network namespace, as seen through pid 1.
pub const ROOT_NETNS_PATH: &str = "/proc/1/ns/net";
/// Where `ip netns add NAME` bind-mounts named namespaces.
pub const NAMED_NETNS_DIR: &str = "/run/netns";
const NSFS_MAGIC: i64 = 0x6e73_6673;
/// `NS_GET_NSTYPE` = `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// A reachable network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetnsHandle {
    /// Namespace inode (kernel `ns.inum`).
    pub inode: u64,
    /// An nsfs file for it: `/run/netns/NAME` or `/proc/PID/ns/net`.
    pub path: PathBuf,
    /// Its `ip netns` name, if any.
    pub name: Option<String>,
    /// The lowest pid found in it (`/proc/*/ns/net`), if any: whose container
    /// or pod it is.
    pub pid: Option<u32>,
}

/// Opens `path` and checks that it is an nsfs file of a network namespace;
/// returns the open file and the namespace inode.
fn open_netns(path: &Path) -> io::Result<(File, u64)> {
    let file = File::open(path)?;
    let fd = file.as_raw_fd();
    // SAFETY: statfs is plain old data; fstatfs fills it.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open and sfs is a valid out-pointer.
    if unsafe { libc::fstatfs(fd, &mut sfs) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between libcs
    if sfs.f_type as i64 != NSFS_MAGIC {
        let msg = format!("{} is not a namespace file", path.display());
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns a value.
    let kind = unsafe { libc::ioctl(fd, NS_GET_NSTYPE as _) };
    if kind != libc::CLONE_NEWNET {
        let msg = format!("{} is not a network namespace", path.display());
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    let inode = file.metadata()?.ino();
    Ok((file, inode))
}

/// Inode of the network namespace behind the nsfs file `path`.
pub fn netns_inode(path: &Path) -> io::Result<u64> {
    open_netns(path).map(|(_, inode)| inode)
}

/// Inode of the calling thread's network namespace.
pub fn current_netns_inode() -> io::Result<u64> {
    Ok(fs::metadata("/proc/thread-self/ns/net")?.ino())
}

/// Whether the calling thread is in the initial network namespace (`init_net`),
/// judged by a file the kernel creates only there (`/proc/thread-self/net/stat/arp_cache`,
/// with IPv4 built in). Works when `/proc/1/ns/net` cannot be opened.
pub fn is_initial_netns() -> bool {
    Path::new("/proc/thread-self/net/stat/arp_cache").exists()
}

/// Every network namespace reachable through `/run/netns/*` (named) and
/// `/proc/*/ns/net`, one handle per inode: the root namespace (`/proc/1/ns/net`)
/// first if it can be opened, then named ones by name, then unnamed ones by lowest
/// pid. A named path is preferred over a pid path for the same namespace.
///
/// Not listed: namespaces held only by a thread other than a leader, an open fd or a
/// bind mount elsewhere. Unreadable entries (other users' processes when unprivileged,
/// processes that exit meanwhile) are skipped.
pub fn list_netns() -> Vec<NetnsHandle> {
    let mut out: Vec<NetnsHandle> = Vec::new();
    let mut by_inode: HashMap<u64, usize> = HashMap::new();
    let mut add = |path: PathBuf, name: Option<String>, pid: Option<u32>| {
        let Ok(inode) = netns_inode(&path) else {
            return;
        };
        match by_inode.get(&inode) {
            Some(&i) => {
                if out[i].name.is_none() && name.is_some() {
                    out[i].path = path;
                    out[i].name = name;
                }
                out[i].pid = out[i].pid.or(pid);
            }
            None => {
                by_inode.insert(inode, out.len());
                out.push(NetnsHandle {
                    inode,
                    path,
                    name,
                    pid,
                });
            }
        }
    };

    add(PathBuf::from(ROOT_NETNS_PATH), None, Some(1));

    let mut named: Vec<String> = fs::read_dir(NAMED_NETNS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    named.sort();
    for name in named {
        add(Path::new(NAMED_NETNS_DIR).join(&name), Some(name), None);
    }

    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        add(
            PathBuf::from(format!("/proc/{pid}/ns/net")),
            None,
            Some(pid),
        );
    }
    out
}

/// Runs `f` on a fresh thread that first joins the network namespace of the nsfs file
/// `ns` (`setns(fd, CLONE_NEWNET)`, needs CAP_SYS_ADMIN) and returns its result. The
/// caller's own namespace never changes. A panic in `f` is propagated to the caller.
///
/// Inside `f`, read `/proc/thread-self/net/...` (not `/proc/net`) and
/// `/proc/sys/net/...`; netlink and other sockets created by `f` belong to `ns`.
pub fn in_netns<T: Send + 'static>(
    ns: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let (file, _) = open_netns(ns)?;
    let worker = std::thread::Builder::new()
        .name("netdrop-netns".into())
        .spawn(move || -> io::Result<T> {
            // SAFETY: file is an open nsfs fd of a network namespace.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            drop(file);
            Ok(f())
        })?;
    match worker.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn current_inode_matches_proc_self() {
        let me = current_netns_inode().unwrap();
        assert_eq!(netns_inode(Path::new("/proc/self/ns/net")).unwrap(), me);
        assert_eq!(
            netns_inode(Path::new("/proc/thread-self/ns/net")).unwrap(),
            me
        );
    }

    #[test]
    fn rejects_non_netns_files() {
        let e = netns_inode(Path::new("/proc/self/ns/uts")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = netns_inode(Path::new("/proc/self/status")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(netns_inode(Path::new("/nonexistent/ns")).is_err());
        assert!(in_netns(Path::new("/proc/self/status"), || ()).is_err());
    }

    #[test]
    fn list_includes_current_and_is_unique() {
        let all = list_netns();
        let me = current_netns_inode().unwrap();
        assert!(all.iter().any(|h| h.inode == me), "{all:?}");
        let mut inodes: Vec<u64> = all.iter().map(|h| h.inode).collect();
        inodes.sort_unstable();
        inodes.dedup();
        assert_eq!(inodes.len(), all.len());
        for h in &all {
            if let Some(name) = &h.name {
                assert_eq!(h.path, Path::new(NAMED_NETNS_DIR).join(name));
            }
        }
        match netns_inode(Path::new(ROOT_NETNS_PATH)) {
            Ok(root) => assert_eq!(all[0].inode, root),
            Err(e) => eprintln!("SKIP: root-first check: {ROOT_NETNS_PATH}: {e}"),
        }
    }

    #[test]
    fn in_own_netns_returns_same_inode() {
        if !is_root() {
            eprintln!("SKIP: in_own_netns_returns_same_inode needs root (setns)");
            return;
        }
        let me = current_netns_inode().unwrap();
        let inside = in_netns(Path::new("/proc/self/ns/net"), current_netns_inode);
        assert_eq!(inside.unwrap().unwrap(), me);
    }

    #[test]
    fn in_root_netns_returns_same_inode() {
        if !is_root() {
            eprintln!("SKIP: in_root_netns_returns_same_inode needs root (setns)");
            return;
        }
        // Even root may be refused /proc/1/ns/* (LSM / sandbox policy on pid 1).
        let root = match netns_inode(Path::new(ROOT_NETNS_PATH)) {
            Ok(root) => root,
            Err(e) => {
                eprintln!("SKIP: in_root_netns_returns_same_inode: {ROOT_NETNS_PATH}: {e}");
                return;
            }
        };
        let inside = in_netns(Path::new(ROOT_NETNS_PATH), || {
            (current_netns_inode(), is_initial_netns())
        });
        let (inode, initial) = inside.unwrap();
        let inode = inode.unwrap();
        assert_eq!(inode, root);
        assert!(initial);
        if current_netns_inode().unwrap() == root {
            // The usual case: the tests themselves run in the root namespace.
            assert_eq!(inode, current_netns_inode().unwrap());
        }
    }

    #[test]
    fn panics_propagate() {
        if !is_root() {
            eprintln!("SKIP: panics_propagate needs root (setns)");
            return;
        }
        let own = Path::new("/proc/self/ns/net");
        let r = std::panic::catch_unwind(|| in_netns(own, || panic!("expected test panic")));
        assert!(r.is_err());
    }
}
