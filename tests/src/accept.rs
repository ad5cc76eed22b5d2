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

/// listen() on a socket that already listens: only the backlog changes.
pub fn relisten(l: &TcpListener, backlog: i32) -> Result<()> {
    // SAFETY: plain listen(2) on a descriptor we own.
    if unsafe { libc::listen(l.as_raw_fd(), backlog) } != 0 {
        bail!("listen({backlog}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}
