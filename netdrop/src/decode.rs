//! Ring buffer bytes → records. Pure: no kernel access, unit-tested with fixtures.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netdrop_common::{
    NOT_LISTENER, RawDropEvent, RawListenEvent, RawNeighEvent, RawNeighStateEvent, kind,
    neigh_event, nud,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record too short: {len} bytes")]
    Short { len: usize },
    #[error("unknown record kind {0}")]
    Kind(u32),
    #[error("unknown neighbour state event {0}")]
    NeighEvent(u32),
}

/// A decoded ring buffer record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Drop(DropRecord),
    NeighCreateFail(NeighRecord),
    ListenSynDrop(ListenRecord),
    NeighState(NeighStateRecord),
}

/// Which hook saw a neighbour state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeighStateEvent {
    /// neigh:neigh_create succeeded: a new entry, where resolution starts.
    Created,
    /// neigh:neigh_update resolved the entry, or made it REACHABLE or FAILED.
    Update,
    /// neigh:neigh_timer_handler: resolution ran out of probes (FAILED).
    Timer,
}

/// A neighbour entry's state change (only when neighbour states are asked for).
/// Resolution latency of an entry = `Created` → the next record for the same
/// (`dev`, `addr`) that [`is_resolved`](Self::is_resolved) or
/// [`is_failed`](Self::is_failed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighStateRecord {
    pub ts_ns: u64,
    pub family: u32,
    pub event: NeighStateEvent,
    /// `NUD_*` bits before (NONE for `Created`; `netdrop_common::nud::UNKNOWN`
    /// for `Timer`, whose tracepoint fires after the change).
    pub old_state: u32,
    /// `NUD_*` bits after.
    pub new_state: u32,
    pub dev: String,
    pub addr: Option<IpAddr>,
}

impl NeighStateRecord {
    /// The entry has a usable link-layer address now (REACHABLE, STALE, …).
    pub fn is_resolved(&self) -> bool {
        self.event != NeighStateEvent::Created && self.new_state & nud::VALID != 0
    }

    pub fn is_failed(&self) -> bool {
        self.new_state & nud::FAILED != 0
    }
}

/// `NUD_*` bits as the kernel's names (`ip neigh` spelling, upper case), e.g.
/// `REACHABLE`, `NONE`, `UNKNOWN` for [`nud::UNKNOWN`].
pub fn nud_name(state: u32) -> String {
    const NAMES: [(u32, &str); 8] = [
        (nud::INCOMPLETE, "INCOMPLETE"),
        (nud::REACHABLE, "REACHABLE"),
        (nud::STALE, "STALE"),
        (nud::DELAY, "DELAY"),
        (nud::PROBE, "PROBE"),
        (nud::FAILED, "FAILED"),
        (nud::NOARP, "NOARP"),
        (nud::PERMANENT, "PERMANENT"),
    ];
    match state {
        nud::UNKNOWN => "UNKNOWN".into(),
        nud::NONE => "NONE".into(),
        _ => {
            let mut names: Vec<String> = NAMES
                .iter()
                .filter(|(bit, _)| state & bit != 0)
                .map(|(_, n)| (*n).to_string())
                .collect();
            let rest = state & !0xff;
            if rest != 0 {
                names.push(format!("{rest:#x}"));
            }
            names.join("|")
        }
    }
}

/// A SYN refused because the listener's accept queue was full (tcp_conn_request hook).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenRecord {
    pub ts_ns: u64,
    pub netns: u32,
    pub addr: IpAddr,
    pub port: u16,
    pub ack_backlog: u32,
    pub max_ack_backlog: u32,
    pub pid: u32,
    pub comm: String,
    /// The listener's socket inode.
    pub owner_ino: u64,
    pub owner_uid: u32,
}

/// A dropped skb.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropRecord {
    pub ts_ns: u64,
    pub reason: u32,
    pub location: u64,
    pub skbaddr: u64,
    pub sk: u64,
    pub rx_sk: u64,
    pub netns: u32,
    pub ifindex: u32,
    pub dev: String,
    pub protocol: u16,
    /// The task running when the skb was freed (not necessarily its owner).
    pub pid: u32,
    pub comm: String,
    /// Addresses and ports parsed from `bytes`.
    pub packet: Option<Packet>,
    /// The packet as copied in the kernel, from its network header on: the
    /// configured capture length (64 bytes by default, up to 256), cut at the
    /// skb's linear data and at the packet's end.
    pub bytes: Vec<u8>,
    /// The packet's length from its network header to its end (paged data
    /// included; may exceed `bytes.len()`); 0 if unknown.
    pub pkt_len: u32,
    /// The socket the drop belongs to (inode 0: none).
    pub owner_ino: u64,
    pub owner_uid: u32,
    pub owner_src: u32,
    /// Under `--pid`: a socket of the process, or a namespace-level drop.
    pub scope: u32,
    /// The owner (tgid) the kernel learned when the socket connected/listened; 0 if unknown.
    pub owner_tgid: u32,
    /// When the drop's socket is a listener: its accept queue (length, limit)
    /// at the drop.
    pub accept_queue: Option<(u32, u32)>,
}

/// Addresses and ports read from the packet's network header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packet {
    pub saddr: IpAddr,
    pub daddr: IpAddr,
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6).
    pub l4: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

impl Packet {
    pub fn l4_name(&self) -> Option<&'static str> {
        match self.l4 {
            6 => Some("tcp"),
            17 => Some("udp"),
            1 => Some("icmp"),
            58 => Some("icmpv6"),
            132 => Some("sctp"),
            _ => None,
        }
    }
}

/// A neighbour entry the table refused to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighRecord {
    pub ts_ns: u64,
    pub family: u32,
    pub entries: i32,
    pub dev: String,
    pub addr: Option<IpAddr>,
    pub pid: u32,
    pub comm: String,
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;

pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    let kind = read_u32(bytes).ok_or(DecodeError::Short { len: bytes.len() })?;
    match kind {
        kind::DROP => {
            let raw: RawDropEvent = read_struct(bytes)?;
            Ok(Record::Drop(drop_record(&raw)))
        }
        kind::NEIGH_CREATE_FAIL => {
            let raw: RawNeighEvent = read_struct(bytes)?;
            Ok(Record::NeighCreateFail(neigh_record(&raw)))
        }
        kind::LISTEN_SYN_DROP => {
            let raw: RawListenEvent = read_struct(bytes)?;
            Ok(Record::ListenSynDrop(listen_record(&raw)))
        }
        kind::NEIGH_STATE => {
            let raw: RawNeighStateEvent = read_struct(bytes)?;
            Ok(Record::NeighState(neigh_state_record(&raw)?))
        }
        other => Err(DecodeError::Kind(other)),
    }
}

fn read_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?))
}

fn read_struct<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::Short { len: bytes.len() });
    }
    // SAFETY: length checked; T is a repr(C) plain-old-data type of integers and arrays.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// A NUL-terminated kernel string.
pub fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn drop_record(raw: &RawDropEvent) -> DropRecord {
    let len = usize::from(raw.net_hdr_len).min(raw.net_hdr.len());
    let bytes = raw.net_hdr[..len].to_vec();
    DropRecord {
        ts_ns: raw.ts_ns,
        reason: raw.reason,
        location: raw.location,
        skbaddr: raw.skbaddr,
        sk: raw.sk,
        rx_sk: raw.rx_sk,
        netns: raw.netns,
        ifindex: raw.ifindex,
        dev: cstr(&raw.dev),
        protocol: raw.protocol,
        pid: raw.pid,
        comm: cstr(&raw.comm),
        packet: parse_packet(raw.protocol, &bytes),
        bytes,
        pkt_len: raw.pkt_len,
        owner_ino: raw.owner_ino,
        owner_uid: raw.owner_uid,
        owner_src: raw.owner_src,
        scope: raw.scope,
        owner_tgid: raw.owner_tgid,
        accept_queue: (raw.accept_queue != NOT_LISTENER && raw.accept_limit != NOT_LISTENER)
            .then_some((raw.accept_queue, raw.accept_limit)),
    }
}

/// An address the kernel side stored as 16 bytes (IPv4 in the first 4).
fn ip_of(family: u32, bytes: [u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(bytes))),
        _ => None,
    }
}

fn neigh_record(raw: &RawNeighEvent) -> NeighRecord {
    let addr = ip_of(raw.family, raw.key);
    NeighRecord {
        ts_ns: raw.ts_ns,
        family: raw.family,
        entries: raw.entries,
        dev: cstr(&raw.dev),
        addr,
        pid: raw.pid,
        comm: cstr(&raw.comm),
    }
}

fn neigh_state_record(raw: &RawNeighStateEvent) -> Result<NeighStateRecord, DecodeError> {
    let event = match raw.event {
        neigh_event::CREATED => NeighStateEvent::Created,
        neigh_event::UPDATE => NeighStateEvent::Update,
        neigh_event::TIMER => NeighStateEvent::Timer,
        other => return Err(DecodeError::NeighEvent(other)),
    };
    Ok(NeighStateRecord {
        ts_ns: raw.ts_ns,
        family: raw.family,
        event,
        old_state: raw.old_state,
        new_state: raw.new_state,
        dev: cstr(&raw.dev),
        addr: ip_of(raw.family, raw.key),
    })
}

fn listen_record(raw: &RawListenEvent) -> ListenRecord {
    // A listener is AF_INET or AF_INET6; anything else is read as IPv6, as before.
    let addr =
        ip_of(u32::from(raw.family), raw.addr).unwrap_or(IpAddr::V6(Ipv6Addr::from(raw.addr)));
    ListenRecord {
        ts_ns: raw.ts_ns,
        netns: raw.netns,
        addr,
        port: raw.port,
        ack_backlog: raw.ack_backlog,
        max_ack_backlog: raw.max_ack_backlog,
        pid: raw.pid,
        comm: cstr(&raw.comm),
        owner_ino: raw.owner_ino,
        owner_uid: raw.owner_uid,
    }
}

/// Parses an IPv4 or IPv6 header (and the ports that follow it, if present).
/// `protocol` is the skb's ethertype in host order.
pub fn parse_packet(protocol: u16, hdr: &[u8]) -> Option<Packet> {
    let version = hdr.first()? >> 4;
    let (saddr, daddr, l4, l4_off) = match (protocol, version) {
        (ETH_P_IP, 4) | (0, 4) => {
            let ihl = usize::from(hdr[0] & 0x0f) * 4;
            if ihl < 20 || hdr.len() < 20 {
                return None;
            }
            let s: [u8; 4] = hdr[12..16].try_into().ok()?;
            let d: [u8; 4] = hdr[16..20].try_into().ok()?;
            // Ports only in the first fragment.
            let frag_off = u16::from_be_bytes([hdr[6], hdr[7]]) & 0x1fff;
            let l4_off = if frag_off == 0 { ihl } else { usize::MAX };
            (IpAddr::from(s), IpAddr::from(d), hdr[9], l4_off)
        }
        (ETH_P_IPV6, 6) | (0, 6) => {
            if hdr.len() < 40 {
                return None;
            }
            let s: [u8; 16] = hdr[8..24].try_into().ok()?;
            let d: [u8; 16] = hdr[24..40].try_into().ok()?;
            (IpAddr::from(s), IpAddr::from(d), hdr[6], 40)
        }
        _ => return None,
    };
    let ports = matches!(l4, 6 | 17 | 132)
        .then(|| hdr.get(l4_off..l4_off.checked_add(4)?))
        .flatten()
        .map(|p| {
            (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            )
        });
    Some(Packet {
        saddr,
        daddr,
        l4,
        sport: ports.map(|p| p.0),
        dport: ports.map(|p| p.1),
    })
}

/// Fixtures for other modules' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub fn drop_record() -> DropRecord {
        DropRecord {
            ts_ns: 0,
            reason: 0,
            location: 0,
            skbaddr: 0,
            sk: 0,
            rx_sk: 0,
            netns: 0,
            ifindex: 0,
            dev: String::new(),
            protocol: ETH_P_IP,
            pid: 0,
            comm: String::new(),
            packet: None,
            bytes: Vec::new(),
            pkt_len: 0,
            owner_ino: 0,
            owner_uid: 0,
            owner_src: 0,
            scope: 0,
            owner_tgid: 0,
            accept_queue: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netdrop_common::{IFNAMSIZ, MAX_CAPTURE, NET_HDR_LEN};

    fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0];
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h.extend_from_slice(&sport.to_be_bytes());
        h.extend_from_slice(&dport.to_be_bytes());
        h.extend_from_slice(&[0, 8, 0, 0]); // UDP length 8, no checksum
        h
    }

    fn raw_drop() -> RawDropEvent {
        let mut dev = [0u8; IFNAMSIZ];
        dev[..5].copy_from_slice(b"veth0");
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"ping");
        let mut net_hdr = [0u8; MAX_CAPTURE];
        let pkt = ipv4_udp([198, 18, 1, 1], [198, 18, 1, 99], 40000, 9);
        net_hdr[..pkt.len()].copy_from_slice(&pkt);
        RawDropEvent {
            kind: kind::DROP,
            reason: 59,
            ts_ns: 123,
            location: 0xffff_ffff_81a0_0123,
            skbaddr: 0xffff_8880_0000_1000,
            sk: 0,
            rx_sk: 0,
            netns: 4026532000,
            ifindex: 7,
            pid: 42,
            protocol: ETH_P_IP,
            net_hdr_len: pkt.len() as u16,
            dev,
            comm,
            net_hdr,
            owner_ino: 31337,
            owner_uid: 1000,
            owner_src: netdrop_common::owner_src::SKB_SK,
            scope: 0,
            owner_tgid: 0,
            accept_queue: NOT_LISTENER,
            accept_limit: NOT_LISTENER,
            pkt_len: pkt.len() as u32,
            _pad: 0,
        }
    }

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a repr(C) POD value.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()).to_vec() }
    }

    #[test]
    fn decodes_a_drop_with_its_packet() {
        let Record::Drop(d) = decode(&bytes_of(&raw_drop())).unwrap() else {
            panic!("not a drop")
        };
        assert_eq!(
            (d.reason, d.netns, d.ifindex, d.pid),
            (59, 4026532000, 7, 42)
        );
        assert_eq!((d.dev.as_str(), d.comm.as_str()), ("veth0", "ping"));
        assert_eq!((d.owner_ino, d.owner_uid, d.owner_src), (31337, 1000, 1));
        let p = d.packet.unwrap();
        assert_eq!(p.saddr.to_string(), "198.18.1.1");
        assert_eq!(p.daddr.to_string(), "198.18.1.99");
        assert_eq!(
            (p.sport, p.dport, p.l4_name()),
            (Some(40000), Some(9), Some("udp"))
        );
    }

    #[test]
    fn captured_bytes_and_packet_length() {
        let decode_drop = |raw: &RawDropEvent| match decode(&bytes_of(raw)).unwrap() {
            Record::Drop(d) => d,
            other => panic!("not a drop: {other:?}"),
        };
        // The default capture: 64 bytes asked, a 28-byte datagram: all of it.
        let mut raw = raw_drop();
        raw.net_hdr_len = 28;
        let d = decode_drop(&raw);
        assert_eq!(
            d.bytes,
            ipv4_udp([198, 18, 1, 1], [198, 18, 1, 99], 40000, 9)
        );
        assert_eq!(d.pkt_len, 28);
        assert_eq!(d.packet.as_ref().unwrap().dport, Some(9));

        // A full 256-byte capture of a 1400-byte TCP segment: first 256 bytes,
        // the length says how much more there was.
        let mut big = vec![0x45, 0, 0x05, 0x78, 0, 0, 0x40, 0, 64, 6, 0, 0];
        big.extend_from_slice(&[198, 18, 1, 1, 198, 18, 1, 2]);
        big.extend_from_slice(&8080u16.to_be_bytes());
        big.extend_from_slice(&443u16.to_be_bytes());
        big.extend((0..MAX_CAPTURE - big.len()).map(|i| i as u8));
        raw.net_hdr.copy_from_slice(&big);
        raw.net_hdr_len = MAX_CAPTURE as u16;
        raw.pkt_len = 1400;
        let d = decode_drop(&raw);
        assert_eq!(
            (d.bytes.len(), d.bytes[255], d.pkt_len),
            (256, big[255], 1400)
        );
        let p = d.packet.unwrap();
        assert_eq!(
            (p.l4_name(), p.sport, p.dport),
            (Some("tcp"), Some(8080), Some(443))
        );

        // Nothing copied (no network header): no bytes, no packet.
        raw.net_hdr_len = 0;
        raw.pkt_len = 0;
        let d = decode_drop(&raw);
        assert_eq!((d.bytes.len(), d.packet, d.pkt_len), (0, None, 0));
        // A length beyond the buffer is cut at the buffer.
        raw.net_hdr_len = u16::MAX;
        assert_eq!(decode_drop(&raw).bytes.len(), MAX_CAPTURE);
        // Only the default 64 bytes: addresses and ports still parse.
        raw.net_hdr_len = NET_HDR_LEN as u16;
        assert_eq!(decode_drop(&raw).packet.unwrap().sport, Some(8080));

        // Bytes survive serde (recordings).
        let d = decode_drop(&raw);
        let back: DropRecord = serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn accept_queue_only_for_listeners() {
        let decode_drop = |raw: &RawDropEvent| match decode(&bytes_of(raw)).unwrap() {
            Record::Drop(d) => d,
            other => panic!("not a drop: {other:?}"),
        };
        // Not a listener (or no socket): no queue.
        assert_eq!(decode_drop(&raw_drop()).accept_queue, None);
        // TCP_LISTEN_OVERFLOW on a listener with backlog 1: queue 2 of 1.
        let mut raw = raw_drop();
        raw.owner_src = netdrop_common::owner_src::RX_SK;
        raw.accept_queue = 2;
        raw.accept_limit = 1;
        let d = decode_drop(&raw);
        assert_eq!(d.accept_queue, Some((2, 1)));
        // An empty queue with a zero limit is a real value, not "none".
        raw.accept_queue = 0;
        raw.accept_limit = 0;
        assert_eq!(decode_drop(&raw).accept_queue, Some((0, 0)));
        // Half a sentinel is not a queue.
        raw.accept_limit = NOT_LISTENER;
        assert_eq!(decode_drop(&raw).accept_queue, None);
        // Records keep it through serde (recordings).
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["accept_queue"], serde_json::json!([2, 1]));
        let back: DropRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn decodes_a_refused_neighbour() {
        let mut dev = [0u8; IFNAMSIZ];
        dev[..3].copy_from_slice(b"nd0");
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&[198, 18, 2, 20]);
        let raw = RawNeighEvent {
            kind: kind::NEIGH_CREATE_FAIL,
            family: 2,
            ts_ns: 9,
            entries: 1025,
            pid: 1,
            dev,
            key,
            comm: [0; 16],
        };
        let Record::NeighCreateFail(n) = decode(&bytes_of(&raw)).unwrap() else {
            panic!()
        };
        assert_eq!((n.entries, n.dev.as_str()), (1025, "nd0"));
        assert_eq!(n.addr.unwrap().to_string(), "198.18.2.20");
    }

    #[test]
    fn decodes_a_refused_syn() {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[198, 18, 3, 2]);
        let raw = RawListenEvent {
            kind: kind::LISTEN_SYN_DROP,
            family: 2,
            port: 8080,
            ts_ns: 5,
            netns: 77,
            ack_backlog: 2,
            max_ack_backlog: 1,
            pid: 3,
            addr,
            comm: [0; 16],
            owner_ino: 99,
            owner_uid: 0,
            _pad: 0,
        };
        let Record::ListenSynDrop(l) = decode(&bytes_of(&raw)).unwrap() else {
            panic!()
        };
        assert_eq!(
            (
                l.addr.to_string().as_str(),
                l.port,
                l.ack_backlog,
                l.max_ack_backlog
            ),
            ("198.18.3.2", 8080, 2, 1)
        );
    }

    fn raw_neigh_state(event: u32, old_state: u32, new_state: u32) -> RawNeighStateEvent {
        let mut dev = [0u8; IFNAMSIZ];
        dev[..4].copy_from_slice(b"ndn0");
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&[198, 18, 4, 7]);
        RawNeighStateEvent {
            kind: kind::NEIGH_STATE,
            family: 2,
            ts_ns: 1_000,
            event,
            old_state,
            new_state,
            _pad: 0,
            dev,
            key,
        }
    }

    fn neigh_state(raw: &RawNeighStateEvent) -> NeighStateRecord {
        match decode(&bytes_of(raw)).unwrap() {
            Record::NeighState(n) => n,
            other => panic!("not a neighbour state: {other:?}"),
        }
    }

    #[test]
    fn decodes_neighbour_states() {
        let created = neigh_state(&raw_neigh_state(neigh_event::CREATED, nud::NONE, nud::NONE));
        assert_eq!(
            created,
            NeighStateRecord {
                ts_ns: 1_000,
                family: 2,
                event: NeighStateEvent::Created,
                old_state: nud::NONE,
                new_state: nud::NONE,
                dev: "ndn0".into(),
                addr: Some("198.18.4.7".parse().unwrap()),
            }
        );
        assert!(!created.is_resolved() && !created.is_failed());

        let up = neigh_state(&raw_neigh_state(
            neigh_event::UPDATE,
            nud::INCOMPLETE,
            nud::REACHABLE,
        ));
        assert_eq!(up.event, NeighStateEvent::Update);
        assert!(up.is_resolved() && !up.is_failed());
        assert_eq!(
            (
                nud_name(up.old_state).as_str(),
                nud_name(up.new_state).as_str()
            ),
            ("INCOMPLETE", "REACHABLE")
        );

        let timer = neigh_state(&raw_neigh_state(
            neigh_event::TIMER,
            nud::UNKNOWN,
            nud::FAILED,
        ));
        assert_eq!(timer.event, NeighStateEvent::Timer);
        assert!(timer.is_failed() && !timer.is_resolved());
        assert_eq!(nud_name(timer.old_state), "UNKNOWN");

        // IPv6 key, unknown family.
        let mut v6 = raw_neigh_state(neigh_event::UPDATE, nud::INCOMPLETE, nud::STALE);
        v6.family = 10;
        v6.key = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets();
        let r = neigh_state(&v6);
        assert_eq!(r.addr.unwrap().to_string(), "2001:db8::7");
        assert!(r.is_resolved());
        v6.family = 0;
        assert_eq!(neigh_state(&v6).addr, None);

        // An event number this agent does not know is an error, not a guess.
        assert_eq!(
            decode(&bytes_of(&raw_neigh_state(9, 0, 0))),
            Err(DecodeError::NeighEvent(9))
        );
        let bytes = bytes_of(&raw_neigh_state(neigh_event::TIMER, 0, 0));
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn neighbour_state_serde_round_trip_and_names() {
        let r = neigh_state(&raw_neigh_state(
            neigh_event::UPDATE,
            nud::INCOMPLETE,
            nud::REACHABLE,
        ));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["event"], "update");
        let back: NeighStateRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        assert_eq!(nud_name(nud::NONE), "NONE");
        assert_eq!(nud_name(nud::STALE | nud::DELAY), "STALE|DELAY");
        assert_eq!(nud_name(0x120), "FAILED|0x100");
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        let bytes = bytes_of(&raw_drop());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "len {len}");
        }
        let mut bad = bytes.clone();
        bad[..4].copy_from_slice(&77u32.to_ne_bytes());
        assert_eq!(decode(&bad), Err(DecodeError::Kind(77)));
    }

    #[test]
    fn packets_ipv6_fragments_and_garbage() {
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 6, 64];
        v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v6.extend_from_slice(&[0x1f, 0x90, 0x00, 0x50]);
        let p = parse_packet(ETH_P_IPV6, &v6).unwrap();
        assert_eq!(
            (p.saddr.to_string().as_str(), p.sport, p.dport, p.l4_name()),
            ("2001:db8::1", Some(8080), Some(80), Some("tcp"))
        );
        // A non-first IPv4 fragment has no ports.
        let mut frag = ipv4_udp([198, 18, 0, 1], [198, 18, 0, 2], 1, 2);
        frag[7] = 10;
        assert_eq!(parse_packet(ETH_P_IP, &frag).unwrap().sport, None);
        // ARP or truncated headers give no packet.
        assert_eq!(parse_packet(0x0806, &frag), None);
        assert_eq!(parse_packet(ETH_P_IP, &frag[..12]), None);
        assert_eq!(parse_packet(ETH_P_IP, &[]), None);
        // Header claims options beyond what was captured: addresses, no ports.
        let mut opts = ipv4_udp([198, 18, 0, 1], [198, 18, 0, 2], 1, 2);
        opts[0] = 0x4f;
        assert_eq!(parse_packet(ETH_P_IP, &opts).unwrap().dport, None);
    }
}
