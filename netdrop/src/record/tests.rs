//! The file format against damage: truncation at every byte of the last
//! records, flipped bytes, unknown kinds, future versions, foreign files.

mod stream;

use bytes::BytesMut;

use super::format::{self, *};
use super::reader::{Damage, open};
use crate::{decode::tests_support::drop_record, snapshot::Snapshot, summary::Counts};

fn header() -> Header {
    Header {
        netdrop_version: "0.1.0".into(),
        kernel_release: "6.18.0-test".into(),
        hostname: "box".into(),
        boot_time: 1_700_000_000,
        start_unix: 1_700_000_100.5,
        start_mono_ns: 100_000_000_000,
        clock_offset_ns: 1_600_000_000_000_000_000,
        reasons: vec![(2, "NOT_SPECIFIED".into()), (59, "NEIGH_QUEUEFULL".into())],
        has_reason_field: true,
        hooks: Default::default(),
        filters: vec!["--dev veth0".into()],
        capture_bytes: 0,
        counter_interval_s: 1.0,
    }
}

fn drop_entry(i: u64) -> Entry {
    let mut rec = drop_record();
    rec.reason = 59;
    rec.dev = "veth-a".into();
    rec.comm = "curl".into();
    rec.packet = Some(crate::decode::Packet {
        saddr: "198.18.0.1".parse().unwrap(),
        daddr: "198.18.0.2".parse().unwrap(),
        l4: 6,
        sport: Some(40000 + i as u16),
        dport: Some(80),
    });
    rec.ts_ns = 100_000_000_000 + i * 1_000_000;
    Entry::Drop(Box::new(DropEntry {
        rec,
        location: "__neigh_event_send+0x2a4".into(),
        owner: None,
        netns_name: Some("ndt-a".into()),
        netns_identity: None,
    }))
}

/// A recording: header, 20 drops, counters, a snapshot, end. Returns the bytes
/// and the entries after the header.
fn sample(end: bool) -> (Vec<u8>, Vec<Entry>) {
    let mut entries: Vec<Entry> = (0..20).map(drop_entry).collect();
    let mut counts = Counts {
        drops: vec![0; 512],
        lost: vec![0; 512],
        sent: vec![0; 512],
        stats: vec![0; 5],
    };
    counts.drops[59] = 20;
    counts.sent[59] = 20;
    entries.push(Entry::Counters(Box::new(CountersEntry::new(
        1.0,
        &counts,
        &Default::default(),
    ))));
    entries.push(Entry::Snapshot(Box::new(Snapshot {
        at_s: 1.0,
        ..Default::default()
    })));
    if end {
        entries.push(Entry::End(EndEntry {
            session: SessionEntry {
                duration_s: 1.5,
                events_read: 20,
                undecodable: 0,
            },
            lost: Default::default(),
        }));
    }
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&preamble());
    Entry::Header(Box::new(header())).encode(&mut buf);
    for e in &entries {
        e.encode(&mut buf);
    }
    (buf.to_vec(), entries)
}

fn read_all(data: &[u8]) -> Result<(Vec<Entry>, Vec<Damage>), String> {
    let (h, mut r) = open(data)?;
    assert_eq!(h, header());
    let entries: Vec<Entry> = r.by_ref().map(|(_, e)| e).collect();
    Ok((entries, r.damage().to_vec()))
}

/// Offsets where each frame starts (after the header).
fn frame_starts(data: &[u8]) -> Vec<usize> {
    let (_, r) = open(data).unwrap();
    r.map(|(o, _)| o as usize).collect()
}

/// Counters written before the event limit (frame kind 6, no `sent`) read as
/// "every drop not lost was sent": nothing shows as held back.
#[test]
fn counters_from_before_the_event_limit_hold_nothing_back() {
    let v1 = super::format::CountersEntryV1 {
        at_s: 2.0,
        drops: vec![(16, 50), (59, 7)],
        lost: vec![(16, 5)],
        stats: vec![4, 1, 0, 9, 2],
        session: SessionEntry {
            duration_s: 2.0,
            events_read: 52,
            undecodable: 0,
        },
    };
    let mut buf = BytesMut::new();
    super::format::frame(
        super::format::kind::COUNTERS_V1,
        &postcard::to_stdvec(&v1).unwrap(),
        &mut buf,
    );
    let payload = &buf[super::format::FRAME_HEAD..buf.len() - super::format::FRAME_TAIL];
    let Some(Ok(Entry::Counters(c))) = Entry::decode(super::format::kind::COUNTERS_V1, payload)
    else {
        panic!("a version-1 counters frame did not decode");
    };
    let counts = c.counts();
    assert_eq!((counts.sent[16], counts.sent[59]), (45, 7));
    assert_eq!(counts.held_back(16), 0);
    let s = crate::summary::Summary::from_counts(&counts, &header().naming());
    assert_eq!((s.sampled_events, s.lost_events, s.total_drops), (0, 8, 66));
    // A frame written now carries `sent` under the new kind.
    assert_eq!(Entry::Counters(c).kind(), super::format::kind::COUNTERS);
}

#[test]
fn round_trip_is_exact_and_clean() {
    let (data, entries) = sample(true);
    let (got, damage) = read_all(&data).unwrap();
    assert_eq!(got, entries);
    assert!(damage.is_empty(), "{damage:?}");
    let Entry::Counters(c) = &got[20] else {
        panic!("not counters")
    };
    assert_eq!(c.drops, vec![(59, 20)]);
    assert_eq!(c.counts().drops[59], 20);
}

#[test]
fn missing_end_is_reported() {
    let (data, entries) = sample(false);
    let (got, damage) = read_all(&data).unwrap();
    assert_eq!(got, entries);
    assert_eq!(
        damage,
        vec![Damage::NoEnd {
            at: data.len() as u64
        }]
    );
}

#[test]
fn truncation_at_every_byte_of_the_last_records_keeps_every_whole_record() {
    let (data, entries) = sample(true);
    let starts = frame_starts(&data);
    // Cut anywhere from the 18th drop to the end.
    let from = starts[17];
    for cut in from..data.len() {
        let (got, damage) = read_all(&data[..cut]).unwrap();
        let whole = starts.iter().filter(|&&s| s < cut).count() - 1;
        let whole = if starts.contains(&cut) {
            whole + 1
        } else {
            whole
        };
        assert_eq!(got.len(), whole, "cut at {cut}");
        assert_eq!(got[..], entries[..whole], "cut at {cut}");
        let last = *starts.iter().filter(|&&s| s <= cut).max().unwrap();
        if last == cut {
            // Cut exactly between frames: nothing torn, only the end is missing.
            assert_eq!(
                damage,
                vec![Damage::NoEnd { at: cut as u64 }],
                "cut at {cut}"
            );
        } else {
            assert!(
                matches!(damage[0], Damage::Truncated { offset, have, .. }
                    if offset == last as u64 && have == (cut - last) as u64),
                "cut at {cut}: {damage:?}"
            );
            assert!(matches!(damage[1], Damage::NoEnd { .. }), "{damage:?}");
        }
    }
}

/// A small deterministic generator (no dependency for one test).
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn flipped_bytes_lose_only_the_records_they_hit() {
    let (data, entries) = sample(true);
    let starts = frame_starts(&data);
    let body = starts[0];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let mut bad = data.clone();
        let at = body + (rng.next() as usize) % (data.len() - body);
        let flip = 1 + (rng.next() % 255) as u8;
        bad[at] ^= flip;
        let (got, damage) = read_all(&bad).unwrap();
        // The frame holding `at` is lost; every other one is there, in order.
        let hit = starts.iter().rposition(|&s| s <= at).unwrap();
        let mut want = entries.clone();
        want.remove(hit);
        assert_eq!(got, want, "flip {flip:#x} at {at}");
        assert!(!damage.is_empty(), "flip at {at} not reported");
        let reported_at = match &damage[0] {
            Damage::Corrupt { offset, .. } | Damage::Truncated { offset, .. } => *offset,
            Damage::BadPayload { offset, .. } | Damage::UnknownKind { offset, .. } => *offset,
            d => panic!("flip at {at}: {d:?}"),
        };
        assert_eq!(reported_at, starts[hit] as u64, "flip at {at}: {damage:?}");
    }
}

#[test]
fn random_garbage_never_panics() {
    let (data, _) = sample(true);
    let mut rng = XorShift(42);
    for _ in 0..300 {
        let mut bad = data.clone();
        for _ in 0..(rng.next() % 40) {
            let at = (rng.next() as usize) % bad.len();
            bad[at] = rng.next() as u8;
        }
        let cut = (rng.next() as usize) % (bad.len() + 1);
        if let Ok((_, mut r)) = open(&bad[..cut]) {
            r.by_ref().for_each(drop);
            let _ = r.damage().iter().map(ToString::to_string).count();
        }
    }
}

#[test]
fn unknown_kinds_are_skipped_and_named() {
    let (data, entries) = sample(true);
    let mut with = data[..frame_starts(&data)[1]].to_vec();
    let mut buf = BytesMut::new();
    format::frame(200, b"from the future", &mut buf);
    let at = with.len() as u64;
    with.extend_from_slice(&buf);
    with.extend_from_slice(&data[frame_starts(&data)[1]..]);
    let (got, damage) = read_all(&with).unwrap();
    assert_eq!(got, entries);
    assert_eq!(
        damage,
        vec![Damage::UnknownKind {
            offset: at,
            kind: 200
        }]
    );
}

#[test]
fn foreign_future_and_headless_files_are_refused_clearly() {
    let (data, _) = sample(true);
    let err = |d: &[u8]| open(d).err().expect("refused");
    assert!(err(b"").contains("not a netdrop recording"));
    assert!(err(b"PK\x03\x04 a zip file").contains("not a netdrop recording"));
    assert!(err(&data[..10]).contains("truncated"));
    let mut future = data.clone();
    future[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
    let e = err(&future);
    assert!(
        e.contains("version 2 is newer") && e.contains("newer netdrop"),
        "{e}"
    );
    assert!(err(&data[..PREAMBLE_LEN + 5]).contains("truncated inside the header"));
    let mut bad_header = data.clone();
    bad_header[PREAMBLE_LEN + 12] ^= 0xff;
    assert!(err(&bad_header).contains("header record is damaged"));
}

/// Many overlapping fake frame heads, each claiming a long payload: every one
/// costs a checksum of its claimed length. The search gives up (and says so)
/// once its budget is spent instead of taking time quadratic in the file size.
#[test]
fn crafted_overlapping_frames_stay_bounded() {
    let (data, _) = sample(false);
    let body = frame_starts(&data)[0];
    let len: u32 = 1 << 20;
    let mut crafted = data[..body].to_vec();
    for _ in 0..100 {
        crafted.extend_from_slice(&SYNC);
        crafted.extend_from_slice(&len.to_le_bytes());
        crafted.push(kind::DROP);
    }
    crafted.resize(crafted.len() + len as usize + 4, 0);
    // The default budget covers it: one stretch of damage.
    let (_, mut r) = open(&crafted).unwrap();
    assert_eq!(r.by_ref().count(), 0);
    assert!(
        matches!(r.damage(), [Damage::Corrupt { offset, .. }, Damage::NoEnd { .. }] if *offset == body as u64),
        "{:?}",
        r.damage()
    );
    // A small budget runs out, and the reader says it gave up.
    let (_, mut r) = open(&crafted).unwrap();
    r.set_resync_budget(10 << 20);
    assert_eq!(r.by_ref().count(), 0);
    let [Damage::Corrupt { why, .. }, Damage::NoEnd { .. }] = r.damage() else {
        panic!("{:?}", r.damage())
    };
    assert!(why.contains("gave up"), "{why}");
}

/// Namespace cookies travel beside the records (kinds 11-14); recordings made
/// before them (kinds 2, 4, 7) still read, with cookie 0.
#[test]
fn namespace_cookies_round_trip_and_old_kinds_still_read() {
    use crate::snapshot::NetnsSnapshot;
    let decode_one = |buf: &BytesMut| -> (u8, Entry) {
        let kind = buf[8];
        let payload = &buf[FRAME_HEAD..buf.len() - FRAME_TAIL];
        (kind, Entry::decode(kind, payload).unwrap().unwrap())
    };
    // New: the cookie survives.
    let Entry::Drop(mut d) = drop_entry(1) else {
        unreachable!()
    };
    d.rec.netns_cookie = 4711;
    let mut buf = BytesMut::new();
    Entry::Drop(d.clone()).encode(&mut buf);
    let (kind, back) = decode_one(&buf);
    assert_eq!(kind, format::kind::DROP_ID);
    assert_eq!(back, Entry::Drop(d.clone()));

    // Old kind 2 (the DropEntry alone): cookie 0, everything else intact.
    let mut old = BytesMut::new();
    frame(
        format::kind::DROP,
        &postcard::to_stdvec(&*d).unwrap(),
        &mut old,
    );
    let (_, Entry::Drop(o)) = decode_one(&old) else {
        panic!("old drop frame")
    };
    assert_eq!(o.rec.netns_cookie, 0);
    assert_eq!(o.netns_name, d.netns_name);
    assert_eq!(o.rec.packet, d.rec.packet);

    // Snapshots keep each namespace's cookie; old kind 7 reads with 0.
    let ns = |inode, cookie| NetnsSnapshot {
        inode,
        cookie,
        name: Some(format!("ns-{cookie}")),
        ..Default::default()
    };
    let mut snap = Snapshot {
        at_s: 2.0,
        netns: vec![ns(4026532300, 11), ns(4026532300, 12)],
        ..Default::default()
    };
    // What the causes declare is recorded beside the snapshot (kind 15).
    snap.counters.insert("softnet_stat:dropped".into(), 7);
    snap.knobs.insert("net.core.rmem_max".into(), 212992);
    snap.netns[1].counters.insert("Udp:RcvbufErrors".into(), 3);
    snap.netns[1]
        .knobs
        .insert("net.ipv4.tcp_timestamps".into(), 1);
    snap.netns[1]
        .dev_details
        .insert("veth0".into(), vec![("qdisc".into(), "tbf".into())]);
    let mut buf = BytesMut::new();
    Entry::Snapshot(Box::new(snap.clone())).encode(&mut buf);
    let (kind, back) = decode_one(&buf);
    assert_eq!(kind, format::kind::SNAPSHOT_ID);
    assert_eq!(back, Entry::Snapshot(Box::new(snap.clone())));
    // A snapshot of kind 13 (before the registry) reads, without them.
    let mut old13 = BytesMut::new();
    frame(
        format::kind::SNAPSHOT_NS,
        &postcard::to_stdvec(&format::SnapshotNs {
            snap: &snap,
            cookies: vec![11, 12],
        })
        .unwrap(),
        &mut old13,
    );
    let (_, Entry::Snapshot(o)) = decode_one(&old13) else {
        panic!("kind 13 snapshot frame")
    };
    assert_eq!(o.netns[1].cookie, 12);
    assert!(o.counters.is_empty() && o.netns[1].counters.is_empty());
    let mut old = BytesMut::new();
    frame(
        format::kind::SNAPSHOT,
        &postcard::to_stdvec(&snap).unwrap(),
        &mut old,
    );
    let (_, Entry::Snapshot(o)) = decode_one(&old) else {
        panic!("old snapshot frame")
    };
    assert!(o.netns.iter().all(|n| n.cookie == 0));

    // One namespace read on its drops.
    let mut one = ns(4026532301, 13);
    one.counters.insert("TcpExt:PAWSEstab".into(), 9);
    let entry = NetnsEntry::new(0.25, &one);
    let mut buf = BytesMut::new();
    Entry::Netns(Box::new(entry.clone())).encode(&mut buf);
    let (kind, back) = decode_one(&buf);
    assert_eq!(kind, format::kind::NETNS_ID);
    let Entry::Netns(n) = back else {
        panic!("netns frame")
    };
    assert_eq!((n.at_s, n.ns.cookie, n.ns.inode), (0.25, 13, 4026532301));
    assert_eq!(n.ns.counters.get("TcpExt:PAWSEstab"), Some(&9));
    // Kind 14 (before the registry) still reads.
    let mut old14 = BytesMut::new();
    frame(
        format::kind::NETNS,
        &postcard::to_stdvec(&entry).unwrap(),
        &mut old14,
    );
    let (_, Entry::Netns(o)) = decode_one(&old14) else {
        panic!("kind 14 netns frame")
    };
    assert_eq!(o.ns.cookie, 13);
    assert!(o.ns.counters.is_empty());
}

/// Containers and pods are recorded beside the drop, the refused SYN, the
/// snapshot and the namespace read (kinds 17–20); the kinds before them
/// (11, 12, 15, 16) still read, without them.
#[test]
fn identities_round_trip_and_older_kinds_still_read() {
    use crate::{
        container::{Identity, Runtime},
        owner::Owner,
        snapshot::NetnsSnapshot,
    };
    let decode_one = |buf: &BytesMut| -> (u8, Entry) {
        let kind = buf[8];
        let payload = &buf[FRAME_HEAD..buf.len() - FRAME_TAIL];
        (kind, Entry::decode(kind, payload).unwrap().unwrap())
    };
    let pod = Identity {
        runtime: Runtime::Containerd,
        container_id: "ab".repeat(32),
        container_name: Some("app".into()),
        pod_name: Some("web-1".into()),
        pod_namespace: Some("prod".into()),
        pod_uid: Some("6f4b5c1e-0d1a-4a2b-9c3d-1e2f3a4b5c6d".into()),
    };
    let sandbox = Identity {
        container_name: None,
        container_id: "cd".repeat(32),
        ..pod.clone()
    };
    let Entry::Drop(mut d) = drop_entry(1) else {
        unreachable!()
    };
    d.owner = Some(Owner {
        pid: 42,
        comm: "app".into(),
        container: Some(pod.short_id().into()),
        identity: Some(pod.clone()),
    });
    d.netns_identity = Some(sandbox.clone());
    let mut buf = BytesMut::new();
    Entry::Drop(d.clone()).encode(&mut buf);
    let (kind, back) = decode_one(&buf);
    assert_eq!(kind, format::kind::DROP_ID);
    assert_eq!(back, Entry::Drop(d.clone()));

    // Kind 11 (before identities): the same drop, without them.
    let mut old = BytesMut::new();
    frame(
        format::kind::DROP_NS,
        &postcard::to_stdvec(&format::Tagged {
            entry: &*d,
            netns_cookie: 7,
        })
        .unwrap(),
        &mut old,
    );
    let (_, Entry::Drop(o)) = decode_one(&old) else {
        panic!("kind 11 drop frame")
    };
    assert_eq!(
        o.owner.as_ref().map(|o| (o.pid, o.identity.is_none())),
        Some((42, true))
    );
    assert_eq!((o.netns_identity.as_ref(), o.rec.netns_cookie), (None, 7));

    let snap = Snapshot {
        netns: vec![
            NetnsSnapshot {
                inode: 1,
                identity: Some(sandbox.clone()),
                ..Default::default()
            },
            NetnsSnapshot {
                inode: 2,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    Entry::Snapshot(Box::new(snap.clone())).encode(&mut buf);
    let (kind, back) = decode_one(&buf);
    assert_eq!(kind, format::kind::SNAPSHOT_ID);
    assert_eq!(back, Entry::Snapshot(Box::new(snap.clone())));

    let entry = NetnsEntry::new(0.5, &snap.netns[0]);
    let mut buf = BytesMut::new();
    Entry::Netns(Box::new(entry.clone())).encode(&mut buf);
    let (kind, Entry::Netns(n)) = decode_one(&buf) else {
        panic!("netns frame")
    };
    assert_eq!(kind, format::kind::NETNS_ID);
    assert_eq!(n.ns.identity.as_ref(), Some(&sandbox));
}

/// Recordings written before namespace cookies (the fuzz seeds were) replay
/// whole: every frame decodes, nothing is reported damaged.
#[test]
fn recordings_from_before_cookies_still_read() {
    let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/recording");
    let mut read = 0;
    for f in std::fs::read_dir(seeds).unwrap() {
        let path = f.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let (_, mut r) = open(&data).unwrap();
        let entries: Vec<Entry> = r.by_ref().map(|(_, e)| e).collect();
        let intact = r.damage().iter().all(|d| matches!(d, Damage::NoEnd { .. }));
        assert!(intact, "{}: {:?}", path.display(), r.damage());
        if entries.iter().any(|e| matches!(e, Entry::Drop(_))) {
            read += 1;
        }
    }
    assert!(read > 0, "no seed with drops in {seeds}");
}

/// Recordings made before the cause registry (the fuzz seeds were written
/// before namespace cookies, long before it) replay through today's
/// dispatch: their drops are classified by today's registry from the reason
/// names they carry, and the totals add up.
#[test]
fn recordings_from_before_the_registry_replay() {
    let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/recording");
    let mut replayed = 0;
    for f in std::fs::read_dir(seeds).unwrap() {
        let path = f.unwrap().path();
        let opts = crate::replay::ReplayOptions {
            path: path.clone(),
            view: crate::replay::View::Report,
            output: crate::watch::Output::Json,
            realtime: false,
            interval: 5.0,
            screen: None,
            lines_per_sec: 0.0,
            hgrm: None,
            pcap: None,
            style: crate::style::Style::plain(),
        };
        let (report, _) = crate::replay::replay(&opts, &mut crate::sink::null::NullSink).unwrap();
        let t = &report.totals;
        let by_cause: u64 = t.causes.values().sum();
        assert_eq!(by_cause, t.total_drops, "{}", path.display());
        for name in t.causes.keys() {
            assert!(crate::causes::by_name(name).is_some(), "{name}");
        }
        if t.total_drops > 0 {
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no seed with drops in {seeds}");
}
