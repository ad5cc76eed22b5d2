//! tcp_paws (netdrop/src/causes/tcp_paws.rs).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use netdrop_tests::netdrop::assert_drop_line_shape;
use netdrop_tests::traffic::{checksum, sockaddr_in};
use netdrop_tests::{
    Netdrop, Netns, delta, in_netns, kernel_has_reason, lock, require_root, settle, skip_loudly,
    veth_pair,
};

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 75, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 75, 2);
const PORT: u16 = 5001;
/// Segments per scenario.
const N: usize = 5;
/// How much older than the client's clock the crafted timestamps are (ms).
const OLDER_MS: u32 = 100_000;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;

/// CLOCK_MONOTONIC in ms, truncated as TCP does: the TSval a namespace with
/// `net.ipv4.tcp_timestamps = 2` (no per-connection offset) sends now.
fn monotonic_ms() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000) as u32
}

/// A TCP segment with a timestamp option (TSval, TSecr 0) from
/// CLIENT:sport to SERVER:PORT, checksummed.
fn segment(sport: u16, flags: u8, seq: u32, ack: u32, tsval: u32, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(32 + payload.len());
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&PORT.to_be_bytes());
    h.extend_from_slice(&seq.to_be_bytes());
    h.extend_from_slice(&ack.to_be_bytes());
    h.push(8 << 4); // 32-byte header
    h.push(flags);
    h.extend_from_slice(&65535u16.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    h.extend_from_slice(&[1, 1, 8, 10]); // NOP NOP TS(10)
    h.extend_from_slice(&tsval.to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes());
    h.extend_from_slice(payload);
    let len = u16::try_from(h.len()).unwrap();
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&CLIENT.octets());
    pseudo.extend_from_slice(&SERVER.octets());
    pseudo.extend_from_slice(&[0, libc::IPPROTO_TCP as u8]);
    pseudo.extend_from_slice(&len.to_be_bytes());
    let c = checksum(&[&pseudo, &h]);
    h[16..18].copy_from_slice(&c.to_be_bytes());
    h
}

/// A raw IPPROTO_TCP socket in the client namespace: it sends crafted
/// segments (the kernel adds the IP header) and receives a copy of every TCP
/// packet the namespace takes in.
struct RawTcp(OwnedFd);

impl RawTcp {
    fn new(ns: &Netns) -> Self {
        let fd = in_netns(ns, || {
            // SAFETY: plain socket(2).
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP) }
        })
        .unwrap();
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a new descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: tv outlives the call; the length matches its type.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_RCVTIMEO");
        RawTcp(fd)
    }

    fn send(&self, seg: &[u8]) {
        let dst = sockaddr_in(SERVER, 0);
        // SAFETY: seg and dst outlive the call; the lengths match.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                seg.as_ptr().cast(),
                seg.len(),
                0,
                (&raw const dst).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(
            n,
            seg.len() as isize,
            "sendto: {}",
            std::io::Error::last_os_error()
        );
    }

    /// The next TCP packet from SERVER:PORT to CLIENT:dport as (seq, ack),
    /// within `timeout`; packets to other ports are skipped.
    fn reply_to(&self, dport: u16, timeout: Duration) -> Option<(u32, u32)> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            // SAFETY: buf is writable for its length.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let Ok(n) = usize::try_from(n) else { continue };
            let ip = &buf[..n];
            if n < 20 || ip[12..16] != SERVER.octets() {
                continue;
            }
            let ihl = usize::from(ip[0] & 0xf) * 4;
            let Some(t) = ip.get(ihl..ihl + 12) else {
                continue;
            };
            let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            if u16::from_be_bytes([t[0], t[1]]) == PORT && u16::from_be_bytes([t[2], t[3]]) == dport
            {
                return Some((be32(&t[4..8]), be32(&t[8..12])));
            }
        }
        None
    }

    /// Forgets what was received so far.
    fn drain(&self) {
        let mut buf = [0u8; 2048];
        // SAFETY: buf is writable for its length.
        while unsafe {
            libc::recv(
                self.0.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        } > 0
        {}
    }
}

/// Waits (bounded) until `ns` has a TIME_WAIT socket from CLIENT:sport.
fn wait_time_wait(ns: &Netns, sport: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let out = ns
            .sh(&format!("ss -Htan state time-wait dst {CLIENT}:{sport}"))
            .unwrap_or_default();
        if !out.trim().is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// tcp_paws: a client namespace whose TSval is its monotonic clock in ms
/// (`tcp_timestamps = 2`) and that drops its own outgoing RSTs (otherwise
/// the RST answering the server's challenge ACK ends the TIME_WAIT), a
/// server namespace at defaults. From a raw socket in the client, with
/// timestamps 100 s older than the connection saw:
/// (a) N SYNs to a server TIME_WAIT on the same 4-tuple: TCP_RFC7323_TW_PAWS,
///     TcpExt:PAWSTimewait;
/// (b) N data segments to an ESTABLISHED connection: TCP_RFC7323_PAWS,
///     TcpExt:PAWSEstab;
/// (c) N pure ACKs with an old sequence number to it: TCP_RFC7323_PAWS_ACK,
///     TcpExt:PAWSOldAck.
///
/// The drops on the established socket have no device (`skb->dev` is NULL
/// at kfree_skb): their namespace is the receiving socket's, and `--netns`
/// keeps them.
#[test]
fn tcp_paws() {
    let _serial = lock();
    if !require_root("tcp_paws") {
        return;
    }
    if !kernel_has_reason("TCP_RFC7323_PAWS") {
        skip_loudly("tcp_paws: this kernel has no TCP_RFC7323_PAWS drop reason (before 6.0)");
        return;
    }
    let tw = kernel_has_reason("TCP_RFC7323_TW_PAWS");
    if !tw {
        skip_loudly("tcp_paws (a): this kernel has no TCP_RFC7323_TW_PAWS; TIME_WAIT not tried");
    }
    let old_ack = kernel_has_reason("TCP_RFC7323_PAWS_ACK");
    if !old_ack {
        skip_loudly("tcp_paws (c): this kernel has no TCP_RFC7323_PAWS_ACK; old ACKs not tried");
    }
    if std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_err()
    {
        skip_loudly("tcp_paws: needs nft (the client drops its own RSTs); run scripts/setup.sh");
        return;
    }

    let client = Netns::new().expect("client namespace");
    let server = Netns::new().expect("server namespace");
    veth_pair(
        &client,
        "ndpc",
        &format!("{CLIENT}/24"),
        &server,
        "ndps",
        &format!("{SERVER}/24"),
    )
    .expect("veth pair");
    client
        .sysctl("net.ipv4.tcp_timestamps", "2")
        .expect("client tcp_timestamps");
    client
        .sh("nft -f - <<'EOF'\n\
             table ip ndpaws {\n\
               chain out { type filter hook output priority 0; tcp flags rst counter drop; }\n\
             }\n\
             EOF")
        .expect("nft: client drops its RSTs");
    let ts_server: i64 = server
        .read_sysctl("net.ipv4.tcp_timestamps")
        .unwrap()
        .parse()
        .unwrap();
    let tw_reuse: i64 = server
        .read_sysctl("net.ipv4.tcp_tw_reuse")
        .unwrap()
        .parse()
        .unwrap();

    let srv_addr = SocketAddrV4::new(SERVER, PORT);
    let listener = in_netns(&server, || TcpListener::bind(srv_addr))
        .unwrap()
        .expect("listen");
    // (a)'s connection: the server closes first and keeps the TIME_WAIT.
    let c1 = in_netns(&client, || TcpStream::connect(srv_addr))
        .unwrap()
        .expect("connect 1");
    let tw_port = c1.local_addr().unwrap().port();
    let (mut s1, _) = listener.accept().expect("accept 1");
    s1.write_all(b"bye").unwrap();
    drop(s1);
    let mut c1 = c1;
    let mut got = Vec::new();
    c1.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c1.read_to_end(&mut got)
        .expect("client 1 reads to the server's FIN");
    assert_eq!(got, b"bye");
    drop(c1);
    assert!(
        wait_time_wait(&server, tw_port),
        "no TIME_WAIT from {CLIENT}:{tw_port} in the server namespace"
    );
    // (b) and (c)'s connection, kept open.
    let mut c2 = in_netns(&client, || TcpStream::connect(srv_addr))
        .unwrap()
        .expect("connect 2");
    let est_port = c2.local_addr().unwrap().port();
    let (mut s2, _) = listener.accept().expect("accept 2");
    c2.write_all(b"hello").unwrap();
    let mut hello = [0u8; 5];
    s2.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s2.read_exact(&mut hello).unwrap();
    let raw = RawTcp::new(&client);
    std::thread::sleep(Duration::from_millis(100));

    let nd = Netdrop::start(&["--netns", &server.inode().to_string()]).expect("starting netdrop");
    let before = server.netstat().unwrap();
    if tw {
        for i in 0..N {
            let tsval = monotonic_ms().wrapping_sub(OLDER_MS);
            raw.send(&segment(
                tw_port,
                SYN,
                0x1000_0000 + i as u32,
                0,
                tsval,
                b"",
            ));
        }
    }
    raw.drain();
    for i in 0..N {
        let tsval = monotonic_ms().wrapping_sub(OLDER_MS);
        raw.send(&segment(
            est_port,
            PSH_ACK,
            0x2000_0000 + i as u32 * 64,
            0,
            tsval,
            b"paws-test!",
        ));
    }
    // The server answers the first refused segment with a duplicate ACK:
    // its snd_nxt and rcv_nxt, which (c) needs.
    let dupack = raw.reply_to(est_port, Duration::from_secs(2));
    if old_ack {
        let (snd_nxt, rcv_nxt) =
            dupack.expect("the server's duplicate ACK to a PAWS-refused segment");
        for _ in 0..N {
            let tsval = monotonic_ms().wrapping_sub(OLDER_MS);
            raw.send(&segment(
                est_port,
                ACK,
                rcv_nxt.wrapping_sub(100),
                snd_nxt,
                tsval,
                b"",
            ));
        }
    }
    settle();
    let after = server.netstat().unwrap();
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();
    drop((c2, s2, listener));

    let k_tw = delta(&before, &after, "TcpExt:PAWSTimewait");
    let k_est = delta(&before, &after, "TcpExt:PAWSEstab");
    let k_old = delta(&before, &after, "TcpExt:PAWSOldAck");
    let k_tsecr = delta(&before, &after, "TcpExt:TSEcrRejected");
    eprintln!(
        "kernel: PAWSTimewait {k_tw} PAWSEstab {k_est} PAWSOldAck {k_old} TSEcrRejected {k_tsecr}; \
         netdrop: TW_PAWS {} PAWS {} PAWS_ACK {} TSECR {} cause {}",
        out.reason("TCP_RFC7323_TW_PAWS"),
        out.reason("TCP_RFC7323_PAWS"),
        out.reason("TCP_RFC7323_PAWS_ACK"),
        out.reason("TCP_RFC7323_TSECR"),
        out.cause("tcp_paws")
    );
    assert_eq!(k_tw, if tw { N as u64 } else { 0 }, "PAWSTimewait");
    assert_eq!(k_est, N as u64, "PAWSEstab");
    assert_eq!(k_old, if old_ack { N as u64 } else { 0 }, "PAWSOldAck");
    assert_eq!(
        out.reason("TCP_RFC7323_TW_PAWS"),
        k_tw,
        "reasons.TCP_RFC7323_TW_PAWS"
    );
    assert_eq!(
        out.reason("TCP_RFC7323_PAWS"),
        k_est,
        "reasons.TCP_RFC7323_PAWS"
    );
    assert_eq!(
        out.reason("TCP_RFC7323_PAWS_ACK"),
        k_old,
        "reasons.TCP_RFC7323_PAWS_ACK"
    );
    assert_eq!(
        out.reason("TCP_RFC7323_TSECR"),
        k_tsecr,
        "reasons.TCP_RFC7323_TSECR"
    );
    let kernel = k_tw + k_est + k_old + k_tsecr;
    assert_eq!(out.cause("tcp_paws"), kernel, "causes.tcp_paws");
    out.assert_one_truth();

    // One line per drop, each in the server's namespace (the established
    // socket's drops have no device: the namespace is the socket's).
    let lines = out.drops_with_cause("tcp_paws");
    assert_eq!(lines.len() as u64, kernel, "one line per drop");
    for (reason, port, want) in [
        ("TCP_RFC7323_TW_PAWS", tw_port, k_tw),
        ("TCP_RFC7323_PAWS", est_port, k_est),
        ("TCP_RFC7323_PAWS_ACK", est_port, k_old),
    ] {
        let of: Vec<_> = lines.iter().filter(|l| l["reason"] == reason).collect();
        assert_eq!(of.len() as u64, want, "drop lines with {reason}");
        if let Some(l) = of.first() {
            eprintln!("{reason}: {l}");
        }
        for l in of {
            assert_drop_line_shape(l);
            assert_eq!(l["netns"], serde_json::json!(server.inode()), "{l}");
            assert_eq!(l["saddr"], CLIENT.to_string(), "{l}");
            assert_eq!(l["daddr"], SERVER.to_string(), "{l}");
            assert_eq!(l["sport"], serde_json::json!(port), "{l}");
            assert_eq!(l["dport"], serde_json::json!(PORT), "{l}");
            assert_eq!(l["l4"], "tcp", "{l}");
        }
    }

    // The diagnosis: one group, the client as the peer, in the server's
    // namespace, with the server namespace's values (the client's
    // tcp_timestamps is 2, the server's its own).
    let (d, g) = out.declared_group(
        "tcp_paws",
        "TcpExt:PAWSEstab + TcpExt:PAWSOldAck + TcpExt:PAWSTimewait + TcpExt:TSEcrRejected",
        Some(kernel),
        "peer",
    );
    assert_eq!(g["addr"], CLIENT.to_string(), "{g}");
    assert_eq!(g["netns"], serde_json::json!(server.inode()), "{g}");
    assert_eq!(g["drops"], serde_json::json!(kernel), "{g}");
    assert_eq!(g["counter"], serde_json::json!(kernel), "{g}");
    assert_eq!(
        g["values"]["net.ipv4.tcp_timestamps"],
        serde_json::json!(ts_server),
        "{g}"
    );
    assert_eq!(
        g["values"]["net.ipv4.tcp_tw_reuse"],
        serde_json::json!(tw_reuse),
        "{g}"
    );
    let advice = d["advice"].as_array().expect("advice");
    assert_eq!(advice.len(), 1, "{d}");
    let a = &advice[0];
    let action = a["action"].as_str().unwrap();
    assert!(
        action.contains(&format!("net.ipv4.tcp_timestamps = {ts_server}"))
            && action.contains("NAT")
            && action.contains("tcp_tw_recycle")
            && action.contains("removed"),
        "{action}"
    );
    assert!(
        action.contains(&format!("{kernel} segments from peer {CLIENT}")),
        "{action}"
    );
    assert!(
        a["subject"].as_str().unwrap().contains(&CLIENT.to_string()),
        "{a}"
    );
    let knob = a["knobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "net.ipv4.tcp_timestamps")
        .unwrap_or_else(|| panic!("no tcp_timestamps in the advice: {a}"));
    assert_eq!(knob["current"], serde_json::json!(ts_server), "{a}");
}
