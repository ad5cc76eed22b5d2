//! TCP listeners of the calling thread's network namespace, with their accept queues,
//! through NETLINK_SOCK_DIAG (`inet_diag`, the interface `ss -lt` uses).
//!
//! For a socket in LISTEN state the kernel reports `idiag_rqueue = sk_ack_backlog`
//! (connections waiting for accept()) and `idiag_wqueue = sk_max_ack_backlog` (the
//! listen() backlog capped at `net.core.somaxconn` of the socket's namespace at the
//! time of listen()). The queue overflows — `TcpExt:ListenOverflows` — once
//! `accept_queue > backlog`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::nl::{self, u32_at};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const TCP_LISTEN: u8 = 10;
/// `struct inet_diag_req_v2`.
const REQ_LEN: usize = 56;
/// `struct inet_diag_msg`.
const MSG_LEN: usize = 72;

/// One listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    pub addr: IpAddr,
    pub port: u16,
    /// `idiag_rqueue`: connections currently waiting in the accept queue.
    pub accept_queue: u32,
    /// `idiag_wqueue`: the accept queue's limit, `min(listen() backlog, somaxconn)`.
    pub backlog: u32,
    /// Socket inode (as in `/proc/PID/fd` → `socket:[inode]`); 0 once orphaned.
    pub inode: u64,
    pub uid: u32,
}

/// Body of a SOCK_DIAG_BY_FAMILY dump request for TCP sockets of `family` in LISTEN.
pub fn listen_request(family: u8) -> [u8; REQ_LEN] {
    let mut req = [0u8; REQ_LEN];
    req[0] = family; // sdiag_family
    req[1] = libc::IPPROTO_TCP as u8; // sdiag_protocol
    req[2] = 0; // idiag_ext: no extensions
    req[4..8].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes()); // idiag_states
    // id (inet_diag_sockid) all zero: dumps apply no address/port filter from it.
    req
}

/// Parses one `inet_diag_msg` payload; `None` unless it is a well-formed IPv4/IPv6
/// socket in LISTEN state (trailing attributes are ignored).
pub fn parse_listener(payload: &[u8]) -> Option<Listener> {
    if payload.len() < MSG_LEN {
        return None;
    }
    let family = payload[0];
    if payload[1] != TCP_LISTEN {
        return None;
    }
    // inet_diag_sockid starts at 4: sport (be16), dport (be16), src[16], dst[16], if, cookie.
    let port = u16::from_be_bytes([payload[4], payload[5]]);
    let src = &payload[8..24];
    let addr = match i32::from(family) {
        libc::AF_INET => IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3])),
        libc::AF_INET6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(src).ok()?)),
        _ => return None,
    };
    Some(Listener {
        family,
        addr,
        port,
        accept_queue: u32_at(payload, 56)?,
        backlog: u32_at(payload, 60)?,
        uid: u32_at(payload, 64)?,
        inode: u64::from(u32_at(payload, 68)?),
    })
}

/// Parses every SOCK_DIAG_BY_FAMILY message of a dump; other messages are skipped.
pub fn parse_listeners(messages: &[(u16, Vec<u8>)]) -> Vec<Listener> {
    messages
        .iter()
        .filter(|(kind, _)| *kind == SOCK_DIAG_BY_FAMILY)
        .filter_map(|(_, payload)| parse_listener(payload))
        .collect()
}

fn dump_family(family: u8) -> io::Result<Vec<Listener>> {
    let messages = nl::dump(
        libc::NETLINK_SOCK_DIAG,
        SOCK_DIAG_BY_FAMILY,
        &listen_request(family),
    )?;
    Ok(parse_listeners(&messages))
}

/// All TCP listeners (IPv4 and IPv6) of the calling thread's network namespace,
/// sorted by port then address. Needs no privileges. A kernel without IPv6
/// (the AF_INET6 dump fails with ENOENT/EAFNOSUPPORT) yields the IPv4 ones only.
pub fn tcp_listeners() -> io::Result<Vec<Listener>> {
    let mut out = dump_family(libc::AF_INET as u8)?;
    match dump_family(libc::AF_INET6 as u8) {
        Ok(v6) => out.extend(v6),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EAFNOSUPPORT)) => {}
        Err(e) => return Err(e),
    }
    out.sort_by_key(|l| (l.port, l.addr));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::nl::tests::msg;
    use crate::context::nl::{Dump, NLM_F_MULTI, NLMSG_DONE, Progress, absorb_datagram};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    /// Hand-built `inet_diag_msg` as the kernel lays it out.
    fn diag_msg(family: u8, state: u8, addr: &[u8], port: u16, rq: u32, wq: u32) -> Vec<u8> {
        let mut m = vec![family, state, 0, 0];
        m.extend(port.to_be_bytes());
        m.extend(0u16.to_be_bytes());
        let mut src = [0u8; 16];
        src[..addr.len()].copy_from_slice(addr);
        m.extend(src);
        m.extend([0u8; 16]); // dst
        m.extend(0u32.to_ne_bytes()); // if
        m.extend([0xffu8; 8]); // cookie
        m.extend(0u32.to_ne_bytes()); // expires
        m.extend(rq.to_ne_bytes());
        m.extend(wq.to_ne_bytes());
        m.extend(1000u32.to_ne_bytes()); // uid
        m.extend(123_456u32.to_ne_bytes()); // inode
        assert_eq!(m.len(), MSG_LEN);
        m
    }

    #[test]
    fn request_layout() {
        let r = listen_request(libc::AF_INET6 as u8);
        assert_eq!(r[0], 10);
        assert_eq!(r[1], 6);
        assert_eq!(u32_at(&r, 4), Some(1 << 10));
        assert!(r[8..].iter().all(|&b| b == 0));
    }

    #[test]
    fn parses_v4_and_v6() {
        let v4 = diag_msg(2, TCP_LISTEN, &[127, 0, 0, 1], 8080, 3, 128);
        let l = parse_listener(&v4).unwrap();
        assert_eq!(l.addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            (l.family, l.port, l.accept_queue, l.backlog),
            (2, 8080, 3, 128)
        );
        assert_eq!((l.uid, l.inode), (1000, 123_456));
        let v6 = diag_msg(10, TCP_LISTEN, &Ipv6Addr::LOCALHOST.octets(), 443, 0, 4096);
        let l = parse_listener(&v6).unwrap();
        assert_eq!(l.addr, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!((l.port, l.backlog), (443, 4096));
    }

    #[test]
    fn rejects_short_foreign_and_non_listen() {
        let ok = diag_msg(2, TCP_LISTEN, &[10, 0, 0, 1], 1, 0, 1);
        for n in 0..MSG_LEN {
            assert_eq!(parse_listener(&ok[..n]), None, "prefix of {n} bytes");
        }
        let mut with_attrs = ok.clone();
        with_attrs.extend([8, 0, 1, 0, 0, 0, 0, 0]);
        assert!(parse_listener(&with_attrs).is_some());
        assert_eq!(parse_listener(&diag_msg(1, TCP_LISTEN, &[], 1, 0, 1)), None);
        assert_eq!(
            parse_listener(&diag_msg(2, 1, &[10, 0, 0, 1], 1, 0, 1)),
            None
        );
    }

    #[test]
    fn multipart_dump_fixture() {
        let mut d = Dump::default();
        let mut dg1 = msg(
            20,
            NLM_F_MULTI,
            1,
            &diag_msg(2, TCP_LISTEN, &[0; 4], 22, 0, 128),
        );
        dg1.extend(msg(20, NLM_F_MULTI, 1, &[1, 2, 3])); // garbage payload: skipped
        let dg2 = msg(
            20,
            NLM_F_MULTI,
            1,
            &diag_msg(10, TCP_LISTEN, &[0; 16], 80, 1, 511),
        );
        assert_eq!(absorb_datagram(&dg1, 1, &mut d).unwrap(), Progress::More);
        assert_eq!(absorb_datagram(&dg2, 1, &mut d).unwrap(), Progress::More);
        let done = msg(NLMSG_DONE, NLM_F_MULTI, 1, &0i32.to_ne_bytes());
        assert_eq!(absorb_datagram(&done, 1, &mut d).unwrap(), Progress::Done);
        let ls = parse_listeners(&d.messages);
        assert_eq!(ls.len(), 2);
        assert_eq!((ls[0].port, ls[1].port, ls[1].backlog), (22, 80, 511));
    }

    fn find(port: u16) -> Listener {
        let all = tcp_listeners().expect("sock_diag dump");
        let mut hits = all
            .into_iter()
            .filter(|l| l.port == port && l.addr.is_loopback());
        let l = hits.next().expect("our listener is listed");
        assert!(hits.next().is_none());
        l
    }

    /// std's listen() backlog on Linux, checked with strace against rustc 1.95: 128.
    const STD_BACKLOG: u32 = 128;

    #[test]
    fn live_sees_own_listener_and_its_queue() {
        let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let l = find(port);
        assert_eq!(l.family, libc::AF_INET as u8);
        assert_eq!(l.backlog, STD_BACKLOG.min(somaxconn));
        assert_eq!(l.accept_queue, 0);
        // SAFETY: geteuid has no preconditions.
        assert_eq!(l.uid, unsafe { libc::geteuid() });
        assert_ne!(l.inode, 0);

        // The handshake completes in the kernel without accept(): queue becomes 1.
        let _client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = 0;
        while Instant::now() < deadline {
            seen = find(port).accept_queue;
            if seen == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(seen, 1);
        // After accept() it drains again.
        let _server_side = listener.accept().unwrap();
        assert_eq!(find(port).accept_queue, 0);
    }

    #[test]
    fn live_sees_v6_listener_if_available() {
        let Ok(listener) = TcpListener::bind("[::1]:0") else {
            eprintln!("SKIP: no IPv6 loopback");
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let l = find(port);
        assert_eq!(l.family, libc::AF_INET6 as u8);
        assert_eq!(l.addr, IpAddr::V6(Ipv6Addr::LOCALHOST));
    }
}
