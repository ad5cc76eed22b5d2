//! A drop storm: UDP datagrams to a closed port, as fast as this machine sends them.
//!
//! Every datagram is freed by the kernel on `skb:kfree_skb` with reason
//! `SKB_DROP_REASON_NO_SOCKET` and counted in the receiving namespace's
//! `/proc/net/snmp` `Udp: NoPorts`: that counter is the storm's exact ground truth.
//!
//! Where the traffic goes: network namespaces that [`run`] creates for itself
//! with `unshare(CLONE_NEWNET)` on threads of its own; they die with the threads
//! and sockets that use them (nothing to clean up, even after SIGKILL). Nothing
//! is sent anywhere else.
//!
//! Two routes, [`Via::Veth`] (the default) and [`Via::Loopback`]:
//!
//! - veth: the coordinator thread's namespace receives (drops, counts); the senders'
//!   sockets belong to a second namespace (a helper thread's `unshare`) on the other
//!   end of a veth pair, and send 198.18.0.1 → 198.18.0.2:9;
//! - loopback: sockets of the coordinator's namespace send to 127.0.0.1:9 on its `lo`.
//!
//! Why veth: measured on the 2-CPU development VM (kernel 6.18), one sender thread
//! made 195–205 k drops per CPU-second through loopback and 215–245 k through veth.
//! The kernel does not rate-limit ICMP errors sent over a loopback device
//! (`icmpv4_xrlim_allow`), so on `lo` every dropped datagram also costs an ICMP
//! port-unreachable built, sent, received and handled (`icmp_rcv`,
//! `__udp4_lib_err` in `perf`); over veth they are capped at
//! `net.ipv4.icmp_msgs_per_sec`. The extra route lookup and Ethernet header of veth
//! cost less than that. The drop itself is the same (`__udp4_lib_rcv`, NO_SOCKET).
//! Unconnected sockets with `sendmmsg` batches of [`BATCH`] were as fast as
//! connected ones (which also get `ECONNREFUSED` back from the ICMP errors).
//!
//! Bounds: each thread stops at the deadline (checked after every batch) or when
//! its share of `max_packets` is sent, whichever comes first.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Datagrams per `sendmmsg` call.
pub const BATCH: usize = 64;
/// Bytes of payload per datagram.
pub const PAYLOAD: usize = 8;
/// The closed destination port (discard; nothing listens in a fresh namespace).
pub const PORT: u16 = 9;
/// The longest storm [`run`] accepts, seconds.
pub const MAX_SECONDS: f64 = 600.0;
/// Default hard cap: this many packets per second of storm (far above any rate
/// a machine reaches with this code; a safety net, not a target).
pub const CAP_PER_SECOND: u64 = 50_000_000;

/// veth route addresses (198.18.0.0/15, the benchmarking range).
const VETH_SRC: &str = "198.18.0.1/24";
const VETH_DST: &str = "198.18.0.2/24";
const VETH_DST_IP: [u8; 4] = [198, 18, 0, 2];

/// How the datagrams reach the closed port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Loopback,
    Veth,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Loopback => "loopback",
            Via::Veth => "veth",
        }
    }

    pub fn parse(s: &str) -> Result<Via> {
        match s {
            "loopback" | "lo" => Ok(Via::Loopback),
            "veth" => Ok(Via::Veth),
            _ => bail!("--via {s:?}: expected loopback or veth"),
        }
    }
}

/// What to storm with.
#[derive(Debug, Clone)]
pub struct Options {
    pub seconds: f64,
    pub threads: usize,
    /// Hard cap on packets over all threads.
    pub max_packets: u64,
    pub via: Via,
}

impl Options {
    /// `seconds` of storm on every CPU, through veth, with the default cap.
    pub fn new(seconds: f64) -> Options {
        Options {
            seconds,
            threads: ncpus(),
            max_packets: default_cap(seconds),
            via: Via::Veth,
        }
    }
}

/// The default packet cap for a storm of `seconds`.
pub fn default_cap(seconds: f64) -> u64 {
    (seconds.max(1.0) * CAP_PER_SECOND as f64) as u64
}

/// The number of CPUs this process may run on.
pub fn ncpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What a storm did.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Datagrams the senders handed to the kernel.
    pub sent: u64,
    /// From the first send to the last sender's end.
    pub seconds: f64,
    /// sent / seconds.
    pub rate: f64,
    /// `Udp: NoPorts` delta of the receiving namespace from `on_start` to the
    /// end: the storm's drops, as the kernel counted them.
    pub kernel_drops: u64,
    /// `Udp: NoPorts` of that (fresh) namespace before `on_start`: the datagrams
    /// that resolved the veth neighbour. A tracer attached before the storm
    /// process started sees `setup_drops + kernel_drops` NO_SOCKET drops from it.
    pub setup_drops: u64,
    pub threads: usize,
    pub via: Via,
}

impl Report {
    pub fn to_json(&self) -> Value {
        json!({
            "sent": self.sent,
            "seconds": self.seconds,
            "rate": self.rate,
            "kernel_drops": self.kernel_drops,
            "setup_drops": self.setup_drops,
            "threads": self.threads,
            "via": self.via.as_str(),
        })
    }

    /// Reads the object [`Report::to_json`] writes.
    pub fn from_json(v: &Value) -> Result<Report> {
        let u = |k: &str| {
            v[k].as_u64()
                .with_context(|| format!("storm JSON: no {k:?}"))
        };
        let f = |k: &str| {
            v[k].as_f64()
                .with_context(|| format!("storm JSON: no {k:?}"))
        };
        Ok(Report {
            sent: u("sent")?,
            seconds: f("seconds")?,
            rate: f("rate")?,
            kernel_drops: u("kernel_drops")?,
            setup_drops: v["setup_drops"].as_u64().unwrap_or(0),
            threads: usize::try_from(u("threads")?)?,
            via: Via::parse(v["via"].as_str().unwrap_or("veth"))?,
        })
    }

    pub fn human(&self) -> String {
        format!(
            "nd-storm: sent {} datagrams in {:.2} s = {:.0} packets/s ({} threads, {}); kernel drops (Udp NoPorts) {} (+{} before the storm)",
            self.sent,
            self.seconds,
            self.rate,
            self.threads,
            self.via.as_str(),
            self.kernel_drops,
            self.setup_drops
        )
    }
}

/// Runs a storm. `on_start` is called once, right before the senders start
/// (everything is set up by then), on a thread inside the namespace where the
/// drops happen and `Udp: NoPorts` counts them (its `/proc/thread-self/ns/net`
/// is that namespace). Needs root (CAP_SYS_ADMIN for `unshare`).
pub fn run(opts: &Options, on_start: impl FnOnce() + Send) -> Result<Report> {
    if !(opts.seconds > 0.0 && opts.seconds <= MAX_SECONDS) {
        bail!(
            "storm length {} s: must be in (0, {MAX_SECONDS}]",
            opts.seconds
        );
    }
    if opts.threads == 0 || opts.threads > 1024 {
        bail!("{} threads: must be 1..=1024", opts.threads);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("needs root: it creates a network namespace of its own (unshare CLONE_NEWNET)");
    }
    std::thread::scope(|s| {
        s.spawn(|| coordinate(opts, on_start))
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Moves the calling thread into a new, empty network namespace.
fn unshare_net() -> Result<()> {
    // SAFETY: unshare(CLONE_NEWNET) changes only the calling thread's namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        bail!(
            "unshare(CLONE_NEWNET): {} (needs root)",
            std::io::Error::last_os_error()
        );
    }
    // No router/neighbour solicitations or MLD in the storm's namespace.
    for k in ["all", "default"] {
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"), "1");
    }
    Ok(())
}

/// The coordinator: runs on its own thread, which ends up in the namespace
/// where the drops happen and are counted (`on_start` runs there too).
fn coordinate(opts: &Options, on_start: impl FnOnce()) -> Result<Report> {
    unshare_net()?;
    set_up("lo")?;
    let (dst, socks) = match opts.via {
        Via::Loopback => {
            let socks = (0..opts.threads)
                .map(|_| udp_socket())
                .collect::<Result<_>>()?;
            ([127, 0, 0, 1], socks)
        }
        Via::Veth => (VETH_DST_IP, veth_senders(opts.threads)?),
    };
    let before = udp_noports()?;
    let deadline_after = Duration::from_secs_f64(opts.seconds);
    let per_thread = opts.max_packets.div_ceil(opts.threads as u64).max(1);
    let go = Arc::new(Barrier::new(opts.threads + 1));
    let mut handles = Vec::new();
    for sock in socks {
        let go = Arc::clone(&go);
        handles.push(std::thread::spawn(move || -> Result<u64> {
            go.wait();
            send_until(&sock, dst, Instant::now() + deadline_after, per_thread)
        }));
    }
    on_start();
    let t0 = Instant::now();
    go.wait();
    let mut sent = 0;
    let mut err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(n)) => sent += n,
            Ok(Err(e)) => err = Some(e),
            Err(p) => std::panic::resume_unwind(p),
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    if let Some(e) = err {
        return Err(e);
    }
    // Loopback and veth deliver in the sender's softirq, but let stragglers land.
    std::thread::sleep(Duration::from_millis(50));
    let after = udp_noports()?;
    Ok(Report {
        sent,
        seconds,
        rate: sent as f64 / seconds.max(1e-9),
        kernel_drops: after.saturating_sub(before),
        setup_drops: before,
        threads: opts.threads,
        via: opts.via,
    })
}

/// The veth route, called on the coordinator thread (the receiving namespace R):
/// a helper thread unshares a sending namespace S; the pair nds0 (S,
/// 198.18.0.1) -- nds1 (R, 198.18.0.2) joins them. Returns `n` UDP sockets of S,
/// with the neighbour already resolved. S lives as long as those sockets (each
/// holds a reference to its namespace) and takes nds0, hence the pair, with it.
fn veth_senders(n: usize) -> Result<Vec<OwnedFd>> {
    let (tid_tx, tid_rx) = mpsc::channel::<i32>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let helper = s.spawn(move || -> Result<Vec<OwnedFd>> {
            unshare_net()?;
            set_up("lo")?;
            // SAFETY: gettid has no preconditions.
            let _ = tid_tx.send(unsafe { libc::gettid() });
            // The coordinator has created the pair and configured its end.
            go_rx.recv().context("the storm's receiving side gave up")?;
            // `ip` runs in the namespace of the thread that spawns it: S here.
            run_ip(&["addr", "add", VETH_SRC, "dev", "nds0"])?;
            run_ip(&["link", "set", "nds0", "up"])?;
            let socks = (0..n).map(|_| udp_socket()).collect::<Result<Vec<_>>>()?;
            warm_up(&socks[0], VETH_DST_IP)?;
            Ok(socks)
        });
        let configure = || -> Result<()> {
            let tid = tid_rx
                .recv_timeout(Duration::from_secs(20))
                .context("the storm's sending namespace was not made")?;
            // Here (R): nds1; its peer nds0 goes to the helper's namespace.
            run_ip(&[
                "link",
                "add",
                "nds1",
                "type",
                "veth",
                "peer",
                "name",
                "nds0",
                "netns",
                &tid.to_string(),
            ])?;
            run_ip(&["addr", "add", VETH_DST, "dev", "nds1"])?;
            run_ip(&["link", "set", "nds1", "up"])?;
            go_tx.send(()).context("the storm's sending side gave up")
        };
        let configured = configure();
        // On failure, dropping go_tx ends the helper's wait.
        drop(go_tx);
        let socks = helper
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        configured?;
        socks
    })
}

/// An unconnected, blocking UDP socket (blocking sends: the kernel paces us).
fn udp_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!("socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends batches until `deadline` or `cap` datagrams; returns how many the kernel took.
fn send_until(sock: &OwnedFd, dst: [u8; 4], deadline: Instant, cap: u64) -> Result<u64> {
    let mut addr = crate::traffic::sockaddr_in(std::net::Ipv4Addr::from(dst), PORT);
    let mut payload = [0u8; PAYLOAD];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: PAYLOAD,
    };
    // SAFETY: mmsghdr is plain data; the pointers set below outlive every call.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for m in &mut msgs {
        m.msg_hdr.msg_name = (&raw mut addr).cast();
        m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        m.msg_hdr.msg_iov = &raw mut iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    let mut sent = 0u64;
    let mut errors = 0u32;
    while sent < cap && Instant::now() < deadline {
        let n = (cap - sent).min(BATCH as u64) as u32;
        // SAFETY: msgs holds n valid headers pointing at live buffers.
        let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), n, 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR | libc::ENOBUFS | libc::EAGAIN | libc::ECONNREFUSED) => {
                    errors += 1;
                    if errors > 1_000_000 {
                        bail!("sendmmsg keeps failing: {e}");
                    }
                }
                _ => bail!("sendmmsg: {e}"),
            }
        } else {
            sent += r as u64;
        }
    }
    Ok(sent)
}

/// Sets IFF_UP on `dev` in the calling thread's namespace.
fn set_up(dev: &str) -> Result<()> {
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    const SIOCGIFFLAGS: libc::c_ulong = 0x8913;
    const SIOCSIFFLAGS: libc::c_ulong = 0x8914;
    let sock = udp_socket()?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..dev.len()].copy_from_slice(dev.as_bytes());
    // SAFETY: req is a valid struct ifreq (name, then the flags union member).
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGIFFLAGS, &mut req) } != 0 {
        bail!("SIOCGIFFLAGS {dev}: {}", std::io::Error::last_os_error());
    }
    req.flags |= libc::IFF_UP as libc::c_short;
    // SAFETY: as above.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCSIFFLAGS, &req) } != 0 {
        bail!("SIOCSIFFLAGS {dev}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// `Udp: NoPorts` of the calling thread's namespace.
pub fn udp_noports() -> Result<u64> {
    // /proc/net follows the thread group leader's namespace; thread-self follows ours.
    let mut text = String::new();
    File::open("/proc/thread-self/net/snmp")
        .and_then(|mut f| f.read_to_string(&mut text))
        .context("reading /proc/thread-self/net/snmp")?;
    parse_snmp(&text, "Udp", "NoPorts").context("no Udp NoPorts in /proc/net/snmp")
}

/// A field of /proc/net/snmp: a header line `Proto: names...` followed by
/// `Proto: values...`.
pub fn parse_snmp(text: &str, proto: &str, field: &str) -> Option<u64> {
    let prefix = format!("{proto}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let names = names.split_whitespace().skip(1);
        let values = values.split_whitespace().skip(1);
        if let Some((_, v)) = names.zip(values).find(|(n, _)| *n == field) {
            return v.parse().ok();
        }
    }
    None
}

/// Sends a datagram on `sock` until the neighbour of `dst` is resolved (so no
/// storm datagram waits for ARP). Runs in the sending namespace.
fn warm_up(sock: &OwnedFd, dst: [u8; 4]) -> Result<()> {
    let addr = crate::traffic::sockaddr_in(std::net::Ipv4Addr::from(dst), PORT);
    for _ in 0..40 {
        // SAFETY: addr is a valid sockaddr_in; one byte from a live buffer.
        unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                b"x".as_ptr().cast(),
                1,
                0,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        std::thread::sleep(Duration::from_millis(25));
        let neigh = Command::new("ip")
            .args(["-4", "neigh", "show", "dev", "nds0"])
            .output()
            .context("running ip neigh")?;
        if String::from_utf8_lossy(&neigh.stdout).contains("lladdr") {
            return Ok(());
        }
    }
    bail!("the storm's veth peer 198.18.0.2 did not resolve in 1 s")
}

fn run_ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_fields() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors\nUdp: 5 1234 0\nUdpLite: InDatagrams NoPorts\nUdpLite: 0 7\n";
        assert_eq!(parse_snmp(text, "Udp", "NoPorts"), Some(1234));
        assert_eq!(parse_snmp(text, "UdpLite", "NoPorts"), Some(7));
        assert_eq!(parse_snmp(text, "Udp", "Bogus"), None);
    }

    #[test]
    fn report_round_trips_through_json() {
        let r = Report {
            sent: 10,
            seconds: 2.0,
            rate: 5.0,
            kernel_drops: 9,
            setup_drops: 1,
            threads: 2,
            via: Via::Veth,
        };
        assert_eq!(Report::from_json(&r.to_json()).unwrap(), r);
    }

    /// `on_start` runs inside the namespace whose NoPorts the report counts, for
    /// both routes (the storm tests start netdrop there). Needs root; 0.3 s each.
    #[test]
    fn on_start_runs_where_the_drops_are_counted() {
        if !crate::require_root("on_start_runs_where_the_drops_are_counted") {
            return;
        }
        for via in [Via::Veth, Via::Loopback] {
            let mut opts = Options::new(0.3);
            opts.via = via;
            let mut seen = None;
            let report = run(&opts, || {
                let ns = File::open("/proc/thread-self/ns/net").unwrap();
                seen = Some((ns, udp_noports().unwrap()));
            })
            .unwrap();
            let (ns, before) = seen.expect("on_start was called");
            let after = std::thread::spawn(move || {
                // SAFETY: ns is an open nsfs descriptor; setns changes only this thread.
                assert_eq!(
                    unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
                    0
                );
                udp_noports().unwrap()
            })
            .join()
            .unwrap();
            assert!(report.kernel_drops > 1000, "{via:?}: {report:?}");
            assert_eq!(report.kernel_drops, report.sent, "{via:?}");
            assert_eq!(after - before, report.kernel_drops, "{via:?}");
        }
    }
}
