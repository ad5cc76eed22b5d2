//! How fast a recording is written: encodes and writes N drop records (the
//! size `watch` produces, owner and location included) through the recorder's
//! bounded queue, as the live session does, and reports the rate and how many
//! were left out. Not a test: it asserts nothing.
//!
//!     cargo run --release -p netdrop --example record_throughput -- [N] [DIR]

use std::time::Instant;

use netdrop::{
    decode::{DropRecord, Packet},
    owner::Owner,
    record::{
        EndEntry, Recorder,
        format::{DropEntryRef, kind},
    },
};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = args
        .next()
        .unwrap_or_else(|| std::env::temp_dir().display().to_string());
    let path = std::path::Path::new(&dir).join(format!("nd-throughput-{}.ndr", std::process::id()));
    let mut rec = DropRecord {
        ts_ns: 0,
        reason: 59,
        location: 0xffff_ffff_8100_0000,
        skbaddr: 0xffff_8880_0000_0000,
        sk: 0xffff_8880_1000_0000,
        rx_sk: 0,
        netns: 4026532177,
        netns_cookie: 0,
        ifindex: 6,
        dev: "veth-a".into(),
        protocol: 0x0800,
        pid: 4242,
        comm: "curl".into(),
        packet: Some(Packet {
            saddr: "198.18.1.1".parse()?,
            daddr: "198.18.1.99".parse()?,
            l4: 6,
            sport: Some(40000),
            dport: Some(443),
        }),
        owner_ino: 88112,
        owner_uid: 1000,
        owner_src: 1,
        scope: 0,
        owner_tgid: 4242,
        accept_queue: None,
        bytes: Vec::new(),
        pkt_len: 60,
    };
    let owner = Owner {
        pid: 4242,
        comm: "curl".into(),
        container: None,
        identity: None,
    };
    let mut recorder = Recorder::create(&path)?;
    let started = Instant::now();
    for i in 0..n {
        rec.ts_ns = i * 1000;
        let e = DropEntryRef {
            rec: &rec,
            location: "__neigh_event_send+0x1b8",
            owner: Some(&owner),
            netns_name: Some("ndt-a"),
        };
        recorder.event(kind::DROP, &e, i as f64 / 1e6)?;
    }
    let lost = recorder.lost();
    let stats = recorder.finish(EndEntry {
        session: netdrop::record::format::SessionEntry {
            duration_s: 0.0,
            events_read: n,
            undecodable: 0,
        },
        lost: Default::default(),
    })?;
    let secs = started.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    println!(
        "{n} drops in {secs:.3} s: {:.0} drops/s written, {:.1} MiB/s, {:.0} bytes/drop, {} left out",
        (n - lost.drops) as f64 / secs,
        stats.bytes as f64 / secs / (1 << 20) as f64,
        stats.bytes as f64 / stats.frames.max(1) as f64,
        lost.drops
    );
    Ok(())
}
