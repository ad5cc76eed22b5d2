//! Control: ordinary traffic that must not be attributed to any of the causes.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::cmd;
use crate::netns::{Netns, in_netns, veth_pair};
use crate::traffic::udp_send;

/// ns X (198.18.5.1/24) -- ns Y (198.18.5.2/24): a TCP connection with an
/// echo, UDP datagrams to a bound socket, and a few pings.
pub struct Control {
    pub x: Netns,
    pub y: Netns,
}

/// What [`Control::generate`] observed (all of it must have arrived).
#[derive(Debug, Clone, Copy)]
pub struct ControlRun {
    pub echoed: usize,
    pub udp_received: usize,
    pub pings_ok: bool,
}

const TIMEOUT: Duration = Duration::from_secs(2);

impl Control {
    pub const DEV_X: &str = "ctx0";
    pub const DEV_Y: &str = "cty0";
    pub const Y: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 2);
    pub const TCP_PORT: u16 = 7000;
    pub const UDP_PORT: u16 = 7001;
    pub const DATAGRAMS: usize = 5;
    pub const PINGS: usize = 3;

    pub fn setup() -> Result<Self> {
        let x = Netns::new()?;
        let y = Netns::new()?;
        veth_pair(
            &x,
            Self::DEV_X,
            "198.18.5.1/24",
            &y,
            Self::DEV_Y,
            "198.18.5.2/24",
        )?;
        Ok(Control { x, y })
    }

    pub fn generate(&self) -> Result<ControlRun> {
        let tcp_addr = SocketAddrV4::new(Self::Y, Self::TCP_PORT);
        let udp_addr = SocketAddrV4::new(Self::Y, Self::UDP_PORT);
        let (listener, udp) = in_netns(&self.y, || -> std::io::Result<_> {
            Ok((TcpListener::bind(tcp_addr)?, UdpSocket::bind(udp_addr)?))
        })??;

        // TCP: connect, send, echo back, read, close both ends normally.
        let mut client = in_netns(&self.x, || {
            TcpStream::connect_timeout(&SocketAddr::V4(tcp_addr), TIMEOUT)
        })??;
        client.set_read_timeout(Some(TIMEOUT))?;
        let (mut server, _) = listener.accept().context("accept")?;
        server.set_read_timeout(Some(TIMEOUT))?;
        let msg = b"hello netdrop";
        client.write_all(msg)?;
        let mut buf = [0u8; 64];
        let n = server.read(&mut buf).context("server read")?;
        server.write_all(&buf[..n])?;
        let mut echo = vec![0u8; msg.len()];
        client.read_exact(&mut echo).context("client read")?;
        ensure!(echo == msg, "echo mismatch: {echo:?}");
        drop(client);
        let mut rest = [0u8; 8];
        let eof = server.read(&mut rest).context("server read EOF")?;
        ensure!(eof == 0, "expected EOF, got {eof} bytes");
        drop(server);
        drop(listener);

        // UDP to a bound socket.
        udp.set_read_timeout(Some(TIMEOUT))?;
        let sent = udp_send(&self.x, None, udp_addr, Self::DATAGRAMS)?;
        ensure!(sent == Self::DATAGRAMS, "sent {sent} datagrams");
        let mut udp_received = 0;
        while udp_received < Self::DATAGRAMS && udp.recv_from(&mut buf).is_ok() {
            udp_received += 1;
        }

        // ICMP echo.
        let count = Self::PINGS.to_string();
        let y = Self::Y.to_string();
        let ping = cmd::output(
            &mut self
                .x
                .exec_cmd(&["ping", "-n", "-q", "-c", &count, "-i", "0.2", "-W", "1", &y]),
            Duration::from_secs(10),
        )?;
        Ok(ControlRun {
            echoed: echo.len(),
            udp_received,
            pings_ok: ping.status.success(),
        })
    }
}
