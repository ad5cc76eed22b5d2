//! The SYN hook's cost (`nd-synbench`): SYNs a listener with a full accept
//! queue processes per second, with no tracer, an empty fentry program on
//! `tcp_conn_request`, `netdrop watch` (fentry) and `netdrop watch --no-fentry`
//! (kprobe). Meant for a QEMU guest (`cargo xtask vm-test --syn-bench`): the
//! rates are the guest's, only their ratios within one run mean anything.
//!
//! Setup: namespaces S (listener, 198.18.6.1/24) and C (sender, 198.18.6.2/24)
//! on a veth pair. The listener has backlog 1 and never accepts; two real
//! clients fill its accept queue. From then on every SYN reaches
//! `tcp_conn_request` (the hook), finds the accept queue full and is dropped
//! there: `TcpExt: ListenOverflows` += 1 (and ListenDrops), no SYN-ACK, no RST
//! (a real flood's worst case: nothing completes, every SYN pays the hook).
//!
//! Load: threads of C send SYNs crafted on raw sockets (IP_HDRINCL: source
//! port and sequence number vary per packet), `sendmmsg` batches of [`BATCH`],
//! bounded by a deadline and a packet cap. The rate is the growth of S's
//! ListenOverflows over the flood's seconds: SYNs the listener's namespace
//! actually processed (a SYN the sender could not hand to S, e.g. over the
//! backlog of the receiving CPU, is not counted).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::accept::relisten;
use crate::counters::delta;
use crate::netns::{Netns, in_netns, veth_pair};
use crate::traffic::{checksum, sockaddr_in};

/// SYNs per `sendmmsg` call.
pub const BATCH: usize = 64;
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 6, 1);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 6, 2);
pub const PORT: u16 = 7171;
/// The listener's backlog: two connections fill its accept queue.
pub const BACKLOG: i32 = 1;
/// Hard cap on SYNs per second of flood (a safety net, far above any rate).
pub const CAP_PER_SECOND: u64 = 20_000_000;

/// What the listener's namespace saw during one flood.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flood {
    /// SYNs the senders handed to the kernel.
    pub sent: u64,
    pub seconds: f64,
    /// TcpExt: ListenOverflows growth (SYNs dropped at the full accept queue).
    pub overflows: u64,
    /// Tcp: InSegs growth.
    pub in_segs: u64,
}

impl Flood {
    /// SYNs processed per second.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.overflows as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// The two namespaces, the full listener and the clients that fill it.
pub struct Target {
    pub s: Netns,
    pub c: Netns,
    _listener: TcpListener,
    _clients: Vec<TcpStream>,
}

impl Target {
    pub fn setup() -> Result<Target> {
        let s = Netns::new()?;
        let c = Netns::new()?;
        veth_pair(&s, "syns0", "198.18.6.1/24", &c, "sync0", "198.18.6.2/24")?;
        let listener = in_netns(&s, || -> Result<TcpListener> {
            let l = TcpListener::bind(SocketAddrV4::new(SERVER, PORT))?;
            relisten(&l, BACKLOG)?;
            Ok(l)
        })??;
        let server = SocketAddr::V4(SocketAddrV4::new(SERVER, PORT));
        // backlog 1 holds two children (full when more than `backlog`).
        let clients = in_netns(&c, || {
            (0..2)
                .map(|_| TcpStream::connect_timeout(&server, Duration::from_secs(5)))
                .collect::<std::io::Result<Vec<_>>>()
        })?
        .context("filling the accept queue")?;
        std::thread::sleep(Duration::from_millis(200));
        Ok(Target {
            s,
            c,
            _listener: listener,
            _clients: clients,
        })
    }

    /// Floods the listener for `seconds` from `threads` senders (at most
    /// `max_packets` SYNs in all).
    pub fn flood(&self, seconds: f64, threads: usize, max_packets: u64) -> Result<Flood> {
        let threads = threads.max(1);
        let socks = in_netns(&self.c, || {
            (0..threads)
                .map(|_| raw_socket())
                .collect::<Result<Vec<_>>>()
        })??;
        let (n0, s0) = (self.s.netstat()?, self.s.snmp()?);
        let barrier = Arc::new(Barrier::new(threads));
        let per_thread = max_packets / threads as u64;
        let start = Instant::now();
        let handles: Vec<_> = socks
            .into_iter()
            .enumerate()
            .map(|(i, sock)| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    send_syns(&sock, i as u16, seconds, per_thread)
                })
            })
            .collect();
        let mut sent = 0;
        for h in handles {
            sent += h
                .join()
                .map_err(|_| anyhow::anyhow!("a sender panicked"))??;
        }
        let elapsed = start.elapsed().as_secs_f64();
        // Let the last SYNs in the receive backlogs be processed.
        std::thread::sleep(Duration::from_millis(100));
        let (n1, s1) = (self.s.netstat()?, self.s.snmp()?);
        Ok(Flood {
            sent,
            seconds: elapsed,
            overflows: delta(&n0, &n1, "TcpExt:ListenOverflows"),
            in_segs: delta(&s0, &s1, "Tcp:InSegs"),
        })
    }
}

fn raw_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        bail!(
            "socket(AF_INET, SOCK_RAW, IPPROTO_RAW): {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The TCP pseudo-header of a segment of `len` bytes.
fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, len: u16) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[..4].copy_from_slice(&src.octets());
    h[4..8].copy_from_slice(&dst.octets());
    h[9] = libc::IPPROTO_TCP as u8;
    h[10..].copy_from_slice(&len.to_be_bytes());
    h
}

/// An IPv4 + TCP SYN (no options) from `src:sport` to `dst:dport`, both checksums set.
pub fn syn_packet(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, seq: u32) -> [u8; 40] {
    let mut p = [0u8; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = libc::IPPROTO_TCP as u8;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let ip_sum = checksum(&[&p[..20]]);
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let t = &mut p[20..];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02; // SYN
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let tcp_sum = checksum(&[&pseudo_header(src, dst, 20), &p[20..]]);
    p[36..38].copy_from_slice(&tcp_sum.to_be_bytes());
    p
}

/// One sender: batches of SYNs until the deadline or `max` sent; returns how many.
fn send_syns(sock: &OwnedFd, thread: u16, seconds: f64, max: u64) -> Result<u64> {
    crate::check_test_addr(SERVER);
    let dst = sockaddr_in(SERVER, 0);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut pkts = vec![[0u8; 40]; BATCH];
    let mut sent = 0u64;
    let mut n: u32 = u32::from(thread) << 24;
    while sent < max && Instant::now() < deadline {
        for p in pkts.iter_mut() {
            // Source ports 1024..=65535, different for every packet in a row.
            let sport = 1024 + (n % 64512) as u16;
            *p = syn_packet(CLIENT, sport, SERVER, PORT, n.wrapping_mul(2_654_435_761));
            n = n.wrapping_add(1);
        }
        let mut iov: Vec<libc::iovec> = pkts
            .iter_mut()
            .map(|p| libc::iovec {
                iov_base: p.as_mut_ptr().cast(),
                iov_len: p.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|v| {
                // SAFETY: an all-zero msghdr is valid; the fields set below point
                // at buffers that outlive the call.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = (&raw const dst).cast_mut().cast();
                h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                h.msg_hdr.msg_iov = v;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: msgs holds BATCH valid headers pointing at live buffers.
        let r =
            unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as u32, 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                _ => bail!("sendmmsg: {e}"),
            }
        }
        sent += r as u64;
    }
    Ok(sent)
}

/// The rows of one run, in the order they alternate within a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    None,
    EmptyFentry,
    NetdropFentry,
    NetdropKprobe,
}

impl Config {
    pub const ALL: [Config; 4] = [
        Config::None,
        Config::EmptyFentry,
        Config::NetdropFentry,
        Config::NetdropKprobe,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Config::None => "no tracer",
            Config::EmptyFentry => "empty fentry program",
            Config::NetdropFentry => "netdrop watch (fentry)",
            Config::NetdropKprobe => "netdrop watch --no-fentry (kprobe)",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Config::None => "none",
            Config::EmptyFentry => "empty_fentry",
            Config::NetdropFentry => "netdrop_fentry",
            Config::NetdropKprobe => "netdrop_kprobe",
        }
    }

    /// The hook on tcp_conn_request the row must show, if any.
    pub fn hook(self) -> Option<&'static str> {
        match self {
            Config::None => None,
            Config::EmptyFentry | Config::NetdropFentry => Some("fentry:tcp_conn_request"),
            Config::NetdropKprobe => Some("kprobe:tcp_conn_request"),
        }
    }
}

/// The hooks of netdrop's `netdrop: watching (a, b); ...` line.
pub fn watching_hooks(stderr: &str) -> Option<Vec<String>> {
    stderr.lines().find_map(|l| {
        let rest = &l[l.find("netdrop: watching (")? + "netdrop: watching (".len()..];
        let list = &rest[..rest.find(')')?];
        Some(list.split(", ").map(str::to_string).collect())
    })
}

/// The median of `v` (mean of the middle two for an even count); 0 when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// One row's floods, over the rounds (flood `i` in round `i`).
#[derive(Debug, Clone)]
pub struct Row {
    pub config: Config,
    pub floods: Vec<Flood>,
}

impl Row {
    pub fn median_rate(&self) -> f64 {
        median(&self.floods.iter().map(Flood::rate).collect::<Vec<_>>())
    }

    /// This row's rate over the no-tracer row's in the same round, per round:
    /// a slow drift of the machine's speed (a TCG guest on a shared host) moves
    /// both alike.
    pub fn round_ratios(&self, base: &Row) -> Vec<f64> {
        self.floods
            .iter()
            .zip(&base.floods)
            .filter(|(_, b)| b.rate() > 0.0)
            .map(|(f, b)| f.rate() / b.rate())
            .collect()
    }
}

/// The order of the rows in round `round` (from 0): rotated by one each round,
/// so that no row always follows the same one.
pub fn round_order(round: usize, rows: usize) -> Vec<usize> {
    (0..rows).map(|i| (i + round) % rows.max(1)).collect()
}

fn range(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.is_empty() { (0.0, 0.0) } else { (lo, hi) }
}

/// The markdown table: rate (median and range over the rounds) and the ratio
/// to no tracer (median and range of the per-round ratios).
pub fn table(rows: &[Row]) -> String {
    let base = rows.iter().find(|r| r.config == Config::None);
    let mut s = String::from(
        "| row | hook on tcp_conn_request | SYNs/s processed (median) | range over rounds | ratio to no tracer (median of rounds) | ratio range |\n|---|---|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let rates: Vec<f64> = r.floods.iter().map(Flood::rate).collect();
        let (lo, hi) = range(&rates);
        let ratios = base.map(|b| r.round_ratios(b)).unwrap_or_default();
        let (rlo, rhi) = range(&ratios);
        let (ratio, rrange) = if ratios.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            (
                format!("{:.3}", median(&ratios)),
                format!("{rlo:.2}–{rhi:.2}"),
            )
        };
        s.push_str(&format!(
            "| {} | {} | {:.0} | {lo:.0}–{hi:.0} | {ratio} | {rrange} |\n",
            r.config.label(),
            r.config.hook().unwrap_or("-"),
            r.median_rate(),
        ));
    }
    s
}

/// The JSON line: every row's floods, median rate and median per-round ratio.
pub fn json_line(kernel: &str, seconds: f64, threads: usize, rows: &[Row]) -> Value {
    let base = rows.iter().find(|r| r.config == Config::None);
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let ratios = base.map(|b| r.round_ratios(b)).unwrap_or_default();
            json!({
                "row": r.config.key(),
                "hook": r.config.hook(),
                "rate": r.median_rate(),
                "ratio": median(&ratios),
                "round_ratios": ratios,
                "floods": r.floods.iter().map(|f| json!({
                    "sent": f.sent, "seconds": f.seconds,
                    "listen_overflows": f.overflows, "in_segs": f.in_segs,
                    "rate": f.rate(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"kernel": kernel, "seconds": seconds, "threads": threads, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_checksums_verify() {
        let p = syn_packet(CLIENT, 40000, SERVER, PORT, 12345);
        assert_eq!(checksum(&[&p[..20]]), 0, "IP header checksum");
        let pseudo = [&CLIENT.octets()[..], &SERVER.octets(), &[0, 6, 0, 20]].concat();
        assert_eq!(checksum(&[&pseudo, &p[20..]]), 0, "TCP checksum");
        assert_eq!(p[33], 0x02, "SYN only");
        assert_eq!(u16::from_be_bytes([p[22], p[23]]), PORT);
    }

    #[test]
    fn rounds_rotate() {
        assert_eq!(round_order(0, 4), [0, 1, 2, 3]);
        assert_eq!(round_order(1, 4), [1, 2, 3, 0]);
        assert_eq!(round_order(5, 4), [1, 2, 3, 0]);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn hooks_from_the_watching_line() {
        let e =
            "x\nnetdrop: watching (raw_tracepoint:kfree_skb, kprobe:tcp_conn_request); Ctrl-C\n";
        assert_eq!(
            watching_hooks(e).unwrap(),
            ["raw_tracepoint:kfree_skb", "kprobe:tcp_conn_request"]
        );
        assert!(watching_hooks("nothing").is_none());
    }

    fn flood(overflows: u64) -> Flood {
        Flood {
            sent: overflows + 10,
            seconds: 2.0,
            overflows,
            in_segs: overflows,
        }
    }

    #[test]
    fn table_shows_medians_and_ratios() {
        let rows = vec![
            Row {
                config: Config::None,
                floods: vec![flood(200), flood(220), flood(180)],
            },
            Row {
                config: Config::NetdropKprobe,
                floods: vec![flood(150), flood(160), flood(140)],
            },
        ];
        let t = table(&rows);
        assert!(
            t.contains("| no tracer | - | 100 | 90–110 | 1.000 | 1.00–1.00 |"),
            "{t}"
        );
        // Per round: 150/200, 160/220, 140/180 = 0.75, 0.727, 0.778.
        assert!(
            t.contains("| netdrop watch --no-fentry (kprobe) | kprobe:tcp_conn_request | 75 | 70–80 | 0.750 | 0.73–0.78 |"),
            "{t}"
        );
        let j = json_line("6.12.1", 2.0, 2, &rows);
        assert_eq!(j["rows"][1]["ratio"], 0.75);
        assert_eq!(j["rows"][1]["round_ratios"].as_array().unwrap().len(), 3);
        assert_eq!(j["rows"][0]["floods"][2]["listen_overflows"], 180);
    }
}
