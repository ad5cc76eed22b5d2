//! The recording file format: a fixed preamble, then checked frames.
//!
//! ```text
//! file     = preamble frame*
//! preamble = "NDREC\r\n\x1a"  version:u32le  flags:u32le            (16 bytes)
//! frame    = "ndr\xfe"  len:u32le  kind:u8  payload[len]  crc:u32le
//!            crc = CRC-32 (IEEE) of len, kind and payload
//! ```
//!
//! The first frame is always a [`Header`]. Payloads are postcard (compact serde)
//! encodings of the types below, one type per kind. The sync word lets a reader
//! find the next frame after damage; the checksum tells a whole frame from a torn
//! or altered one. A writer killed mid-frame leaves a file whose last frame is
//! incomplete: every frame before it is intact.

mod counters;

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, BytesMut};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    container::Identity,
    decode::{DropRecord, ListenRecord, NeighRecord, NeighStateRecord},
    diagnose::report::Hooks,
    kernel::reasons::ReasonTable,
    owner::Owner,
    snapshot::{Declared, NetnsSnapshot, Snapshot},
    summary::Naming,
};

pub const MAGIC: [u8; 8] = *b"NDREC\r\n\x1a";
/// The format this netdrop writes, and the newest it reads.
pub const VERSION: u32 = 1;
pub const PREAMBLE_LEN: usize = 16;
pub const SYNC: [u8; 4] = *b"ndr\xfe";
/// sync + len + kind.
pub const FRAME_HEAD: usize = 9;
pub const FRAME_TAIL: usize = 4;
/// Larger lengths are damage, not data (a snapshot of a huge neighbour table is
/// a few MiB).
pub const MAX_PAYLOAD: u32 = 64 << 20;

/// Frame kinds. A reader skips kinds it does not know (written by a newer
/// netdrop of the same format version) and says so.
pub mod kind {
    pub const HEADER: u8 = 1;
    pub const DROP: u8 = 2;
    pub const NEIGH_FAIL: u8 = 3;
    pub const LISTEN_DROP: u8 = 4;
    pub const NEIGH_STATE: u8 = 5;
    /// Counters as written before the kernel's event limit (no `sent`); read only.
    pub const COUNTERS_V1: u8 = 6;
    pub const SNAPSHOT: u8 = 7;
    pub const LOST: u8 = 8;
    pub const END: u8 = 9;
    /// Counters with the events sent per reason (what the event limit held back
    /// is the rest).
    pub const COUNTERS: u8 = 10;
    /// A drop with its namespace's identity cookie ([`Tagged`] [`DropEntry`]);
    /// DROP (kind 2, before cookies) is still read, with cookie 0.
    pub const DROP_NS: u8 = 11;
    /// A refused SYN with its namespace cookie; LISTEN_DROP (4) still read.
    pub const LISTEN_DROP_NS: u8 = 12;
    /// A snapshot with its namespaces' cookies ([`SnapshotNs`]); SNAPSHOT (7)
    /// still read.
    pub const SNAPSHOT_NS: u8 = 13;
    /// One namespace read when netdrop saw drops in it ([`NetnsEntry`]).
    pub const NETNS: u8 = 14;
    /// A snapshot with its cookies and what it read for the causes'
    /// declarations ([`SnapshotDecl`]); SNAPSHOT_NS (13) still read.
    pub const SNAPSHOT_DECL: u8 = 15;
    /// A namespace read with what it read for the causes' declarations
    /// ([`NetnsDecl`]); NETNS (14) still read.
    pub const NETNS_DECL: u8 = 16;
    /// A drop (DROP_NS's payload) with its owner's and its namespace's
    /// container or pod ([`Identified`]); DROP_NS (11) still read.
    pub const DROP_ID: u8 = 17;
    /// A refused SYN (LISTEN_DROP_NS's payload) with its owner's container or
    /// pod; LISTEN_DROP_NS (12) still read.
    pub const LISTEN_DROP_ID: u8 = 18;
    /// A snapshot (SNAPSHOT_DECL's payload) with its namespaces' containers or
    /// pods ([`SnapshotIds`]); SNAPSHOT_DECL (15) still read.
    pub const SNAPSHOT_ID: u8 = 19;
    /// A namespace read (NETNS_DECL's payload) with its container or pod;
    /// NETNS_DECL (16) still read.
    pub const NETNS_ID: u8 = 20;
}

/// An entry with the containers or pods it names ([`Owner::identity`] and its
/// namespace's), kept out of the entries' own serialized form so older kinds
/// still decode. `I` is `Option<Identity>` (or a reference to one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identified<T, I> {
    pub entry: T,
    pub owner: I,
    pub netns: I,
}

/// [`kind::SNAPSHOT_ID`]: a snapshot and, in the order of its namespaces,
/// their containers or pods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotIds<S, I> {
    pub snap: S,
    pub netns: Vec<I>,
}

/// [`kind::SNAPSHOT_DECL`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDecl<S> {
    pub snap: SnapshotNs<S>,
    pub counters: BTreeMap<String, u64>,
    pub knobs: BTreeMap<String, i64>,
    /// In the order of `snap.netns`.
    pub netns: Vec<Declared>,
}

/// [`kind::NETNS_DECL`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetnsDecl<N> {
    pub entry: N,
    pub decl: Declared,
}

/// An entry with the identity cookie of its namespace (the records keep the
/// cookie out of their own serialized form, so older kinds still decode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tagged<T> {
    pub entry: T,
    pub netns_cookie: u64,
}

/// [`kind::SNAPSHOT_NS`]: a snapshot and, in the order of `snap.netns`, the
/// namespaces' identity cookies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotNs<S> {
    pub snap: S,
    pub cookies: Vec<u64>,
}

/// [`kind::NETNS`]: one namespace, read at `at_s` (seconds since the start)
/// because drops were seen in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetnsEntry {
    pub at_s: f64,
    pub ns: NetnsSnapshot,
    pub netns_cookie: u64,
}

impl NetnsEntry {
    pub fn new(at_s: f64, ns: &NetnsSnapshot) -> NetnsEntry {
        NetnsEntry {
            at_s,
            ns: ns.clone(),
            netns_cookie: ns.cookie,
        }
    }
}

/// What makes a recording self-describing: it replays on a machine with another
/// kernel (reason numbers differ between kernels) and without /proc access to
/// the recorded one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub netdrop_version: String,
    pub kernel_release: String,
    pub hostname: String,
    /// Unix seconds the recorded machine booted at.
    pub boot_time: u64,
    /// Unix time the recording started.
    pub start_unix: f64,
    /// CLOCK_MONOTONIC at start, ns: the kernel's event timestamps are on this clock.
    pub start_mono_ns: u64,
    /// CLOCK_REALTIME - CLOCK_MONOTONIC at start, ns.
    pub clock_offset_ns: i64,
    /// The running kernel's `skb_drop_reason` values and names.
    pub reasons: Vec<(u32, String)>,
    /// False on kernels before 5.17 (no reason field).
    pub has_reason_field: bool,
    pub hooks: Hooks,
    /// The command line's filters, as the user gave them (already applied).
    pub filters: Vec<String>,
    /// Packet bytes kept per drop (0: none).
    pub capture_bytes: u32,
    /// Seconds between counter records.
    pub counter_interval_s: f64,
}

impl Header {
    /// Reason names as the recorded kernel had them.
    pub fn naming(&self) -> Naming {
        Naming {
            reasons: ReasonTable::from_pairs(self.reasons.iter().map(|(v, n)| (n.clone(), *v))),
            has_reason_field: self.has_reason_field,
        }
    }
}

/// A drop as `watch` saw it: the decoded record plus what the agent resolved on
/// the recording machine (the replaying one cannot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropEntry {
    pub rec: DropRecord,
    pub location: String,
    pub owner: Option<Owner>,
    pub netns_name: Option<String>,
    /// The namespace's container or pod (recorded beside: [`kind::DROP_ID`]).
    #[serde(skip)]
    pub netns_identity: Option<Identity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenEntry {
    pub rec: ListenRecord,
    pub owner: Option<Owner>,
}

/// The kernel's exact counters at one moment: non-zero slots only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountersEntry {
    /// Seconds since the start.
    pub at_s: f64,
    pub drops: Vec<(u32, u64)>,
    pub lost: Vec<(u32, u64)>,
    pub stats: Vec<u64>,
    pub session: SessionEntry,
    /// Detail events sent per reason; `None` in recordings made before the
    /// event limit (every drop not lost was sent then).
    pub sent: Option<Vec<(u32, u64)>>,
}

/// [`kind::COUNTERS_V1`]: [`CountersEntry`] without `sent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CountersEntryV1 {
    pub at_s: f64,
    pub drops: Vec<(u32, u64)>,
    pub lost: Vec<(u32, u64)>,
    pub stats: Vec<u64>,
    pub session: SessionEntry,
}

impl From<CountersEntryV1> for Box<CountersEntry> {
    fn from(v: CountersEntryV1) -> Self {
        Box::new(CountersEntry {
            at_s: v.at_s,
            drops: v.drops,
            lost: v.lost,
            stats: v.stats,
            session: v.session,
            sent: None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SessionEntry {
    pub duration_s: f64,
    pub events_read: u64,
    pub undecodable: u64,
}

/// Records the recorder had to leave out because writing fell behind.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LostEntry {
    pub at_s: f64,
    pub drops: u64,
    pub others: u64,
}

/// The last frame of a recording that was stopped cleanly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndEntry {
    pub session: SessionEntry,
    /// Records left out over the whole recording (as in the LOST frames).
    pub lost: LostEntry,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Header(Box<Header>),
    Drop(Box<DropEntry>),
    NeighFail(NeighRecord),
    ListenDrop(Box<ListenEntry>),
    NeighState(NeighStateRecord),
    Counters(Box<CountersEntry>),
    Snapshot(Box<Snapshot>),
    Netns(Box<NetnsEntry>),
    Lost(LostEntry),
    End(EndEntry),
}

impl Entry {
    pub fn kind(&self) -> u8 {
        match self {
            Entry::Header(_) => kind::HEADER,
            Entry::Drop(_) => kind::DROP_ID,
            Entry::NeighFail(_) => kind::NEIGH_FAIL,
            Entry::ListenDrop(_) => kind::LISTEN_DROP_ID,
            Entry::NeighState(_) => kind::NEIGH_STATE,
            Entry::Counters(_) => kind::COUNTERS,
            Entry::Snapshot(_) => kind::SNAPSHOT_ID,
            Entry::Netns(_) => kind::NETNS_ID,
            Entry::Lost(_) => kind::LOST,
            Entry::End(_) => kind::END,
        }
    }

    /// Appends this entry as one frame.
    pub fn encode(&self, out: &mut BytesMut) {
        let payload = self.payload(Vec::new());
        frame(self.kind(), &payload, out);
    }

    /// Appends the payload of this entry's frame (of kind [`Entry::kind`]) to `buf`.
    pub fn payload(&self, buf: Vec<u8>) -> Vec<u8> {
        fn put<T: Serialize + ?Sized>(v: &T, buf: Vec<u8>) -> Vec<u8> {
            // Serializing plain data into a Vec cannot fail.
            postcard::to_extend(v, buf).expect("postcard encoding")
        }
        match self {
            Entry::Header(v) => put(v, buf),
            Entry::Drop(v) => put(
                &Identified {
                    entry: Tagged {
                        entry: v.as_ref(),
                        netns_cookie: v.rec.netns_cookie,
                    },
                    owner: v.owner.as_ref().and_then(Owner::identity),
                    netns: v.netns_identity.as_ref(),
                },
                buf,
            ),
            Entry::NeighFail(v) => put(v, buf),
            Entry::ListenDrop(v) => put(
                &Identified {
                    entry: Tagged {
                        entry: v.as_ref(),
                        netns_cookie: v.rec.netns_cookie,
                    },
                    owner: v.owner.as_ref().and_then(Owner::identity),
                    netns: None,
                },
                buf,
            ),
            Entry::NeighState(v) => put(v, buf),
            Entry::Counters(v) => put(v, buf),
            Entry::Snapshot(v) => put(
                &SnapshotIds {
                    snap: SnapshotDecl {
                        snap: SnapshotNs {
                            snap: v.as_ref(),
                            cookies: v.netns.iter().map(|n| n.cookie).collect(),
                        },
                        counters: v.counters.clone(),
                        knobs: v.knobs.clone(),
                        netns: v.netns.iter().map(NetnsSnapshot::declared).collect(),
                    },
                    netns: v.netns.iter().map(|n| n.identity.as_ref()).collect(),
                },
                buf,
            ),
            Entry::Netns(v) => put(
                &Identified {
                    entry: NetnsDecl {
                        entry: v.as_ref(),
                        decl: v.ns.declared(),
                    },
                    owner: None,
                    netns: v.ns.identity.as_ref(),
                },
                buf,
            ),
            Entry::Lost(v) => put(v, buf),
            Entry::End(v) => put(v, buf),
        }
    }

    /// The payload of a frame of `kind`; `None` for a kind this version does not know.
    pub fn decode(kind: u8, payload: &[u8]) -> Option<Result<Entry, postcard::Error>> {
        fn de<T: DeserializeOwned>(p: &[u8]) -> Result<T, postcard::Error> {
            let (v, rest) = postcard::take_from_bytes(p)?;
            if rest.is_empty() {
                Ok(v)
            } else {
                Err(postcard::Error::DeserializeBadEncoding)
            }
        }
        type Ids<T> = Identified<T, Option<Identity>>;
        let entry = match kind {
            kind::HEADER => de(payload).map(Entry::Header),
            kind::DROP => de(payload).map(Entry::Drop),
            kind::DROP_NS => de(payload).map(|t| Entry::Drop(Box::new(untag_drop(t)))),
            kind::DROP_ID => de::<Ids<Tagged<DropEntry>>>(payload).map(|i| {
                let mut e = untag_drop(i.entry);
                if let Some(o) = e.owner.as_mut() {
                    o.identity = i.owner;
                }
                e.netns_identity = i.netns;
                Entry::Drop(Box::new(e))
            }),
            kind::NEIGH_FAIL => de(payload).map(Entry::NeighFail),
            kind::LISTEN_DROP => de(payload).map(Entry::ListenDrop),
            kind::LISTEN_DROP_NS => {
                de(payload).map(|t| Entry::ListenDrop(Box::new(untag_listen(t))))
            }
            kind::LISTEN_DROP_ID => de::<Ids<Tagged<ListenEntry>>>(payload).map(|i| {
                let mut e = untag_listen(i.entry);
                if let Some(o) = e.owner.as_mut() {
                    o.identity = i.owner;
                }
                Entry::ListenDrop(Box::new(e))
            }),
            kind::SNAPSHOT_NS => de::<SnapshotNs<Snapshot>>(payload).map(|s| {
                let mut snap = s.snap;
                for (ns, cookie) in snap.netns.iter_mut().zip(s.cookies) {
                    ns.cookie = cookie;
                }
                Entry::Snapshot(Box::new(snap))
            }),
            kind::SNAPSHOT_DECL => de(payload).map(|s| Entry::Snapshot(Box::new(snapshot_decl(s)))),
            kind::SNAPSHOT_ID => {
                de::<SnapshotIds<SnapshotDecl<Snapshot>, Option<Identity>>>(payload).map(|s| {
                    let mut snap = snapshot_decl(s.snap);
                    for (ns, identity) in snap.netns.iter_mut().zip(s.netns) {
                        ns.identity = identity;
                    }
                    Entry::Snapshot(Box::new(snap))
                })
            }
            kind::NETNS_DECL => de(payload).map(|n| Entry::Netns(Box::new(netns_decl(n)))),
            kind::NETNS_ID => de::<Ids<NetnsDecl<NetnsEntry>>>(payload).map(|i| {
                let mut e = netns_decl(i.entry);
                e.ns.identity = i.netns;
                Entry::Netns(Box::new(e))
            }),
            kind::NETNS => de::<NetnsEntry>(payload).map(|mut n| {
                n.ns.cookie = n.netns_cookie;
                Entry::Netns(Box::new(n))
            }),
            kind::NEIGH_STATE => de(payload).map(Entry::NeighState),
            kind::COUNTERS => de(payload).map(Entry::Counters),
            kind::COUNTERS_V1 => de::<CountersEntryV1>(payload).map(|v| Entry::Counters(v.into())),
            kind::SNAPSHOT => de(payload).map(Entry::Snapshot),
            kind::LOST => de(payload).map(Entry::Lost),
            kind::END => de(payload).map(Entry::End),
            _ => return None,
        };
        Some(entry)
    }
}

fn untag_drop(t: Tagged<DropEntry>) -> DropEntry {
    let mut e = t.entry;
    e.rec.netns_cookie = t.netns_cookie;
    e
}

fn untag_listen(t: Tagged<ListenEntry>) -> ListenEntry {
    let mut e = t.entry;
    e.rec.netns_cookie = t.netns_cookie;
    e
}

fn snapshot_decl(s: SnapshotDecl<Snapshot>) -> Snapshot {
    let mut snap = s.snap.snap;
    for (ns, cookie) in snap.netns.iter_mut().zip(s.snap.cookies) {
        ns.cookie = cookie;
    }
    for (ns, decl) in snap.netns.iter_mut().zip(s.netns) {
        ns.set_declared(decl);
    }
    (snap.counters, snap.knobs) = (s.counters, s.knobs);
    snap
}

fn netns_decl(n: NetnsDecl<NetnsEntry>) -> NetnsEntry {
    let mut e = n.entry;
    e.ns.cookie = e.netns_cookie;
    e.ns.set_declared(n.decl);
    e
}

/// Appends one frame: sync, length, kind, payload, checksum.
pub fn frame(kind: u8, payload: &[u8], out: &mut BytesMut) {
    let len = u32::try_from(payload.len()).expect("frame payload over 4 GiB");
    out.reserve(FRAME_HEAD + payload.len() + FRAME_TAIL);
    out.put_slice(&SYNC);
    out.put_u32_le(len);
    out.put_u8(kind);
    out.put_slice(payload);
    out.put_u32_le(checksum(len, kind, payload));
}

pub fn checksum(len: u32, kind: u8, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&[kind]);
    h.update(payload);
    h.finalize()
}

pub fn preamble() -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    p[..8].copy_from_slice(&MAGIC);
    p[8..12].copy_from_slice(&VERSION.to_le_bytes());
    p
}

/// The version in a preamble, or why it is not one.
pub fn read_preamble(mut data: &[u8]) -> Result<u32, String> {
    if data.len() < MAGIC.len() || data[..MAGIC.len()] != MAGIC {
        return Err("not a netdrop recording (no NDREC signature at the start)".into());
    }
    if data.len() < PREAMBLE_LEN {
        return Err(format!(
            "truncated: the file is {} bytes, shorter than the {PREAMBLE_LEN}-byte preamble",
            data.len()
        ));
    }
    data.advance(MAGIC.len());
    Ok(data.get_u32_le())
}

/// Serializes exactly like [`DropEntry`], without copying the record.
#[derive(Serialize)]
pub struct DropEntryRef<'a> {
    pub rec: &'a DropRecord,
    pub location: &'a str,
    pub owner: Option<&'a Owner>,
    pub netns_name: Option<&'a str>,
}

/// Serializes exactly like [`ListenEntry`].
#[derive(Serialize)]
pub struct ListenEntryRef<'a> {
    pub rec: &'a ListenRecord,
    pub owner: Option<&'a Owner>,
}
