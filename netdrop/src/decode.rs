//! Ring buffer bytes → records. Pure: no kernel access, unit-tested with fixtures.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netdrop_common::{
    NOT_LISTENER, RawDropEvent, RawListenEvent, RawNeighEvent, RawNeighStateEvent, kind,
    neigh_event, nud,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::netns_id::NetnsId;

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
    /// The namespace's `net_cookie` (0 if unknown). Not in the record's
    /// serialized form: recordings carry it beside the record.
    #[serde(skip)]
    pub netns_cookie: u64,
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

impl ListenRecord {
    pub fn netns_id(&self) -> NetnsId {
        NetnsId::new(self.netns, self.netns_cookie)
    }
}

impl DropRecord {
    pub fn netns_id(&self) -> NetnsId {
        NetnsId::new(self.netns, self.netns_cookie)
    }
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
    /// The namespace's `net_cookie` (0 if unknown). Not in the record's
    /// serialized form: recordings carry it beside the record.
    #[serde(skip)]
    pub netns_cookie: u64,
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
        netns_cookie: raw.netns_cookie,
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
        netns_cookie: raw.netns_cookie,
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
            netns_cookie: 0,
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
mod tests;
