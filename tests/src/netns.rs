//! Network namespaces (RAII), veth pairs, and running code inside a namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};

use crate::cmd::{self, run, run_args};
use crate::counters::{Counters, parse_netstat};

/// Every namespace the harness creates is named `ndt-<pid>-<n>`.
pub const NETNS_PREFIX: &str = "ndt-";

static NETNS_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The name prefix of the namespaces this process creates.
pub fn own_prefix() -> String {
    format!("{NETNS_PREFIX}{}-", std::process::id())
}

/// Names from `ip netns list` that start with `prefix`.
pub fn list_netns(prefix: &str) -> Result<Vec<String>> {
    let out = run_args("ip", &["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect())
}

/// A named network namespace (`ip netns add`), deleted on Drop.
///
/// It starts with lo up and IPv6 disabled (no router/neighbour solicitations,
/// no MLD: the tests see only the traffic they send).
#[derive(Debug)]
pub struct Netns {
    name: String,
    inode: u32,
}

impl Netns {
    pub fn new() -> Result<Self> {
        let n = NETNS_COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("{}{n}", own_prefix());
        run_args("ip", &["netns", "add", &name])?;
        // From here on Drop removes it, whatever fails below.
        let mut ns = Netns { name, inode: 0 };
        let meta = std::fs::metadata(ns.path())
            .with_context(|| format!("stat {}", ns.path().display()))?;
        // /run/netns/NAME is a bind mount of the nsfs file: its inode is ns.inum.
        ns.inode = u32::try_from(meta.ino()).context("netns inode does not fit u32")?;
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's inode number (the kernel's `ns.inum`, what netdrop reports as `netns`).
    pub fn inode(&self) -> u32 {
        self.inode
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n NAME <args>`; returns stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// `ip netns exec NAME sh -c <script>`; fails on non-zero exit; returns stdout.
    pub fn sh(&self, script: &str) -> Result<String> {
        run(&mut self.exec_cmd(&["sh", "-c", script]))
    }

    /// A `Command` for `ip netns exec NAME <argv>`.
    pub fn exec_cmd(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Sets a per-namespace sysctl (dotted key, e.g. `net.ipv4.conf.all.rp_filter`).
    /// Device names in keys must not contain dots. No restore needed: it dies
    /// with the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = crate::sysctl::key_path(key);
        in_netns(self, || std::fs::write(&path, value))?
            .with_context(|| format!("{}: writing {} = {value}", self.name, path.display()))
    }

    /// Reads a per-namespace sysctl.
    pub fn read_sysctl(&self, key: &str) -> Result<String> {
        let path = crate::sysctl::key_path(key);
        let v = in_netns(self, || std::fs::read_to_string(&path))?
            .with_context(|| format!("{}: reading {}", self.name, path.display()))?;
        Ok(v.trim().to_owned())
    }

    /// /proc/net/netstat of this namespace ("TcpExt:ListenOverflows" -> n).
    pub fn netstat(&self) -> Result<Counters> {
        // /proc/net is /proc/self/net, which follows the thread group leader's
        // namespace; /proc/thread-self/net follows this thread's.
        let text = in_netns(self, || {
            std::fs::read_to_string("/proc/thread-self/net/netstat")
        })?
        .with_context(|| format!("{}: reading netstat", self.name))?;
        Ok(parse_netstat(&text))
    }

    /// /proc/net/snmp of this namespace ("Udp:NoPorts" -> n).
    pub fn snmp(&self) -> Result<Counters> {
        let text = in_netns(self, || {
            std::fs::read_to_string("/proc/thread-self/net/snmp")
        })?
        .with_context(|| format!("{}: reading snmp", self.name))?;
        Ok(parse_netstat(&text))
    }

    /// The kernel's cookie of this namespace (`SO_NETNS_COOKIE`, Linux 5.14+):
    /// unlike the inode it is never reused. None where the kernel has none.
    pub fn cookie(&self) -> Result<Option<u64>> {
        in_netns(self, current_cookie)
    }

    /// `ip -o link show dev DEV` fields: (ifindex, MAC address).
    fn link(&self, dev: &str) -> Result<(u32, String)> {
        let out = self.ip(&["-o", "link", "show", "dev", dev])?;
        let ifindex = out
            .split(':')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .with_context(|| format!("no ifindex in {out:?}"))?;
        let mut words = out.split_whitespace();
        let mac = words
            .by_ref()
            .find(|w| *w == "link/ether")
            .and_then(|_| words.next())
            .with_context(|| format!("no MAC address in {out:?}"))?;
        Ok((ifindex, mac.to_owned()))
    }

    pub fn ifindex(&self, dev: &str) -> Result<u32> {
        Ok(self.link(dev)?.0)
    }

    pub fn mac(&self, dev: &str) -> Result<String> {
        Ok(self.link(dev)?.1)
    }

    /// A permanent neighbour entry `addr` → `mac` on `dev`: packets to it
    /// need no ARP (a test whose drops must all be of one cause).
    pub fn static_neighbour(&self, dev: &str, addr: std::net::Ipv4Addr, mac: &str) -> Result<()> {
        let addr = addr.to_string();
        self.ip(&[
            "neigh",
            "replace",
            &addr,
            "lladdr",
            mac,
            "dev",
            dev,
            "nud",
            "permanent",
        ])?;
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let r = cmd::output(
            Command::new("ip").args(["netns", "del", &self.name]),
            cmd::CMD_TIMEOUT,
        );
        match r {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("warning: ip netns del {}: {}", self.name, o.stderr.trim()),
            Err(e) => eprintln!("warning: ip netns del {}: {e:#}", self.name),
        }
    }
}

/// Creates a veth pair `a_dev` (in `a`, address `a_cidr`) -- `b_dev` (in `b`,
/// `b_cidr`) and brings both ends up. Addresses must be in 198.18.0.0/15.
/// The pair disappears with the namespaces.
pub fn veth_pair(
    a: &Netns,
    a_dev: &str,
    a_cidr: &str,
    b: &Netns,
    b_dev: &str,
    b_cidr: &str,
) -> Result<()> {
    crate::check_test_cidr(a_cidr);
    crate::check_test_cidr(b_cidr);
    run_args(
        "ip",
        &[
            "link",
            "add",
            a_dev,
            "netns",
            a.name(),
            "type",
            "veth",
            "peer",
            "name",
            b_dev,
            "netns",
            b.name(),
        ],
    )?;
    for (ns, dev, cidr) in [(a, a_dev, a_cidr), (b, b_dev, b_cidr)] {
        ns.ip(&["addr", "add", cidr, "dev", dev])?;
        ns.ip(&["link", "set", "dev", dev, "up"])?;
    }
    Ok(())
}

/// The cookie of the calling thread's network namespace (`SO_NETNS_COOKIE` on
/// a socket made here); None where the kernel does not have it (before 5.14).
pub fn current_cookie() -> Option<u64> {
    // SAFETY: plain socket(2); the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: cookie and len are valid out-pointers of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    // SAFETY: fd is ours and closed once.
    unsafe { libc::close(fd) };
    (rc == 0 && cookie != 0).then_some(cookie)
}

/// Runs `f` on a new thread that first joins `ns` (setns CLONE_NEWNET), so
/// sockets it creates live in that namespace (they keep it after being
/// handed back to other threads). Returns `f`'s result; a panic in `f` is
/// propagated.
pub fn in_netns<T, F>(ns: &Netns, f: F) -> Result<T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let file = File::open(ns.path()).with_context(|| format!("opening {}", ns.path().display()))?;
    std::thread::scope(|s| {
        let handle = s.spawn(move || -> Result<T> {
            // SAFETY: file is an open nsfs descriptor; setns changes only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                bail!("setns: {}", std::io::Error::last_os_error());
            }
            drop(file);
            Ok(f())
        });
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
