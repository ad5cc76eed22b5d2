//! Decoding ring buffer records: fixtures built as the kernel lays them out.

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
        netns_cookie: 4242,
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

    // Bytes survive serde (recordings); the namespace cookie travels beside
    // the record (record::format::NetnsTag), not in it.
    let mut d = decode_drop(&raw);
    assert_eq!(
        d.netns_id(),
        crate::netns_id::NetnsId::new(4026532000, 4242)
    );
    let back: DropRecord = serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
    d.netns_cookie = 0;
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
    assert_eq!(
        back,
        DropRecord {
            netns_cookie: 0,
            ..d
        }
    );
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
        netns_cookie: 4243,
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
    assert_eq!(l.netns_id(), crate::netns_id::NetnsId::new(77, 4243));
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
