//! Raw netlink plumbing shared by [`super::sockdiag`] and [`super::neigh`]: send one
//! dump request, collect every reply message of the dump, plus the pure byte parsers
//! that the dump loop is built from (unit-tested without a socket).
//!
//! The socket is created by the calling thread, so it belongs to that thread's network
//! namespace (see [`super::netns::in_netns`]).

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;
pub(crate) const NLM_F_REQUEST: u16 = 0x01;
pub(crate) const NLM_F_MULTI: u16 = 0x02;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
/// Attribute type bits that are flags, not part of the type (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;

/// A dump that has not finished after this long is abandoned.
const RECV_TIMEOUT_SECS: libc::time_t = 5;
/// Upper bound on datagrams read for one dump (each holds many messages).
const MAX_DATAGRAMS: usize = 1 << 20;
/// A dump flagged NLM_F_DUMP_INTR (table changed meanwhile) is retried this many times.
const DUMP_ATTEMPTS: usize = 3;

pub(crate) const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// `struct nlmsghdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NlHeader {
    pub len: u32,
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
}

impl NlHeader {
    pub(crate) fn parse(b: &[u8]) -> Option<NlHeader> {
        Some(NlHeader {
            len: u32_at(b, 0)?,
            kind: u16_at(b, 4)?,
            flags: u16_at(b, 6)?,
            seq: u32_at(b, 8)?,
            pid: u32_at(b, 12)?,
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.len.to_ne_bytes());
        out.extend_from_slice(&self.kind.to_ne_bytes());
        out.extend_from_slice(&self.flags.to_ne_bytes());
        out.extend_from_slice(&self.seq.to_ne_bytes());
        out.extend_from_slice(&self.pid.to_ne_bytes());
    }
}

/// A complete request message: header + `body`, padded to 4 bytes.
pub(crate) fn build_request(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = align4(NLMSG_HDRLEN + body.len());
    let mut out = Vec::with_capacity(len);
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    NlHeader {
        len: len32,
        kind,
        flags,
        seq,
        pid: 0,
    }
    .write(&mut out);
    out.extend_from_slice(body);
    out.resize(len, 0);
    out
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {what}"))
}

/// Splits one datagram into (header, payload) pairs. A header whose length is shorter
/// than a header or runs past the datagram is an error (nothing after it can be trusted).
pub(crate) fn split_messages(mut buf: &[u8]) -> io::Result<Vec<(NlHeader, &[u8])>> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let hdr = NlHeader::parse(buf).ok_or_else(|| invalid("short header"))?;
        let len = hdr.len as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(invalid("message length out of bounds"));
        }
        out.push((hdr, &buf[NLMSG_HDRLEN..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(out)
}

/// Messages collected from one dump.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Dump {
    /// (message type, payload without the netlink header)
    pub messages: Vec<(u16, Vec<u8>)>,
    /// Some message carried NLM_F_DUMP_INTR: the table changed during the dump.
    pub interrupted: bool,
}

/// Whether a dump needs more datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    More,
    Done,
}

fn errno_payload(payload: &[u8]) -> io::Result<i32> {
    u32_at(payload, 0)
        .map(|v| v as i32)
        .ok_or_else(|| invalid("short error message"))
}

/// Folds one received datagram of the dump numbered `seq` into `dump`.
/// Messages of other sequence numbers are ignored; NLMSG_ERROR with a non-zero code,
/// NLMSG_DONE carrying a negative code and NLMSG_OVERRUN are errors.
pub(crate) fn absorb_datagram(buf: &[u8], seq: u32, dump: &mut Dump) -> io::Result<Progress> {
    for (hdr, payload) in split_messages(buf)? {
        if hdr.seq != seq {
            continue;
        }
        match hdr.kind {
            NLMSG_NOOP => {}
            NLMSG_OVERRUN => return Err(invalid("overrun")),
            NLMSG_ERROR => {
                let code = errno_payload(payload)?;
                if code == 0 {
                    return Ok(Progress::Done); // an ACK
                }
                return Err(io::Error::from_raw_os_error(code.saturating_neg()));
            }
            NLMSG_DONE => {
                // Old kernels send an empty NLMSG_DONE; newer ones carry the dump's status.
                match u32_at(payload, 0).map(|v| v as i32) {
                    Some(code) if code < 0 => {
                        return Err(io::Error::from_raw_os_error(code.saturating_neg()));
                    }
                    _ => return Ok(Progress::Done),
                }
            }
            kind => {
                dump.interrupted |= hdr.flags & NLM_F_DUMP_INTR != 0;
                dump.messages.push((kind, payload.to_vec()));
                if hdr.flags & NLM_F_MULTI == 0 {
                    return Ok(Progress::Done); // a lone reply is complete by itself
                }
            }
        }
    }
    Ok(Progress::More)
}

/// Iterates over netlink/rtnetlink attributes `(type, data)`; stops at the first
/// malformed one.
pub(crate) fn attributes(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = u16_at(b, 0)? as usize;
        let kind = u16_at(b, 2)? & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            b = &[];
            return None;
        }
        let data = &b[4..len];
        b = &b[align4(len).min(b.len())..];
        Some((kind, data))
    })
}

struct NlSocket {
    fd: OwnedFd,
}

impl NlSocket {
    fn open(protocol: libc::c_int) -> io::Result<NlSocket> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        let sock = NlSocket {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        };
        let tv = libc::timeval {
            tv_sec: RECV_TIMEOUT_SECS,
            tv_usec: 0,
        };
        // SAFETY: tv lives across the call and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                sock.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sock)
    }

    fn kernel_addr() -> libc::sockaddr_nl {
        // SAFETY: sockaddr_nl is plain old data; all-zero is valid (pid 0 = the kernel).
        let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        let addr = Self::kernel_addr();
        for _ in 0..16 {
            // SAFETY: msg and addr are valid for the lengths passed.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    (&addr as *const libc::sockaddr_nl).cast(),
                    mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        Err(io::Error::other("netlink: send kept being interrupted"))
    }

    /// Receives one datagram from the kernel into `buf` (grown to fit) and returns its length.
    fn recv(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let fd = self.fd.as_raw_fd();
        for _ in 0..64 {
            // Peek with MSG_TRUNC to learn the datagram's real size first.
            // SAFETY: buf is valid for buf.len() bytes.
            let want = unsafe {
                libc::recv(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_PEEK | libc::MSG_TRUNC,
                )
            };
            if want < 0 {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "netlink: timed out",
                        ));
                    }
                    _ => return Err(err),
                }
            }
            if want as usize > buf.len() {
                buf.resize(want as usize, 0);
            }
            let mut from = Self::kernel_addr();
            let mut from_len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            // SAFETY: buf, from and from_len are valid for the sizes passed.
            let n = unsafe {
                libc::recvfrom(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_nl).cast(),
                    &mut from_len,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if from.nl_pid != 0 {
                continue; // not from the kernel
            }
            return Ok(n as usize);
        }
        Err(io::Error::other("netlink: no datagram from the kernel"))
    }

    fn dump_once(&self, kind: u16, seq: u32, body: &[u8]) -> io::Result<Dump> {
        self.send(&build_request(kind, NLM_F_REQUEST | NLM_F_DUMP, seq, body))?;
        let mut buf = vec![0u8; 32 * 1024];
        let mut dump = Dump::default();
        for _ in 0..MAX_DATAGRAMS {
            let n = self.recv(&mut buf)?;
            if absorb_datagram(&buf[..n], seq, &mut dump)? == Progress::Done {
                return Ok(dump);
            }
        }
        Err(io::Error::other("netlink: dump did not finish"))
    }
}

/// Runs one dump request (`kind` with `body`) on a fresh socket of `protocol` in the
/// calling thread's network namespace and returns every reply `(type, payload)`.
/// Retried when the kernel flags the dump as interrupted; the last attempt is
/// returned even if it was interrupted too.
pub(crate) fn dump(
    protocol: libc::c_int,
    kind: u16,
    body: &[u8],
) -> io::Result<Vec<(u16, Vec<u8>)>> {
    let sock = NlSocket::open(protocol)?;
    let mut last = Vec::new();
    for attempt in 0..DUMP_ATTEMPTS {
        let seq = attempt as u32 + 1;
        let d = sock.dump_once(kind, seq, body)?;
        if !d.interrupted {
            return Ok(d.messages);
        }
        last = d.messages;
    }
    Ok(last)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One message: header with `kind`/`flags`/`seq` + payload, padded.
    pub(crate) fn msg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = (NLMSG_HDRLEN + payload.len()) as u32;
        let mut out = Vec::new();
        NlHeader {
            len,
            kind,
            flags,
            seq,
            pid: 4242,
        }
        .write(&mut out);
        out.extend_from_slice(payload);
        out.resize(align4(out.len()), 0);
        out
    }

    #[test]
    fn request_layout() {
        let r = build_request(20, NLM_F_REQUEST | NLM_F_DUMP, 7, &[1, 2, 3]);
        assert_eq!(r.len(), 20);
        let h = NlHeader::parse(&r).unwrap();
        assert_eq!(
            h,
            NlHeader {
                len: 20,
                kind: 20,
                flags: 0x301,
                seq: 7,
                pid: 0
            }
        );
        assert_eq!(&r[16..], &[1, 2, 3, 0]);
    }

    #[test]
    fn multipart_then_done() {
        let mut d = Dump::default();
        let mut dg = msg(20, NLM_F_MULTI, 1, &[0xaa; 5]);
        dg.extend(msg(20, NLM_F_MULTI, 99, &[0xbb])); // other seq: ignored
        dg.extend(msg(20, NLM_F_MULTI, 1, &[0xcc; 8]));
        assert_eq!(absorb_datagram(&dg, 1, &mut d).unwrap(), Progress::More);
        let done = msg(NLMSG_DONE, NLM_F_MULTI, 1, &0i32.to_ne_bytes());
        assert_eq!(absorb_datagram(&done, 1, &mut d).unwrap(), Progress::Done);
        assert_eq!(d.messages, vec![(20, vec![0xaa; 5]), (20, vec![0xcc; 8])]);
        assert!(!d.interrupted);
        // An empty NLMSG_DONE (old kernels) also ends the dump.
        let empty_done = msg(NLMSG_DONE, NLM_F_MULTI, 1, &[]);
        assert_eq!(
            absorb_datagram(&empty_done, 1, &mut d).unwrap(),
            Progress::Done
        );
    }

    #[test]
    fn errors_and_flags() {
        let mut d = Dump::default();
        let mut err = (-libc::EPERM).to_ne_bytes().to_vec();
        err.extend(msg(20, 0, 1, &[])); // the echoed request
        let e = absorb_datagram(&msg(NLMSG_ERROR, 0, 1, &err), 1, &mut d).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        let ack = msg(NLMSG_ERROR, 0, 1, &0i32.to_ne_bytes());
        assert_eq!(absorb_datagram(&ack, 1, &mut d).unwrap(), Progress::Done);
        let bad_done = msg(NLMSG_DONE, NLM_F_MULTI, 1, &(-libc::EINVAL).to_ne_bytes());
        let e = absorb_datagram(&bad_done, 1, &mut d).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        assert!(absorb_datagram(&msg(NLMSG_ERROR, 0, 1, &[1]), 1, &mut d).is_err());
        assert!(absorb_datagram(&msg(NLMSG_OVERRUN, 0, 1, &[]), 1, &mut d).is_err());
        let intr = msg(28, NLM_F_MULTI | NLM_F_DUMP_INTR, 1, &[]);
        assert_eq!(absorb_datagram(&intr, 1, &mut d).unwrap(), Progress::More);
        assert!(d.interrupted);
        assert_eq!(
            absorb_datagram(&msg(28, 0, 1, &[]), 1, &mut d).unwrap(),
            Progress::Done
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut d = Dump::default();
        assert_eq!(absorb_datagram(&[], 1, &mut d).unwrap(), Progress::More);
        assert_eq!(
            absorb_datagram(&[1, 2, 3], 1, &mut d).unwrap(),
            Progress::More
        );
        let mut short = msg(20, NLM_F_MULTI, 1, &[0; 8]);
        short[0..4].copy_from_slice(&8u32.to_ne_bytes()); // len < header
        assert!(absorb_datagram(&short, 1, &mut d).is_err());
        let mut long = msg(20, NLM_F_MULTI, 1, &[0; 8]);
        long[0..4].copy_from_slice(&1000u32.to_ne_bytes()); // len past the end
        assert!(absorb_datagram(&long, 1, &mut d).is_err());
        // Deterministic pseudo-random bytes of every length up to 300.
        let mut x: u32 = 0x1234_5678;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = absorb_datagram(&bytes, 1, &mut Dump::default());
            let _ = attributes(&bytes).count();
        }
    }

    #[test]
    fn attribute_walk() {
        // (len 8, type 1, 4 bytes) (len 5, type 0x8002 nested flag, 1 byte + 3 pad) (len 2: bad)
        let mut b = vec![8, 0, 1, 0, 10, 11, 12, 13, 5, 0, 2, 0x80, 9, 0, 0, 0];
        b.extend([2, 0, 3, 0]);
        let got: Vec<_> = attributes(&b).collect();
        assert_eq!(got, vec![(1, &[10, 11, 12, 13][..]), (2, &[9][..])]);
        // Last attribute without its padding is still accepted.
        let got: Vec<_> = attributes(&[5, 0, 7, 0, 1]).collect();
        assert_eq!(got, vec![(7, &[1][..])]);
    }
}
