//! Which drops to show: `--pid`, `--netns`, `--dev`, `--cause` are decided in the
//! kernel (a storm of other drops costs little, and the counts cover only what
//! is kept); `--port` and `--addr` narrow the detail events in the agent.

use std::{
    collections::BTreeSet,
    fs::{self, File},
    io,
    net::IpAddr,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use netdrop_common::{Filter, IFNAMSIZ, MAX_REASONS, filter};

use crate::{
    classify::{Cause, cause_of},
    context::netns::{NAMED_NETNS_DIR, current_netns_inode, in_netns, list_netns},
    decode::DropRecord,
    kernel::reasons::ReasonTable,
    text::Safe,
};

/// Filters as the user gave them.
#[derive(Debug, Clone, Default)]
pub struct FilterSpec {
    pub pid: Option<u32>,
    /// A namespace inode, an `ip netns` name, or a path to an nsfs file.
    pub netns: Option<String>,
    pub dev: Option<String>,
    pub causes: Vec<Cause>,
    pub port: Option<u16>,
    pub addr: Option<IpAddr>,
}

impl FilterSpec {
    /// The filters as command-line flags (for a recording's header).
    pub fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(p) = self.pid {
            v.push(format!("--pid {p}"));
        }
        if let Some(n) = &self.netns {
            v.push(format!("--netns {n}"));
        }
        if let Some(d) = &self.dev {
            v.push(format!("--dev {d}"));
        }
        v.extend(
            self.causes
                .iter()
                .map(|c| format!("--cause {}", c.as_str())),
        );
        if let Some(p) = self.port {
            v.push(format!("--port {p}"));
        }
        if let Some(a) = self.addr {
            v.push(format!("--addr {a}"));
        }
        v
    }
}

/// Resolved filters: the kernel part and the agent part.
#[derive(Debug, Clone)]
pub struct Filters {
    pub kernel: Filter,
    /// `--cause`: the reason slots the kernel keeps (FILTER_REASONS).
    pub reason_slots: Vec<u32>,
    pub pid: Option<u32>,
    pub port: Option<u16>,
    pub addr: Option<IpAddr>,
}

impl Filters {
    pub fn none() -> Filters {
        Filters {
            kernel: Filter::none(),
            reason_slots: Vec::new(),
            pid: None,
            port: None,
            addr: None,
        }
    }

    /// Does a drop's packet match `--port`/`--addr`? (The rest was decided in the kernel.)
    pub fn keep_packet(&self, rec: &DropRecord) -> bool {
        let p = rec.packet.as_ref();
        let port_ok = self
            .port
            .is_none_or(|port| p.is_some_and(|p| p.sport == Some(port) || p.dport == Some(port)));
        let addr_ok = self
            .addr
            .is_none_or(|addr| p.is_some_and(|p| p.saddr == addr || p.daddr == addr));
        port_ok && addr_ok
    }

    /// Port/address filters also drop events with no packet header (refused
    /// neighbour creates, refused SYNs are matched on what they carry).
    pub fn has_packet_filter(&self) -> bool {
        self.port.is_some() || self.addr.is_some()
    }
}

/// The network namespace inode of a process.
pub fn netns_of_pid(pid: u32) -> Result<u32> {
    netns_inode(&format!("/proc/{pid}/ns/net"))
}

fn netns_inode(path: &str) -> Result<u32> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read {path}"))?;
    u32::try_from(meta.ino()).context("namespace inode out of range")
}

/// `--netns`: the inode of an existing network namespace, given as
///
/// - an inode number netdrop's namespace listing has ([`list_netns`]: named
///   namespaces in /run/netns and every process's `/proc/PID/ns/net`);
/// - an `ip netns` name (`/run/netns/NAME`; a name made of digits that is no
///   listed inode is taken as a name);
/// - a path (anything with a `/`) to an nsfs file of a *network* namespace.
///
/// Anything else is an error saying what it is instead, e.g.
/// `--netns 12345: no network namespace with that inode (see ip netns / ls -l /proc/*/ns/net)`,
/// `--netns /proc/self/ns/mnt: not a network namespace (a mount namespace)`.
pub fn resolve_netns(spec: &str) -> Result<u32> {
    find_netns(spec).map(|(inode, _)| inode)
}

/// [`resolve_netns`], with an nsfs path to the namespace (to look into it).
fn find_netns(spec: &str) -> Result<(u32, PathBuf)> {
    let shown = Safe(spec);
    if spec.is_empty() {
        bail!("--netns \"\": expected an inode number, an `ip netns` name or a path");
    }
    if spec.contains('/') {
        return netns_file(Path::new(spec), spec);
    }
    let named = Path::new(NAMED_NETNS_DIR).join(spec);
    if spec.bytes().all(|b| b.is_ascii_digit()) {
        let listed = spec.parse::<u64>().ok().and_then(|inode| {
            list_netns()
                .into_iter()
                .find(|h| h.inode == inode)
                .and_then(|h| Some((u32::try_from(h.inode).ok()?, h.path)))
        });
        if let Some(found) = listed {
            return Ok(found);
        }
        if !named.exists() {
            bail!(
                "--netns {shown}: no network namespace with that inode (see ip netns / ls -l /proc/*/ns/net)"
            );
        }
    } else if spec == "." || spec == ".." || !named.exists() {
        bail!(
            "--netns {shown}: no network namespace named {shown} in {NAMED_NETNS_DIR} (see ip netns)"
        );
    }
    netns_file(&named, spec)
}

/// `NS_GET_NSTYPE` = `_IO(0xb7, 0x3)`: the `CLONE_NEW*` type of an nsfs file.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// The namespace kind of a `CLONE_NEW*` flag, as people name it.
fn ns_kind(flag: i32) -> &'static str {
    match flag {
        libc::CLONE_NEWNET => "network",
        libc::CLONE_NEWNS => "mount",
        libc::CLONE_NEWUTS => "UTS",
        libc::CLONE_NEWIPC => "IPC",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "PID",
        libc::CLONE_NEWCGROUP => "cgroup",
        0x80 => "time", // CLONE_NEWTIME
        _ => "unknown kind of",
    }
}

/// The inode of the network namespace behind the nsfs file `path`; else an error
/// naming what `path` is (missing, not a namespace file, another namespace kind).
fn netns_file(path: &Path, spec: &str) -> Result<(u32, PathBuf)> {
    let shown = Safe(spec);
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => anyhow::anyhow!("--netns {shown}: no such file"),
        _ => anyhow::anyhow!("--netns {shown}: cannot open it: {e}"),
    })?;
    // SAFETY: statfs is plain old data; fstatfs fills it.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is open and sfs a valid out-pointer.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut sfs) } != 0 {
        bail!("--netns {shown}: {}", io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between libcs
    if sfs.f_type as i64 != NSFS_MAGIC {
        bail!(
            "--netns {shown}: not a namespace file (a network namespace is /run/netns/NAME or /proc/PID/ns/net)"
        );
    }
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns a value.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind < 0 {
        bail!(
            "--netns {shown}: cannot tell its namespace type: {}",
            io::Error::last_os_error()
        );
    }
    if kind != libc::CLONE_NEWNET {
        bail!(
            "--netns {shown}: not a network namespace (a {} namespace)",
            ns_kind(kind)
        );
    }
    let inode = file.metadata()?.ino();
    let inode = u32::try_from(inode)
        .with_context(|| format!("--netns {shown}: inode {inode} out of range"))?;
    Ok((inode, path.to_path_buf()))
}

/// `--dev`: a name the kernel accepts for an interface (its `dev_valid_name`):
/// 1 to 15 bytes, not `.` or `..`, no `/`, `:`, NUL or whitespace (the kernel's
/// `isspace`, which includes the byte 0xa0).
pub fn check_dev_name(dev: &str) -> Result<(), String> {
    let bad = |b: u8| matches!(b, b'/' | b':' | b'\0' | b' ' | b'\t'..=b'\r' | 0xa0);
    if dev.is_empty() || dev.len() >= IFNAMSIZ || dev == "." || dev == ".." || dev.bytes().any(bad)
    {
        return Err(format!(
            "expected an interface name: 1 to {} bytes, not \".\" or \"..\", without '/', ':' or whitespace",
            IFNAMSIZ - 1
        ));
    }
    Ok(())
}

/// The network namespaces `--dev` is looked for in: those the other filters watch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Watched {
    /// `--netns`: that one (its inode and an nsfs path), as the user named it.
    One {
        inode: u32,
        path: PathBuf,
        spec: String,
    },
    /// `--pid` without `--netns`: the process's namespace.
    OfPid { pid: u32, inode: u32 },
    /// Every namespace.
    All,
}

impl Watched {
    fn describe(&self) -> String {
        match self {
            Watched::One { inode, spec, .. } if spec == &inode.to_string() => {
                format!("network namespace {inode}")
            }
            Watched::One { inode, spec, .. } => {
                format!("network namespace {} ({inode})", Safe(spec))
            }
            Watched::OfPid { pid, inode } => {
                format!("the network namespace of process {pid} ({inode})")
            }
            Watched::All => "any network namespace".to_string(),
        }
    }
}

/// Is there an interface `dev` in the calling thread's network namespace?
fn dev_here(dev: &str) -> bool {
    let Ok(name) = std::ffi::CString::new(dev) else {
        return false;
    };
    // SAFETY: name is a valid C string; if_nametoindex only reads it.
    unsafe { libc::if_nametoindex(name.as_ptr()) != 0 }
}

/// Is there an interface `dev` in the namespace behind `path`? `None` when
/// netdrop cannot look into it (no CAP_SYS_ADMIN for setns, namespace gone).
fn dev_in(dev: &str, inode: u64, path: &Path) -> Option<bool> {
    if current_netns_inode().ok() == Some(inode) {
        return Some(dev_here(dev));
    }
    let name = dev.to_string();
    in_netns(path, move || dev_here(&name)).ok()
}

/// Whether `dev` exists in the watched namespaces: `Some(true)` as soon as one
/// has it, `Some(false)` when every one was looked into and none has it, `None`
/// when some could not be looked into and none of the others has it.
fn dev_exists(dev: &str, watched: &Watched) -> Option<bool> {
    match watched {
        Watched::One { inode, path, .. } => dev_in(dev, u64::from(*inode), path),
        Watched::OfPid { pid, inode } => dev_in(
            dev,
            u64::from(*inode),
            Path::new(&format!("/proc/{pid}/ns/net")),
        ),
        Watched::All => {
            if dev_here(dev) {
                return Some(true);
            }
            let mut all_seen = true;
            for h in list_netns() {
                match dev_in(dev, h.inode, &h.path) {
                    Some(true) => return Some(true),
                    Some(false) => {}
                    None => all_seen = false,
                }
            }
            all_seen.then_some(false)
        }
    }
}

/// The notice for a `--dev` that no watched namespace has now: netdrop still
/// watches for it (a pod's interface may appear later), and says so.
fn dev_notice(dev: &str, watched: &Watched) -> String {
    format!(
        "netdrop: notice: no interface {} in {} now; its drops will be counted if it appears",
        Safe(dev),
        watched.describe()
    )
}

/// Checks the process exists; the error names it.
pub fn check_pid(pid: u32) -> Result<()> {
    if pid == 0 || !Path::new(&format!("/proc/{pid}")).exists() {
        bail!("no process {pid}");
    }
    Ok(())
}

/// The reason slots whose cause is one of `causes`.
pub fn reason_slots(causes: &[Cause], reasons: &ReasonTable, has_reason_field: bool) -> Vec<u32> {
    let wanted: BTreeSet<Cause> = causes.iter().copied().collect();
    (0..MAX_REASONS)
        .filter(|&slot| {
            let name = crate::summary::slot_name(reasons, has_reason_field, slot);
            wanted.contains(&cause_of(&name))
        })
        .collect()
}

pub fn resolve(
    spec: &FilterSpec,
    reasons: &ReasonTable,
    has_reason_field: bool,
) -> Result<Filters> {
    let mut k = Filter::none();
    let mut slots = Vec::new();
    if let Some(pid) = spec.pid {
        check_pid(pid)?;
        k.flags |= filter::PID;
        k.pid_tgid = pid;
        k.pid_netns = netns_of_pid(pid).with_context(|| format!("process {pid}"))?;
    }
    let mut watched = match spec.pid {
        Some(pid) => Watched::OfPid {
            pid,
            inode: k.pid_netns,
        },
        None => Watched::All,
    };
    if let Some(ns) = &spec.netns {
        let (inode, path) = find_netns(ns)?;
        k.flags |= filter::NETNS;
        k.netns = inode;
        watched = Watched::One {
            inode,
            path,
            spec: ns.clone(),
        };
    }
    if let Some(dev) = &spec.dev {
        check_dev_name(dev).map_err(|e| anyhow::anyhow!("--dev {}: {e}", Safe(dev)))?;
        k.flags |= filter::DEV;
        k.dev[..dev.len()].copy_from_slice(dev.as_bytes());
        // Not an error: the interface of a pod that starts later, or one
        // recreated during the session, is counted when it appears.
        if dev_exists(dev, &watched) == Some(false) {
            eprintln!("{}", dev_notice(dev, &watched));
        }
    }
    if !spec.causes.is_empty() {
        k.flags |= filter::REASONS;
        slots = reason_slots(&spec.causes, reasons, has_reason_field);
        if spec.causes.contains(&Cause::NeighTableOverflow) {
            k.flags |= filter::NEIGH_TABLE;
        }
        if spec.causes.contains(&Cause::AcceptQueueFull) {
            k.flags |= filter::ACCEPT_QUEUE;
        }
    }
    Ok(Filters {
        kernel: k,
        reason_slots: slots,
        pid: spec.pid,
        port: spec.port,
        addr: spec.addr,
    })
}

#[cfg(test)]
mod tests;
