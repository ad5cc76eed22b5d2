//! accept_queue_full: data segments that hit a full accept queue.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::netns::{Netns, in_netns, veth_pair};
use crate::traffic::{set_linger_zero, setsockopt_int};

/// ns S (server, 198.18.3.1/24) -- ns C (clients, 198.18.3.2/24).
///
/// A SYN refused by a full accept queue is consumed without a drop reason
/// (KERNEL.md), while ListenOverflows still counts it. To compare the
/// counter with TCP_LISTEN_OVERFLOW exactly, no SYN may ever meet a full
/// queue: the listener uses TCP_DEFER_ACCEPT and backlog 64, so the 16
/// clients complete their handshakes while the server keeps them as request
/// sockets (their bare ACKs are dropped, TCPDeferAcceptDrop). Then the
/// listener calls listen() again with backlog 0 (an already-listening socket
/// only updates its backlog), and each client writes one byte. The first data
/// segment creates a child and fills the queue; every later data segment
/// (and each client retransmission of it) reaches `tcp_v4_syn_recv_sock` with
/// the queue full: ListenOverflows += 1 and `tcp_check_req` frees it with
/// TCP_LISTEN_OVERFLOW. The clients then abort with RST (SO_LINGER 0), which
/// removes the request sockets without touching either count.
pub struct AcceptOverflow {
    pub s: Netns,
    pub c: Netns,
}

/// What [`AcceptOverflow::generate`] did.
#[derive(Debug, Clone, Copy)]
pub struct AcceptRun {
    pub clients: usize,
    /// Connections accept() returned after the burst (expected 1).
    pub accepted: usize,
}

impl AcceptOverflow {
    pub const DEV_S: &str = "aqs0";
    pub const DEV_C: &str = "aqc0";
    pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 3, 1);
    pub const PORT: u16 = 7070;
    pub const CLIENTS: usize = 16;
    pub const DEFER_ACCEPT_SECS: i32 = 30;
    /// How long the clients keep retransmitting into the full queue.
    pub const RETRANSMIT_WINDOW: Duration = Duration::from_millis(1200);

    pub fn setup() -> Result<Self> {
        let s = Netns::new()?;
        let c = Netns::new()?;
        veth_pair(
            &s,
            Self::DEV_S,
            "198.18.3.1/24",
            &c,
            Self::DEV_C,
            "198.18.3.2/24",
        )?;
        Ok(AcceptOverflow { s, c })
    }

    fn listener() -> Result<TcpListener> {
        let l = TcpListener::bind(SocketAddrV4::new(Self::SERVER, Self::PORT))?;
        setsockopt_int(
            &l,
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            Self::DEFER_ACCEPT_SECS,
        )?;
        relisten(&l, 64)?;
        Ok(l)
    }

    pub fn generate(&self) -> Result<AcceptRun> {
        let listener = in_netns(&self.s, Self::listener)??;
        let server = SocketAddr::V4(SocketAddrV4::new(Self::SERVER, Self::PORT));
        let clients = in_netns(&self.c, || {
            (0..Self::CLIENTS)
                .map(|_| TcpStream::connect_timeout(&server, Duration::from_secs(2)))
                .collect::<std::io::Result<Vec<_>>>()
        })?
        .context("connecting the clients")?;
        // Let the bare final ACKs arrive (dropped by TCP_DEFER_ACCEPT).
        std::thread::sleep(Duration::from_millis(100));
        relisten(&listener, 0)?;
        for c in &clients {
            (&*c).write_all(b"x").context("client write")?;
        }
        std::thread::sleep(Self::RETRANSMIT_WINDOW);
        for c in &clients {
            set_linger_zero(c)?;
        }
        drop(clients);
        listener.set_nonblocking(true)?;
        let accepted = std::iter::from_fn(|| listener.accept().ok())
            .take(Self::CLIENTS)
            .count();
        drop(listener);
        Ok(AcceptRun {
            clients: Self::CLIENTS,
            accepted,
        })
    }
}

impl AcceptOverflow {
    /// The seed incident's way: a listener with a small backlog that does not
    /// accept, and a burst of `clients` connects at once. SYNs that meet the full
    /// queue are refused by tcp_conn_request and carry NO kfree_skb reason; only
    /// TcpExt:ListenOverflows counts them. The clients are closed before this
    /// returns (nothing retransmits any more); the listener is returned so it
    /// stays full until the caller drops it.
    pub fn syn_burst(&self, backlog: i32, clients: usize) -> Result<TcpListener> {
        // SYN retransmits at 1 s: let one round of them hit the full queue too.
        self.burst(backlog, clients, Duration::from_millis(1300))
    }

    /// A listener with `backlog` that never accepts, `clients` (at most 64)
    /// non-blocking connects at once, `wait`, then the clients closed.
    fn burst(&self, backlog: i32, clients: usize, wait: Duration) -> Result<TcpListener> {
        let listener = in_netns(&self.s, move || -> Result<TcpListener> {
            let l = TcpListener::bind(SocketAddrV4::new(Self::SERVER, Self::PORT))?;
            relisten(&l, backlog)?;
            Ok(l)
        })??;
        let server = SocketAddr::V4(SocketAddrV4::new(Self::SERVER, Self::PORT));
        let socks = in_netns(&self.c, move || -> Result<Vec<socket2_lite::Socket>> {
            (0..clients.min(64))
                .map(|_| socket2_lite::Socket::connect_nonblocking(&server))
                .collect()
        })??;
        std::thread::sleep(wait);
        drop(socks);
        Ok(listener)
    }
}

impl AcceptOverflow {
    /// Syncookie ACKs at a full accept queue, with the kernel's default
    /// `tcp_syncookies=1`. The clients' link is slowed with tbf (100 kbit/s,
    /// one small packet of burst), so their ACKs queue behind the rest of the
    /// burst's SYNs: the server answers those SYNs while the accept queue still
    /// has room, and once its request queue holds `backlog` connections it
    /// answers with cookies (SyncookiesSent). When the cookie ACKs arrive the
    /// accept queue is full: ListenOverflows += 1 each, and the ACK is freed
    /// with reason NO_SOCKET, rx_sk = the listener. Returns the listener
    /// (never accepting) after the clients are closed.
    pub fn cookie_burst(&self, backlog: i32, clients: usize) -> Result<TcpListener> {
        crate::cmd::run(std::process::Command::new("tc").args([
            "-n",
            self.c.name(),
            "qdisc",
            "replace",
            "dev",
            Self::DEV_C,
            "root",
            "tbf",
            "rate",
            "100kbit",
            "burst",
            "100",
            "mtu",
            "100",
            "latency",
            "3s",
        ]))
        .context("tbf on the clients' link")?;
        // 64 small packets at 100 kbit/s drain in well under a second; one
        // round of retransmissions (1 s) meets the full queue too.
        self.burst(backlog, clients, Duration::from_millis(2500))
    }
}

/// A non-blocking TCP connect without extra crates.
mod socket2_lite {
    use std::{
        net::SocketAddr,
        os::fd::{FromRawFd, OwnedFd},
    };

    use anyhow::{Result, bail};

    pub struct Socket(#[allow(dead_code)] OwnedFd);

    impl Socket {
        pub fn connect_nonblocking(addr: &SocketAddr) -> Result<Socket> {
            let SocketAddr::V4(v4) = addr else {
                bail!("IPv4 only")
            };
            crate::check_test_addr(*v4.ip());
            // SAFETY: plain socket/connect syscalls on a descriptor we own.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
                if fd < 0 {
                    bail!("socket: {}", std::io::Error::last_os_error());
                }
                let sock = Socket(OwnedFd::from_raw_fd(fd));
                let sa = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                let rc = libc::connect(
                    fd,
                    (&sa as *const libc::sockaddr_in).cast(),
                    size_of::<libc::sockaddr_in>() as u32,
                );
                let err = std::io::Error::last_os_error();
                if rc != 0 && err.raw_os_error() != Some(libc::EINPROGRESS) {
                    bail!("connect: {err}");
                }
                Ok(sock)
            }
        }
    }
}

/// listen() on a socket that already listens: only the backlog changes.
pub fn relisten(l: &TcpListener, backlog: i32) -> Result<()> {
    // SAFETY: plain listen(2) on a descriptor we own.
    if unsafe { libc::listen(l.as_raw_fd(), backlog) } != 0 {
        bail!("listen({backlog}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}
