//! Bounded traffic generators. Every destination is checked against
//! 198.18.0.0/15 before anything is sent.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

use anyhow::{Context, Result, bail};

use crate::netns::{Netns, in_netns};

/// Upper bound on datagrams one call may send.
pub const MAX_DATAGRAMS: usize = 1000;

/// Creates a UDP socket in `ns`, bound to `src` (address, port 0), or to the
/// wildcard address when `src` is None.
pub fn udp_socket(ns: &Netns, src: Option<Ipv4Addr>) -> Result<UdpSocket> {
    if let Some(src) = src {
        crate::check_test_addr(src);
    }
    let bind = SocketAddrV4::new(src.unwrap_or(Ipv4Addr::UNSPECIFIED), 0);
    in_netns(ns, || UdpSocket::bind(bind))?.with_context(|| format!("{}: bind {bind}", ns.name()))
}

/// Sends one 1-byte datagram to each destination in order, from one socket
/// created in `ns`. Returns how many sendto calls succeeded (a datagram the
/// kernel drops on the way out usually still counts as sent).
pub fn udp_send_each(ns: &Netns, src: Option<Ipv4Addr>, dsts: &[SocketAddrV4]) -> Result<usize> {
    if dsts.len() > MAX_DATAGRAMS {
        bail!(
            "refusing to send {} datagrams (max {MAX_DATAGRAMS})",
            dsts.len()
        );
    }
    for d in dsts {
        crate::check_test_addr(*d.ip());
    }
    let sock = udp_socket(ns, src)?;
    let mut ok = 0;
    for d in dsts {
        if sock.send_to(b"x", SocketAddr::V4(*d)).is_ok() {
            ok += 1;
        }
    }
    Ok(ok)
}

/// Sends `count` 1-byte datagrams to `dst` from one socket in `ns`.
pub fn udp_send(
    ns: &Netns,
    src: Option<Ipv4Addr>,
    dst: SocketAddrV4,
    count: usize,
) -> Result<usize> {
    udp_send_each(ns, src, &vec![dst; count])
}

/// The Internet checksum (RFC 1071) of `chunks` taken as one byte string:
/// an IP header's, or a TCP segment's with its pseudo-header first.
pub fn checksum(chunks: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = chunks.concat();
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 socket address for the raw socket calls (port 0 for raw IP).
pub fn sockaddr_in(ip: std::net::Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    }
}

/// Sets an integer socket option.
pub fn setsockopt_int(fd: &impl AsRawFd, level: i32, name: i32, value: i32) -> Result<()> {
    // SAFETY: value outlives the call; the length matches its type.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        bail!(
            "setsockopt({level}, {name}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// SO_LINGER {on, 0}: close() then aborts the connection with a RST.
pub fn set_linger_zero(fd: &impl AsRawFd) -> Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: l outlives the call; the length matches its type.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const l).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        bail!("setsockopt(SO_LINGER): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071's example header (and any header with its checksum in
    /// place sums to 0).
    #[test]
    fn checksum_of_a_known_header() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&[&h]), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&[&h[..7], &h[7..]]), 0);
    }
}
