//! A minimal pcapng writer (no dependencies) for `netdrop replay --pcap`.
//!
//! Writes one little-endian section: a Section Header Block, one Interface
//! Description Block (`LINKTYPE_RAW`: packets start at the IPv4/IPv6 header,
//! nanosecond timestamps) and one Enhanced Packet Block per packet, whose
//! comment carries the drop's cause, reason, owner and kernel location.
//! Wireshark and tshark open the result. Format: draft-ietf-opsawg-pcapng,
//! <https://ietf-opsawg-wg.github.io/draft-ietf-opsawg-pcap/draft-ietf-opsawg-pcapng.html>.

use std::io::{self, Write};

const BLOCK_SHB: u32 = 0x0A0D_0D0A;
const BLOCK_IDB: u32 = 0x0000_0001;
const BLOCK_EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

/// Link type of the single interface: raw IPv4/IPv6, no link-layer header.
pub const LINKTYPE_RAW: u16 = 101;
/// Snapshot length declared for the interface; longer captured data is cut.
pub const SNAPLEN: u32 = 65535;

const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const IF_NAME: u16 = 2;
const SHB_OS: u16 = 3;
const SHB_USERAPPL: u16 = 4;
const IF_TSRESOL: u16 = 9;

/// Writes a pcapng stream of raw IP packets to `W`.
pub struct PcapngWriter<W: Write> {
    w: W,
    packets: u64,
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the Section Header Block (with shb_userappl = `app`, e.g.
    /// "netdrop 0.1.0", and shb_os = `os`; each only when non-empty) and one
    /// Interface Description Block: `LINKTYPE_RAW` (101: packets start at the
    /// IPv4/IPv6 header), snaplen 65535, if_tsresol = 9 (nanoseconds),
    /// if_name "netdrop".
    pub fn new(mut w: W, app: &str, os: &str) -> io::Result<Self> {
        let mut shb = Vec::new();
        put_u32(&mut shb, BYTE_ORDER_MAGIC);
        put_u16(&mut shb, 1); // major version
        put_u16(&mut shb, 0); // minor version
        shb.extend_from_slice(&(-1i64).to_le_bytes()); // section length: unknown
        let mut opts = Options::default();
        opts.text(SHB_USERAPPL, app);
        opts.text(SHB_OS, os);
        opts.finish_into(&mut shb);
        write_block(&mut w, BLOCK_SHB, &shb)?;

        let mut idb = Vec::new();
        put_u16(&mut idb, LINKTYPE_RAW);
        put_u16(&mut idb, 0); // reserved
        put_u32(&mut idb, SNAPLEN);
        let mut opts = Options::default();
        opts.text(IF_NAME, "netdrop");
        opts.add(IF_TSRESOL, &[9]); // 10^-9 s
        opts.finish_into(&mut idb);
        write_block(&mut w, BLOCK_IDB, &idb)?;

        Ok(Self { w, packets: 0 })
    }

    /// One Enhanced Packet Block: interface 0, timestamp `ts_unix_ns` (ns
    /// since the Unix epoch, split hi/lo 32 bits), captured `data` (cut to
    /// [`SNAPLEN`], padded to 4 bytes), original length `orig_len` (raised to
    /// `data.len()` if smaller), and an opt_comment option holding `comment`
    /// (UTF-8, truncated at a character boundary to fit the u16 option
    /// length) when non-empty, then opt_endofopt.
    pub fn packet(
        &mut self,
        ts_unix_ns: u64,
        data: &[u8],
        orig_len: u32,
        comment: &str,
    ) -> io::Result<()> {
        let orig_len = orig_len.max(u32::try_from(data.len()).unwrap_or(u32::MAX));
        let data = &data[..data.len().min(SNAPLEN as usize)];
        let mut epb = Vec::with_capacity(32 + data.len() + comment.len());
        put_u32(&mut epb, 0); // interface id
        put_u32(&mut epb, (ts_unix_ns >> 32) as u32);
        put_u32(&mut epb, ts_unix_ns as u32);
        put_u32(&mut epb, data.len() as u32);
        put_u32(&mut epb, orig_len);
        epb.extend_from_slice(data);
        pad4(&mut epb);
        let mut opts = Options::default();
        opts.text(OPT_COMMENT, comment);
        opts.finish_into(&mut epb);
        write_block(&mut self.w, BLOCK_EPB, &epb)?;
        self.packets += 1;
        Ok(())
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// An option list being built; empty lists are omitted (no lone endofopt).
#[derive(Default)]
struct Options(Vec<u8>);

impl Options {
    /// Adds `value` (truncated at a UTF-8 boundary to fit) unless it is empty.
    fn text(&mut self, code: u16, value: &str) {
        if !value.is_empty() {
            self.add(code, truncate_utf8(value, u16::MAX as usize).as_bytes());
        }
    }

    /// Adds one option: code, length, value padded to 4 bytes.
    fn add(&mut self, code: u16, value: &[u8]) {
        put_u16(&mut self.0, code);
        put_u16(&mut self.0, value.len() as u16);
        self.0.extend_from_slice(value);
        pad4(&mut self.0);
    }

    /// Appends the options and their opt_endofopt to `body`, if any were added.
    fn finish_into(mut self, body: &mut Vec<u8>) {
        if !self.0.is_empty() {
            put_u16(&mut self.0, OPT_ENDOFOPT);
            put_u16(&mut self.0, 0);
            body.extend_from_slice(&self.0);
        }
    }
}

/// Writes a block: type, total length, `body` (already 4-byte aligned), total length.
fn write_block(w: &mut impl Write, block_type: u32, body: &[u8]) -> io::Result<()> {
    debug_assert_eq!(body.len() % 4, 0);
    let total = u32::try_from(12 + body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng block too long"))?;
    let mut block = Vec::with_capacity(total as usize);
    put_u32(&mut block, block_type);
    put_u32(&mut block, total);
    block.extend_from_slice(body);
    put_u32(&mut block, total);
    w.write_all(&block)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn pad4(buf: &mut Vec<u8>) {
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests;
