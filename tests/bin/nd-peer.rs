//! nd-peer: a small client the owner tests run as a process of its own inside a
//! test namespace (`ip netns exec NAME nd-peer MODE ...`), so that a drop's
//! owner can be told apart from whichever task ran when the kernel freed it.
//! It prints `pid <pid>` first, then, per mode:
//!
//! - `tcp-burst DST PORT N HOLD_MS`: N non-blocking TCP connects at once, then
//!   `port <local port>` per socket and `done`; keeps them open HOLD_MS, exits.
//! - `tcp-wait DST PORT N HOLD_MS`: `ready`, then one burst as tcp-burst (ports,
//!   `done`) per line on stdin, at most [`MAX_BURSTS`]; exits at stdin EOF or
//!   when no line came for HOLD_MS. All its sockets stay open until then.
//! - `udp-wait SRC DST PORT N`: binds a UDP socket on SRC:0, `ready <local port>`,
//!   waits for a line on stdin (EOF: exits), sends N datagrams, `sent <ok>`,
//!   exits at stdin EOF.
//!
//! Addresses must be in 198.18.0.0/15; counts and times are bounded, and the
//! process ends itself after [`LIFETIME_S`] whatever happens (alarm).

use std::io::{self, BufRead, Read};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::process::exit;
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

const LIFETIME_S: u32 = 60;
const MAX_CONNECTS: usize = 64;
const MAX_DATAGRAMS: usize = 1000;
const MAX_HOLD_MS: u64 = 30_000;
const MAX_BURSTS: usize = 8;

type Res<T> = Result<T, String>;

fn main() {
    // SAFETY: alarm(2) has no preconditions; SIGALRM's default action ends us.
    unsafe { libc::alarm(LIFETIME_S) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    println!("pid {}", std::process::id());
    let r = match argv.as_slice() {
        ["tcp-burst", dst, port, n, hold] => tcp(dst, port, n, hold, false),
        ["tcp-wait", dst, port, n, hold] => tcp(dst, port, n, hold, true),
        ["udp-wait", src, dst, port, n] => udp_wait(src, dst, port, n),
        _ => Err(format!(
            "usage: nd-peer tcp-burst|tcp-wait DST PORT N HOLD_MS | udp-wait SRC DST PORT N \
             (got {argv:?})"
        )),
    };
    if let Err(e) = r {
        eprintln!("nd-peer: {e}");
        exit(1);
    }
}

fn addr(s: &str) -> Res<Ipv4Addr> {
    let a: Ipv4Addr = s.parse().map_err(|e| format!("{s}: {e}"))?;
    let o = a.octets();
    if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Ok(a)
    } else {
        Err(format!("{a} is outside 198.18.0.0/15; refusing"))
    }
}

fn num<T: FromStr + PartialOrd + std::fmt::Display>(s: &str, what: &str, max: T) -> Res<T> {
    let v: T = s.parse().map_err(|_| format!("{what}: bad number {s:?}"))?;
    if v > max {
        return Err(format!("{what}: {v} is above the limit {max}"));
    }
    Ok(v)
}

/// Waits for one line on stdin; false at EOF.
fn wait_line() -> Res<bool> {
    let mut line = String::new();
    let n = io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("stdin: {e}"))?;
    Ok(n > 0)
}

/// Reads stdin until EOF (or an error).
fn wait_eof() {
    let mut sink = [0u8; 256];
    let mut stdin = io::stdin().lock();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
}

fn tcp(dst: &str, port: &str, n: &str, hold: &str, wait: bool) -> Res<()> {
    let dst = SocketAddrV4::new(addr(dst)?, num(port, "PORT", u16::MAX)?);
    let n: usize = num(n, "N", MAX_CONNECTS)?;
    let hold = Duration::from_millis(num(hold, "HOLD_MS", MAX_HOLD_MS)?);
    let mut socks = Vec::new();
    if !wait {
        burst(dst, n, &mut socks)?;
        std::thread::sleep(hold);
        return Ok(());
    }
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            if line.is_err() || tx.send(()).is_err() {
                break;
            }
        }
    });
    println!("ready");
    for _ in 0..MAX_BURSTS {
        // EOF (disconnected) or HOLD_MS without a line: done.
        if lines.recv_timeout(hold).is_err() {
            break;
        }
        burst(dst, n, &mut socks)?;
    }
    Ok(())
}

/// N connects first (one tight burst), the reporting after; the sockets are kept.
fn burst(dst: SocketAddrV4, n: usize, socks: &mut Vec<OwnedFd>) -> Res<()> {
    let new = (0..n)
        .map(|_| connect_nonblocking(dst))
        .collect::<Res<Vec<_>>>()?;
    for (sock, port) in new {
        println!("port {port}");
        socks.push(sock);
    }
    println!("done");
    Ok(())
}

fn udp_wait(src: &str, dst: &str, port: &str, n: &str) -> Res<()> {
    let src = addr(src)?;
    let dst = SocketAddrV4::new(addr(dst)?, num(port, "PORT", u16::MAX)?);
    let n: usize = num(n, "N", MAX_DATAGRAMS)?;
    let sock =
        UdpSocket::bind(SocketAddrV4::new(src, 0)).map_err(|e| format!("bind {src}: {e}"))?;
    let local = sock.local_addr().map_err(|e| format!("local_addr: {e}"))?;
    println!("ready {}", local.port());
    if !wait_line()? {
        return Ok(());
    }
    let ok = (0..n).filter(|_| sock.send_to(b"x", dst).is_ok()).count();
    println!("sent {ok}");
    wait_eof();
    Ok(())
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// A TCP connect that does not wait for the handshake: returns the socket and
/// its local port (bound by connect).
fn connect_nonblocking(dst: SocketAddrV4) -> Res<(OwnedFd, u16)> {
    let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: plain socket(2); the descriptor is owned right below.
    let fd: RawFd = unsafe { libc::socket(libc::AF_INET, flags, 0) };
    if fd < 0 {
        return Err(format!("socket: {}", io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let sa = sockaddr(dst);
    let len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: sa outlives the call and len is its size.
    let rc = unsafe { libc::connect(fd, (&raw const sa).cast(), len) };
    let err = io::Error::last_os_error();
    if rc != 0 && err.raw_os_error() != Some(libc::EINPROGRESS) {
        return Err(format!("connect {dst}: {err}"));
    }
    let mut local = sockaddr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    let mut len = len;
    // SAFETY: local and len outlive the call; len is local's size.
    if unsafe { libc::getsockname(fd, (&raw mut local).cast(), &mut len) } != 0 {
        return Err(format!("getsockname: {}", io::Error::last_os_error()));
    }
    Ok((sock, u16::from_be(local.sin_port)))
}
