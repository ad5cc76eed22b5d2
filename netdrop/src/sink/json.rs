//! JSON lines: one object per drop, per refused neighbour, the running totals
//! every interval ("tick") and a summary at the end.

use std::io::{self, Write};

use serde::Serialize;

use super::{Session, Sink};
use crate::{
    container::{Identity, Labels},
    decode::{ListenRecord, NeighRecord},
    event::DropView,
    owner::Owner,
    summary::Summary,
};

pub struct JsonSink<W: Write> {
    out: W,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> Self {
        JsonSink { out }
    }

    fn line<T: Serialize>(&mut self, v: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, v)?;
        self.out.write_all(b"\n")
    }
}

#[derive(Serialize)]
pub struct DropLine<'a> {
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub ts: f64,
    pub cause: &'static str,
    pub reason: &'a str,
    pub location: &'a str,
    pub netns: u32,
    /// The kernel's namespace cookie (never reused, unlike the inode), or the
    /// generation netdrop gave the inode where the kernel has none (high bit set).
    pub netns_cookie: u64,
    /// `ip netns` name or `container:<id>`, when the namespace has one.
    pub netns_name: Option<&'a str>,
    /// The container or pod living in the namespace (`pod`, `pod_namespace`,
    /// `container`, `container_name`), null if none.
    pub netns_identity: Option<Labels>,
    pub ifindex: u32,
    pub dev: &'a str,
    pub protocol: u16,
    pub saddr: Option<String>,
    pub daddr: Option<String>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub l4: Option<&'static str>,
    /// The task running when the skb was freed (not necessarily the packet's owner).
    pub pid: u32,
    pub comm: &'a str,
    /// The process owning the drop's socket (null: no socket, or already closed).
    pub owner: Option<OwnerLine<'a>>,
    /// Which socket: "skb" (the packet's own) or "rx_sk" (the receiving one, e.g. a listener).
    pub socket: Option<&'static str>,
    pub socket_ino: Option<u64>,
    pub uid: Option<u32>,
    /// Under `--pid`: "process" (a socket of the process) or "netns" (a drop with
    /// no socket in the process's namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'static str>,
    /// When the drop's socket is a listener: its accept queue and limit at the drop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_queue: Option<[u32; 2]>,
    /// Whose drop: the owner's container or pod, else the namespace's.
    #[serde(flatten)]
    pub labels: Labels,
}

/// A socket owner: `pid`, `comm`, `container` (12-digit id) and the names of
/// its container and pod.
#[derive(Serialize)]
pub struct OwnerLine<'a> {
    pub pid: u32,
    pub comm: &'a str,
    #[serde(flatten)]
    pub labels: Labels,
}

impl<'a> OwnerLine<'a> {
    pub fn new(o: &'a Owner) -> OwnerLine<'a> {
        let mut labels = Labels::of(o.identity());
        labels.container = labels.container.or_else(|| o.container.clone());
        OwnerLine {
            pid: o.pid,
            comm: &o.comm,
            labels,
        }
    }
}

impl<'a> DropLine<'a> {
    pub fn new(ev: &'a DropView<'a>) -> Self {
        let p = ev.rec.packet.as_ref();
        DropLine {
            ty: "drop",
            ts: ev.ts,
            cause: ev.cause.as_str(),
            reason: &ev.reason,
            location: &ev.location,
            netns: ev.rec.netns,
            netns_cookie: ev.rec.netns_cookie,
            netns_name: ev.netns_name.as_deref(),
            netns_identity: ev.netns_identity.as_ref().map(Identity::labels),
            ifindex: ev.rec.ifindex,
            dev: &ev.rec.dev,
            protocol: ev.rec.protocol,
            saddr: p.map(|p| p.saddr.to_string()),
            daddr: p.map(|p| p.daddr.to_string()),
            sport: p.and_then(|p| p.sport),
            dport: p.and_then(|p| p.dport),
            l4: p.and_then(|p| p.l4_name()),
            pid: ev.rec.pid,
            comm: &ev.rec.comm,
            owner: ev.owner.as_ref().map(OwnerLine::new),
            socket: match ev.rec.owner_src {
                netdrop_common::owner_src::SKB_SK => Some("skb"),
                netdrop_common::owner_src::RX_SK => Some("rx_sk"),
                _ => None,
            },
            socket_ino: (ev.rec.owner_ino != 0).then_some(ev.rec.owner_ino),
            uid: (ev.rec.owner_ino != 0).then_some(ev.rec.owner_uid),
            scope: match ev.rec.scope {
                netdrop_common::scope::PROCESS => Some("process"),
                netdrop_common::scope::NETNS => Some("netns"),
                _ => None,
            },
            accept_queue: ev.rec.accept_queue.map(|(q, l)| [q, l]),
            labels: Labels::of(ev.identity()),
        }
    }
}

#[derive(Serialize)]
struct NeighLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    ts: f64,
    cause: &'static str,
    entries: i32,
    dev: &'a str,
    addr: Option<String>,
    family: u32,
    pid: u32,
    comm: &'a str,
}

/// A SYN refused by a full accept queue: no kernel drop reason exists for it, so
/// netdrop names it LISTEN_OVERFLOW_SYN.
#[derive(Serialize)]
struct ListenLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    ts: f64,
    cause: &'static str,
    reason: &'static str,
    location: &'static str,
    netns: u32,
    netns_cookie: u64,
    listener: String,
    dport: u16,
    accept_queue: u32,
    backlog: u32,
    pid: u32,
    comm: &'a str,
    /// The listener's owner.
    owner: Option<OwnerLine<'a>>,
    socket: &'static str,
}

#[derive(Serialize)]
struct SummaryLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(flatten)]
    summary: &'a Summary,
    events_read: u64,
    undecodable: u64,
    duration_s: f64,
}

impl<W: Write> Sink for JsonSink<W> {
    fn on_drop(&mut self, ev: &DropView<'_>) -> io::Result<()> {
        self.line(&DropLine::new(ev))
    }

    fn on_neigh_fail(&mut self, rec: &NeighRecord, ts: f64) -> io::Result<()> {
        self.line(&NeighLine {
            ty: "neigh_create_failed",
            ts,
            cause: "neigh_table_overflow",
            entries: rec.entries,
            dev: &rec.dev,
            addr: rec.addr.map(|a| a.to_string()),
            family: rec.family,
            pid: rec.pid,
            comm: &rec.comm,
        })
    }

    fn on_listen_drop(
        &mut self,
        rec: &ListenRecord,
        owner: Option<&crate::owner::Owner>,
        ts: f64,
    ) -> io::Result<()> {
        self.line(&ListenLine {
            ty: "drop",
            ts,
            cause: "accept_queue_full",
            reason: "LISTEN_OVERFLOW_SYN",
            location: "tcp_conn_request",
            netns: rec.netns,
            netns_cookie: rec.netns_cookie,
            listener: format!("{}:{}", rec.addr, rec.port),
            dport: rec.port,
            accept_queue: rec.ack_backlog,
            backlog: rec.max_ack_backlog,
            pid: rec.pid,
            comm: &rec.comm,
            owner: owner.map(OwnerLine::new),
            socket: "listener",
        })
    }

    /// The running totals every `--interval`, as the final summary but typed "tick".
    fn tick(&mut self, summary: &Summary, session: &Session) -> io::Result<()> {
        self.line(&SummaryLine {
            ty: "tick",
            summary,
            events_read: session.events_read,
            undecodable: session.undecodable,
            duration_s: session.duration_s,
        })?;
        self.out.flush()
    }

    fn on_report(&mut self, report: &crate::diagnose::Report) -> io::Result<()> {
        #[derive(Serialize)]
        struct ReportLine<'a> {
            #[serde(rename = "type")]
            ty: &'static str,
            #[serde(flatten)]
            report: &'a crate::diagnose::Report,
        }
        self.line(&ReportLine {
            ty: "diagnosis",
            report,
        })
    }

    fn finish(&mut self, summary: &Summary, session: &Session) -> io::Result<()> {
        self.line(&SummaryLine {
            ty: "summary",
            summary,
            events_read: session.events_read,
            undecodable: session.undecodable,
            duration_s: session.duration_s,
        })?;
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
