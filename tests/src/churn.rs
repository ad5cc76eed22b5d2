//! Namespace churn: hundreds of short-lived network namespaces, created and
//! deleted one after another (as pods come and go on a node), some of which
//! drop a few tagged datagrams before they die.
//!
//! Each namespace is a harness [`Netns`] (`ndt-<pid>-<n>`, lo up, deleted on
//! Drop even when a worker fails) with a veth pair of its own: both ends inside
//! it, `chv0` = 198.19.a.b/30 and `chv1` = the next address (198.18.0.0/15).
//! A *sender* binds a UDP socket to chv0's address and the source port
//! [`tag`]`(index)` and sends [`ChurnOptions::datagrams`] 1-byte datagrams to
//! chv1's address, port 9, where nothing listens: both addresses are local, so
//! they go over the namespace's `lo` and the kernel drops each one with
//! `NO_SOCKET` (`Udp: NoPorts` += 1 in that namespace). The namespace then lives
//! [`ChurnOptions::linger`] longer and is deleted. Other namespaces are deleted
//! as soon as they are set up: the churn makes the kernel reuse inode numbers.
//!
//! Bounds: at most [`MAX_NAMESPACES`] namespaces, [`ChurnOptions::datagrams`]
//! per sender (at most 100), and no new namespace after
//! [`ChurnOptions::time_limit`].

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::counters::delta;
use crate::netns::{Netns, in_netns};

/// The source port of sender `index` is `TAG_BASE + index`.
pub const TAG_BASE: u16 = 40_000;
/// The closed destination port.
pub const PORT: u16 = 9;
/// The veth pair inside each namespace.
pub const DEV: &str = "chv0";
pub const DEV_PEER: &str = "chv1";
/// The most namespaces one run may create (addresses and tags stay distinct).
pub const MAX_NAMESPACES: usize = 4000;

/// What to churn.
#[derive(Debug, Clone)]
pub struct ChurnOptions {
    /// Namespaces created (and deleted) in all.
    pub namespaces: usize,
    /// Namespace `i` sends when `i % sender_every == 0`.
    pub sender_every: usize,
    /// Datagrams per sender.
    pub datagrams: usize,
    /// How long a sender's namespace lives after its datagrams.
    pub linger: Duration,
    /// Namespaces set up at the same time.
    pub workers: usize,
    /// No namespace is created after this long (the run is then cut short).
    pub time_limit: Duration,
}

impl Default for ChurnOptions {
    /// 300 namespaces, every third one sends 5 datagrams (100 senders, 500
    /// drops) and lives 0.3 s more; 4 at a time; nothing new after 45 s.
    fn default() -> Self {
        ChurnOptions {
            namespaces: 300,
            sender_every: 3,
            datagrams: 5,
            linger: Duration::from_millis(300),
            workers: 4,
            time_limit: Duration::from_secs(45),
        }
    }
}

/// The source port (tag) of namespace `index`.
pub fn tag(index: usize) -> u16 {
    assert!(index < MAX_NAMESPACES, "index {index} too large");
    TAG_BASE + index as u16
}

/// chv0's and chv1's addresses in namespace `index`: a /30 of 198.19.0.0/16 each.
pub fn addrs(index: usize) -> (Ipv4Addr, Ipv4Addr) {
    assert!(index < MAX_NAMESPACES, "index {index} too large");
    let base = u32::from(Ipv4Addr::new(198, 19, 0, 0)) + 4 * index as u32;
    let (a, b) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
    crate::check_test_addr(a);
    crate::check_test_addr(b);
    (a, b)
}

/// One namespace of the churn, as it was while it lived.
#[derive(Debug, Clone)]
pub struct ChurnNs {
    pub index: usize,
    pub name: String,
    pub inode: u32,
    pub sender: bool,
    /// The kernel's cookie (read only for senders; None before 5.14).
    pub cookie: Option<u64>,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// The source port of its datagrams.
    pub sport: u16,
    /// Datagrams sent (senders).
    pub sent: usize,
    /// Its `Udp: NoPorts` delta around the sends: the drops, as the kernel counted them.
    pub no_ports: u64,
}

/// What [`run`] did.
#[derive(Debug)]
pub struct ChurnRun {
    /// Every namespace created and deleted, in index order.
    pub namespaces: Vec<ChurnNs>,
    /// The time limit stopped it before every namespace was made.
    pub cut_short: bool,
    pub elapsed: Duration,
}

impl ChurnRun {
    pub fn senders(&self) -> impl Iterator<Item = &ChurnNs> {
        self.namespaces.iter().filter(|n| n.sender)
    }

    /// Inodes held by more than one of the given namespaces, with them.
    pub fn shared_inodes<'a>(
        nss: impl Iterator<Item = &'a ChurnNs>,
    ) -> std::collections::BTreeMap<u32, Vec<&'a ChurnNs>> {
        let mut by_inode: std::collections::BTreeMap<u32, Vec<&ChurnNs>> = Default::default();
        for n in nss {
            by_inode.entry(n.inode).or_default().push(n);
        }
        by_inode.retain(|_, v| v.len() > 1);
        by_inode
    }
}

/// Sends `count` 1-byte datagrams from `src`:`sport` to `dst`:[`PORT`] from a
/// socket made in `ns`.
pub fn send_tagged(
    ns: &Netns,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    count: usize,
) -> Result<usize> {
    crate::check_test_addr(src);
    crate::check_test_addr(dst);
    ensure!(count <= 100, "refusing to send {count} datagrams (max 100)");
    let sent = in_netns(ns, move || -> std::io::Result<usize> {
        let sock = UdpSocket::bind(SocketAddrV4::new(src, sport))?;
        let to = SocketAddrV4::new(dst, PORT);
        let mut ok = 0;
        for _ in 0..count {
            if sock.send_to(b"x", to).is_ok() {
                ok += 1;
            }
        }
        Ok(ok)
    })?
    .with_context(|| format!("{}: sending from {src}:{sport}", ns.name()))?;
    Ok(sent)
}

/// Creates namespace `index`, lets it send if it is a sender, and deletes it.
fn one(index: usize, opts: &ChurnOptions) -> Result<ChurnNs> {
    let ns = Netns::new()?;
    let (src, dst) = addrs(index);
    let sender = index.is_multiple_of(opts.sender_every.max(1));
    ns.ip(&["link", "add", DEV, "type", "veth", "peer", "name", DEV_PEER])?;
    ns.ip(&["addr", "add", &format!("{src}/30"), "dev", DEV])?;
    ns.ip(&["addr", "add", &format!("{dst}/30"), "dev", DEV_PEER])?;
    ns.ip(&["link", "set", DEV, "up"])?;
    ns.ip(&["link", "set", DEV_PEER, "up"])?;
    let mut rec = ChurnNs {
        index,
        name: ns.name().to_owned(),
        inode: ns.inode(),
        sender,
        cookie: None,
        src,
        dst,
        sport: tag(index),
        sent: 0,
        no_ports: 0,
    };
    if sender {
        rec.cookie = ns.cookie()?;
        let before = ns.snmp()?;
        rec.sent = send_tagged(&ns, src, rec.sport, dst, opts.datagrams)?;
        std::thread::sleep(opts.linger);
        let after = ns.snmp()?;
        rec.no_ports = delta(&before, &after, "Udp:NoPorts");
    }
    drop(ns);
    Ok(rec)
}

/// Runs the churn: namespace 0 alone first (so `/run/netns` is set up before
/// `ip netns add` runs concurrently), then the rest on `workers` threads. Every
/// namespace is deleted before this returns, also when one fails (the first
/// error is returned once all workers have stopped).
pub fn run(opts: &ChurnOptions) -> Result<ChurnRun> {
    ensure!(
        opts.namespaces <= MAX_NAMESPACES,
        "at most {MAX_NAMESPACES} namespaces"
    );
    ensure!(opts.datagrams <= 100, "at most 100 datagrams per sender");
    let start = Instant::now();
    let deadline = start + opts.time_limit;
    let done = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let cut_short = AtomicBool::new(false);
    let errors = Mutex::new(Vec::new());
    if opts.namespaces > 0 {
        done.lock().unwrap().push(one(0, opts)?);
    }
    let workers = opts.workers.max(1);
    std::thread::scope(|s| {
        for w in 0..workers {
            let (done, stop, cut_short, errors) = (&done, &stop, &cut_short, &errors);
            s.spawn(move || {
                for index in (1 + w..opts.namespaces).step_by(workers) {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if Instant::now() >= deadline {
                        cut_short.store(true, Ordering::SeqCst);
                        return;
                    }
                    match one(index, opts) {
                        Ok(rec) => done.lock().unwrap_or_else(|p| p.into_inner()).push(rec),
                        Err(e) => {
                            stop.store(true, Ordering::SeqCst);
                            errors
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(format!("namespace {index}: {e:#}"));
                            return;
                        }
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    if !errors.is_empty() {
        bail!("namespace churn failed: {}", errors.join("; "));
    }
    let mut namespaces = done.into_inner().unwrap_or_else(|p| p.into_inner());
    namespaces.sort_by_key(|n| n.index);
    Ok(ChurnRun {
        namespaces,
        cut_short: cut_short.into_inner(),
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_tags_stay_distinct_and_in_range() {
        assert_eq!(
            addrs(0),
            (Ipv4Addr::new(198, 19, 0, 1), Ipv4Addr::new(198, 19, 0, 2))
        );
        assert_eq!(
            addrs(300),
            (
                Ipv4Addr::new(198, 19, 4, 177),
                Ipv4Addr::new(198, 19, 4, 178)
            )
        );
        let last = addrs(MAX_NAMESPACES - 1);
        assert!(crate::is_test_addr(last.1));
        assert_eq!(tag(0), TAG_BASE);
        assert_eq!(tag(299), TAG_BASE + 299);
    }
}
