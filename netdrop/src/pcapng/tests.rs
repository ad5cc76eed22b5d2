use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;

/// One packet of the sample file.
struct Sample {
    ts: u64,
    data: Vec<u8>,
    orig_len: u32,
    comment: &'static str,
    src: &'static str,
}

/// IPv4 + UDP + `payload`, with a valid IPv4 header checksum.
fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let total = (20 + 8 + payload.len()) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0]; // DF, TTL 64, UDP
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum: u32 = p
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let sum = (sum & 0xffff) + (sum >> 16);
    p[10..12].copy_from_slice(&(!((sum & 0xffff) + (sum >> 16)) as u16).to_be_bytes());
    p.extend_from_slice(&40000u16.to_be_bytes()); // source port
    p.extend_from_slice(&53u16.to_be_bytes()); // destination port
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]); // no UDP checksum
    p.extend_from_slice(payload);
    p
}

/// IPv6 + a bare 20-byte TCP SYN.
fn ipv6_tcp_syn(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 20, 6, 64]; // payload 20, next header TCP, hop limit 64
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&51000u16.to_be_bytes()); // source port
    p.extend_from_slice(&443u16.to_be_bytes()); // destination port
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]); // seq 1, ack 0
    p.extend_from_slice(&[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]); // 5 words, SYN, window
    p
}

fn samples() -> Vec<Sample> {
    let udp = ipv4_udp(
        Ipv4Addr::new(192, 0, 2, 1),
        Ipv4Addr::new(198, 51, 100, 7),
        b"abc",
    );
    assert_eq!(udp.len() % 2, 1, "odd length exercises padding");
    vec![
        Sample {
            ts: 1_700_000_000_123_456_789,
            orig_len: udp.len() as u32,
            data: udp,
            comment: "cause=firewall reason=NETFILTER_DROP owner=dig[4242] at nf_hook_slow+0x10e → nft",
            src: "192.0.2.1",
        },
        Sample {
            ts: 1_700_000_001_000_000_001,
            data: ipv6_tcp_syn(
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            ),
            orig_len: 1500,
            comment: "cause=listen-overflow reason=TCP_OVERFLOW owner=nginx[77] at tcp_conn_request+0x2f",
            src: "2001:db8::1",
        },
    ]
}

fn write_samples() -> Vec<u8> {
    let mut w = PcapngWriter::new(Vec::new(), "netdrop 0.1.0", "Linux 6.1").unwrap();
    for s in samples() {
        w.packet(s.ts, &s.data, s.orig_len, s.comment).unwrap();
    }
    assert_eq!(w.packets(), 2);
    w.finish().unwrap()
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Splits a file into (block type, body), checking both total lengths.
fn blocks(mut file: &[u8]) -> Vec<(u32, &[u8])> {
    let mut out = Vec::new();
    while !file.is_empty() {
        let (kind, total) = (u32_at(file, 0), u32_at(file, 4) as usize);
        assert!(total >= 12 && total % 4 == 0, "block length {total}");
        assert_eq!(u32_at(file, total - 4) as usize, total, "trailing length");
        out.push((kind, &file[8..total - 4]));
        file = &file[total..];
    }
    out
}

/// Parses an option list, which must end with opt_endofopt exactly.
fn options(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    loop {
        let (code, len) = (u16_at(b, 0), u16_at(b, 2) as usize);
        if code == OPT_ENDOFOPT {
            assert_eq!((len, b.len()), (0, 4), "endofopt ends the block");
            return out;
        }
        out.push((code, &b[4..4 + len]));
        b = &b[4 + len.next_multiple_of(4)..];
    }
}

#[test]
fn blocks_round_trip() {
    let file = write_samples();
    let blocks = blocks(&file);
    assert_eq!(blocks.len(), 4);

    let (kind, shb) = blocks[0];
    assert_eq!(kind, BLOCK_SHB);
    assert_eq!(u32_at(shb, 0), 0x1A2B_3C4D);
    assert_eq!((u16_at(shb, 4), u16_at(shb, 6)), (1, 0));
    assert_eq!(i64::from_le_bytes(shb[8..16].try_into().unwrap()), -1);
    let opts = options(&shb[16..]);
    assert!(opts.contains(&(SHB_USERAPPL, b"netdrop 0.1.0".as_slice())));
    assert!(opts.contains(&(SHB_OS, b"Linux 6.1".as_slice())));

    let (kind, idb) = blocks[1];
    assert_eq!(kind, BLOCK_IDB);
    assert_eq!(u16_at(idb, 0), 101);
    assert_eq!(u32_at(idb, 4), 65535);
    let opts = options(&idb[8..]);
    assert!(opts.contains(&(IF_TSRESOL, [9u8].as_slice())));
    assert!(opts.contains(&(IF_NAME, b"netdrop".as_slice())));

    for ((kind, epb), s) in blocks[2..].iter().zip(samples()) {
        assert_eq!(*kind, BLOCK_EPB);
        assert_eq!(u32_at(epb, 0), 0, "interface id");
        let ts = (u64::from(u32_at(epb, 4)) << 32) | u64::from(u32_at(epb, 8));
        assert_eq!(ts, s.ts);
        let caplen = u32_at(epb, 12) as usize;
        assert_eq!(caplen, s.data.len());
        assert_eq!(u32_at(epb, 16), s.orig_len);
        assert_eq!(&epb[20..20 + caplen], s.data.as_slice());
        let opts = options(&epb[20 + caplen.next_multiple_of(4)..]);
        assert_eq!(opts, [(OPT_COMMENT, s.comment.as_bytes())]);
    }
}

#[test]
fn empty_comment_short_orig_len_and_long_comment() {
    let mut w = PcapngWriter::new(Vec::new(), "", "").unwrap();
    w.packet(5, &[0x45; 7], 3, "").unwrap(); // orig_len < caplen is raised
    let long = "é".repeat(40_000); // 80,000 bytes of 2-byte chars
    w.packet(6, &[0x45; 4], 4, &long).unwrap();
    let file = w.finish().unwrap();
    let blocks = blocks(&file);
    assert_eq!(blocks[0].1.len(), 16, "SHB without options");
    let epb = blocks[2].1;
    assert_eq!((u32_at(epb, 12), u32_at(epb, 16)), (7, 7));
    assert_eq!(epb.len(), 20 + 8, "no option list at all without a comment");
    let opts = options(&blocks[3].1[24..]);
    let comment = std::str::from_utf8(opts[0].1).expect("cut at a char boundary");
    assert_eq!(comment.len(), 65534);
    assert!(long.starts_with(comment));
}

#[test]
fn tshark_reads_comments_addresses_and_times() {
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!(
            "SKIP: tshark not installed (scripts/setup.sh installs it): pcapng not checked against tshark"
        );
        return;
    }
    let path =
        std::env::temp_dir().join(format!("netdrop-pcapng-test-{}.pcapng", std::process::id()));
    std::fs::write(&path, write_samples()).unwrap();
    let field = comment_field();
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args(["-T", "fields", "-e", field])
        .args(["-e", "ip.src", "-e", "ipv6.src", "-e", "frame.time_epoch"])
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (line, s) in lines.iter().zip(samples()) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 4, "{line}");
        assert_eq!(fields[0], s.comment);
        assert!(fields[1] == s.src || fields[2] == s.src, "{line}");
        let epoch = format!("{}.{:09}", s.ts / 1_000_000_000, s.ts % 1_000_000_000);
        assert_eq!(fields[3], epoch);
    }
}

/// The packet comment field of this tshark: `frame.comment` (Wireshark 4.x and
/// most older ones) or `pkt_comment`. Picked from the registered fields, as
/// tshark 4 also accepts `-e pkt_comment` (a protocol) but prints its name.
fn comment_field() -> &'static str {
    let out = Command::new("tshark")
        .args(["-G", "fields"])
        .output()
        .unwrap();
    let fields = String::from_utf8_lossy(&out.stdout);
    ["frame.comment", "pkt_comment"]
        .into_iter()
        .find(|name| {
            fields
                .lines()
                .any(|l| l.starts_with("F\t") && l.split('\t').nth(2) == Some(name))
        })
        .expect("tshark registers a packet comment field")
}
