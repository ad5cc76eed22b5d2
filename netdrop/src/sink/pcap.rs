//! `replay --pcap OUT.pcapng`: the recorded first bytes of each dropped packet
//! (`record --capture-bytes N`), from its network header, as pcapng for
//! Wireshark/tshark, with the drop's cause, reason, owner and kernel location
//! in each packet's comment.

use std::{
    fs::File,
    io::{self, BufWriter},
    path::{Path, PathBuf},
};

use super::{Session, Sink};
use crate::{event::DropView, pcapng::PcapngWriter, record::Header, summary::Summary};

pub struct PcapSink {
    path: PathBuf,
    w: Option<PcapngWriter<BufWriter<File>>>,
    /// Drops without captured bytes (recorded without --capture-bytes, or no
    /// network header).
    without_bytes: u64,
}

impl PcapSink {
    pub fn create(path: &Path) -> io::Result<PcapSink> {
        let file = File::create(path)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?;
        Ok(PcapSink {
            path: path.to_path_buf(),
            w: Some(PcapngWriter::new(
                BufWriter::new(file),
                concat!("netdrop ", env!("CARGO_PKG_VERSION")),
                "",
            )?),
            without_bytes: 0,
        })
    }
}

/// What a packet comment says: `cause=… reason=… location=… owner=… dev=… netns=…`.
pub fn comment(ev: &DropView<'_>) -> String {
    let mut c = format!(
        "netdrop: cause={} reason={} location={}",
        ev.cause.as_str(),
        ev.reason,
        ev.location
    );
    match &ev.owner {
        Some(o) => {
            c += &format!(" owner={}[{}]", o.comm, o.pid);
            if let Some(id) = &o.container {
                c += &format!(" container={id}");
            }
        }
        None => c += &format!(" task={}[{}]", ev.rec.comm, ev.rec.pid),
    }
    if !ev.rec.dev.is_empty() {
        c += &format!(" dev={}", ev.rec.dev);
    }
    c += &format!(" netns={}", ev.rec.netns);
    if let Some(n) = &ev.netns_name {
        c += &format!(" ({n})");
    }
    c
}

impl Sink for PcapSink {
    fn on_start(&mut self, header: &Header) -> io::Result<()> {
        if header.capture_bytes == 0 {
            eprintln!(
                "netdrop: note: this recording was made without --capture-bytes: it holds no packet bytes, the pcapng file will have no packets (record with --capture-bytes N)"
            );
        }
        Ok(())
    }

    fn on_drop(&mut self, ev: &DropView<'_>) -> io::Result<()> {
        let Some(w) = self.w.as_mut() else {
            return Ok(());
        };
        if ev.rec.bytes.is_empty() {
            self.without_bytes += 1;
            return Ok(());
        }
        let ts_ns = (ev.ts * 1e9).max(0.0) as u64;
        w.packet(ts_ns, &ev.rec.bytes, ev.rec.pkt_len, &comment(ev))
    }

    fn finish(&mut self, _: &Summary, _: &Session) -> io::Result<()> {
        let Some(w) = self.w.take() else {
            return Ok(());
        };
        let n = w.packets();
        w.finish()?;
        eprintln!(
            "netdrop: wrote {n} dropped packets to {}{}",
            self.path.display(),
            if self.without_bytes > 0 {
                format!(
                    " ({} drops had no packet bytes: no network header)",
                    self.without_bytes
                )
            } else {
                String::new()
            }
        );
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
