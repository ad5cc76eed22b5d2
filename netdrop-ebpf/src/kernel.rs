//! The one place that reads kernel memory. Every offset comes from the agent
//! (tracefs format files and BTF of the running kernel); an unknown offset
//! (`ABSENT`) means "not read", never a guess.

use aya_ebpf::{
    EbpfContext,
    cty::c_void,
    helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes, generated},
    programs::TracePointContext,
};
use aya_log_ebpf::warn;
use netdrop_common::{
    ABSENT, Filter, IFNAMSIZ, MAX_CAPTURE, NOT_LISTENER, StructOffsets, filter, owner_src, scope,
};

use crate::{
    diag::{first, site},
    maps::FILTER_INODES,
};

/// Reads a `T` at `offset` of the tracepoint record, or `None` if the field is absent.
#[inline(always)]
pub fn tp_field<T>(ctx: &TracePointContext, offset: u32) -> Option<T> {
    if offset == ABSENT {
        return None;
    }
    // SAFETY: read_at uses bpf_probe_read; a bad offset yields an error, not a fault.
    unsafe { ctx.read_at::<T>(offset as usize).ok() }
}

/// Reads a `__data_loc char[]` field (a u32 whose low 16 bits are the string's
/// offset in the record) into `out`, NUL-padded; leaves `out` alone if absent.
#[inline(always)]
pub fn tp_str(ctx: &TracePointContext, offset: u32, out: &mut [u8; IFNAMSIZ]) {
    let Some(loc) = tp_field::<u32>(ctx, offset) else {
        return;
    };
    // SAFETY: the string lies inside the tracepoint record; the read is fault-safe
    // and bounded by `out`.
    unsafe {
        let src = (ctx.as_ptr() as *const u8).add((loc & 0xffff) as usize);
        let _ = bpf_probe_read_kernel_str_bytes(src, out);
    }
}

const AF_INET_U32: u32 = 2;

/// A neighbour tracepoint's key: `primary_key4` in the first 4 bytes for IPv4,
/// else `primary_key6`.
#[inline(always)]
pub fn tp_neigh_key(ctx: &TracePointContext, family: u32, key4: u32, key6: u32) -> [u8; 16] {
    let mut key = [0u8; 16];
    if family == AF_INET_U32 {
        if let Some(k) = tp_field::<[u8; 4]>(ctx, key4) {
            key[..4].copy_from_slice(&k);
        }
    } else if let Some(k) = tp_field::<[u8; 16]>(ctx, key6) {
        key = k;
    }
    key
}

/// Reads a `T` at `base + offset` in kernel memory.
#[inline(always)]
pub fn read<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 || offset == ABSENT {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel is fault-safe.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T).ok() }
}

/// What the probe learns about a dropped skb beyond the tracepoint fields.
pub struct SkbInfo {
    pub sk: u64,
    pub netns: u32,
    pub netns_cookie: u64,
    pub ifindex: u32,
    pub dev: [u8; IFNAMSIZ],
}

/// The namespace inode of a `struct net *`.
#[inline(always)]
fn net_inum(net: u64, o: &StructOffsets) -> u32 {
    read::<u32>(net, o.net_inum).unwrap_or(0)
}

/// The namespace cookie of a `struct net *` (0 if unknown).
#[inline(always)]
fn net_cookie(net: u64, o: &StructOffsets) -> u64 {
    read::<u64>(net, o.net_cookie).unwrap_or(0)
}

/// The namespace inode of a socket, 0 if unknown.
#[inline(always)]
pub fn sock_netns(sk: u64, o: &StructOffsets) -> u32 {
    read::<u64>(sk, o.sock_net).map_or(0, |net| net_inum(net, o))
}

/// The namespace (inode, cookie) of a socket, zeros if unknown.
#[inline(always)]
pub fn sock_netns_id(sk: u64, o: &StructOffsets) -> (u32, u64) {
    match read::<u64>(sk, o.sock_net) {
        Some(net) if net != 0 => (net_inum(net, o), net_cookie(net, o)),
        _ => (0, 0),
    }
}

/// Device, socket and namespace of an skb. The namespace comes from the device
/// (where the packet was when it was dropped), else from the socket.
#[inline(always)]
pub fn skb_info(skb: u64, o: &StructOffsets) -> SkbInfo {
    let mut info = SkbInfo {
        sk: 0,
        netns: 0,
        netns_cookie: 0,
        ifindex: 0,
        dev: [0; IFNAMSIZ],
    };
    info.sk = read::<u64>(skb, o.sk_buff_sk).unwrap_or(0);
    let dev = read::<u64>(skb, o.sk_buff_dev).unwrap_or(0);
    if dev != 0 {
        info.ifindex = read::<u32>(dev, o.net_device_ifindex).unwrap_or(0);
        if let Some(name) = read::<[u8; IFNAMSIZ]>(dev, o.net_device_name) {
            info.dev = name;
        }
        if let Some(net) = read::<u64>(dev, o.net_device_net)
            && net != 0
        {
            info.netns = net_inum(net, o);
            info.netns_cookie = net_cookie(net, o);
        }
    }
    if info.netns == 0 && info.sk != 0 {
        (info.netns, info.netns_cookie) = sock_netns_id(info.sk, o);
    }
    info
}

/// What [`skb_capture`] found: bytes copied, and the packet's length from its
/// network header (0 if unknown).
pub struct Capture {
    pub copied: u32,
    pub pkt_len: u32,
}

/// Copies the packet from its network header into `out`: at most `want` bytes
/// (≤ MAX_CAPTURE), no more than the linear data (up to `tail`) and no more
/// than the packet. Nothing when the skb has no network header yet.
#[inline(always)]
pub fn skb_capture(skb: u64, o: &StructOffsets, want: u32, out: &mut [u8; MAX_CAPTURE]) -> Capture {
    let mut cap = Capture {
        copied: 0,
        pkt_len: 0,
    };
    let Some(head) = read::<u64>(skb, o.sk_buff_head) else {
        return cap;
    };
    let Some(nh) = read::<u16>(skb, o.sk_buff_network_header) else {
        return cap;
    };
    // `(u16)~0U`: the network header was never set.
    if head == 0 || nh == u16::MAX {
        return cap;
    }
    let nh = u64::from(nh);
    let mut limit = u64::from(want);
    // len counts from `data`: the packet ends at (data - head) + len from head.
    if let (Some(len), Some(data)) = (
        read::<u32>(skb, o.sk_buff_len),
        read::<u64>(skb, o.sk_buff_data),
    ) && data >= head
    {
        let end = (data - head) + u64::from(len);
        let pkt = end.saturating_sub(nh);
        cap.pkt_len = if pkt > u64::from(u32::MAX) {
            u32::MAX
        } else {
            pkt as u32
        };
        limit = limit.min(pkt);
    }
    // Linear data only: what lies past `tail` is not this packet's.
    if let Some(tail) = read::<u32>(skb, o.sk_buff_tail) {
        limit = limit.min(u64::from(tail).saturating_sub(nh));
    }
    if limit == 0 {
        return cap;
    }
    // The verifier needs the size bounded by the buffer: clamp, then a
    // variable-size read (probe_read's size is ARG_CONST_SIZE_OR_ZERO).
    let n = if limit > MAX_CAPTURE as u64 {
        MAX_CAPTURE as u32
    } else {
        limit as u32
    };
    let src = (head + nh) as *const c_void;
    // SAFETY: fault-safe kernel read of `n` ≤ MAX_CAPTURE bytes into `out`.
    let rc = unsafe { generated::bpf_probe_read_kernel(out.as_mut_ptr().cast(), n, src) };
    if rc == 0 {
        cap.copied = n;
    } else if first(site::CAPTURE_READ_FAILED) {
        warn!(
            &(),
            "kfree_skb: bpf_probe_read_kernel of {} packet bytes failed ({}): the event has no packet bytes (logged once per CPU)",
            n,
            rc
        );
    }
    cap
}

/// A listening socket's address and accept queue.
pub struct Listener {
    pub family: u16,
    pub port: u16,
    pub addr: [u8; 16],
    pub ack_backlog: u32,
    pub max_ack_backlog: u32,
}

const AF_INET: u16 = 2;

/// Reads what the accept-queue hook needs from a listener; `None` if the queue
/// fields are unknown on this kernel.
#[inline(always)]
pub fn listener(sk: u64, o: &StructOffsets) -> Option<Listener> {
    let ack_backlog = read::<u32>(sk, o.sock_ack_backlog)?;
    let max_ack_backlog = read::<u32>(sk, o.sock_max_ack_backlog)?;
    let family = read::<u16>(sk, o.sock_family).unwrap_or(0);
    let port = read::<u16>(sk, o.sock_num).unwrap_or(0);
    let mut addr = [0u8; 16];
    if family == AF_INET {
        if let Some(a) = read::<[u8; 4]>(sk, o.sock_rcv_saddr) {
            addr[..4].copy_from_slice(&a);
        }
    } else if let Some(a) = read::<[u8; 16]>(sk, o.sock_v6_rcv_saddr) {
        addr = a;
    }
    Some(Listener {
        family,
        port,
        addr,
        ack_backlog,
        max_ack_backlog,
    })
}

/// A listener's accept queue at a drop: length and limit, [`NOT_LISTENER`] in
/// both when the socket is not listening. (A plain struct with a sentinel, not
/// an Option, for the verifier.)
#[derive(Clone, Copy)]
pub struct AcceptQueue {
    pub len: u32,
    pub limit: u32,
}

impl AcceptQueue {
    pub const NONE: AcceptQueue = AcceptQueue {
        len: NOT_LISTENER,
        limit: NOT_LISTENER,
    };
}

/// TCP_LISTEN (include/net/tcp_states.h, stable ABI).
const TCP_LISTEN: u8 = 10;

/// Whether `sk` is a listener whose accept queue is full, as the kernel's
/// `sk_acceptq_is_full()` decides it (length above the limit).
#[inline(always)]
pub fn listener_full(sk: u64, o: &StructOffsets) -> bool {
    let q = accept_queue(sk, o);
    q.len != NOT_LISTENER && q.len > q.limit
}

/// The accept queue of `sk` if it is a listener; read only then.
#[inline(always)]
pub fn accept_queue(sk: u64, o: &StructOffsets) -> AcceptQueue {
    if read::<u8>(sk, o.sock_state) != Some(TCP_LISTEN) {
        return AcceptQueue::NONE;
    }
    match (
        read::<u32>(sk, o.sock_ack_backlog),
        read::<u32>(sk, o.sock_max_ack_backlog),
    ) {
        (Some(len), Some(limit)) => AcceptQueue { len, limit },
        _ => AcceptQueue::NONE,
    }
}

/// A socket's owner handle: the socket inode (named in /proc/PID/fd) and uid;
/// `ino == 0`: no socket. (A plain struct, not an Option: moving an Option whose
/// payload is uninitialised makes the verifier refuse the program.)
#[derive(Clone, Copy)]
pub struct SockOwner {
    pub ino: u64,
    pub uid: u32,
}

impl SockOwner {
    pub const NONE: SockOwner = SockOwner {
        ino: 0,
        uid: u32::MAX,
    };
}

/// TCP_TIME_WAIT and TCP_NEW_SYN_RECV (include/net/tcp_states.h, stable ABI):
/// those socks are not full `struct sock`s and have no socket/file behind them.
const TCP_TIME_WAIT: u8 = 6;
const TCP_NEW_SYN_RECV: u8 = 12;

/// Follows sk → socket → file → inode → i_ino. [`SockOwner::NONE`] for a mini
/// socket or one without a file (kernel sockets).
#[inline(always)]
pub fn sock_owner(sk: u64, o: &StructOffsets) -> SockOwner {
    let ino = sock_ino(sk, o).unwrap_or(0);
    if ino == 0 {
        return SockOwner::NONE;
    }
    SockOwner {
        ino,
        uid: read::<u32>(sk, o.sock_uid).unwrap_or(u32::MAX),
    }
}

#[inline(always)]
fn sock_ino(sk: u64, o: &StructOffsets) -> Option<u64> {
    let state = read::<u8>(sk, o.sock_state)?;
    if state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV {
        return None;
    }
    let socket = read::<u64>(sk, o.sock_socket)?;
    let file = read::<u64>(socket, o.socket_file)?;
    let inode = read::<u64>(file, o.file_inode)?;
    read::<u64>(inode, o.inode_ino)
}

/// What a drop belongs to: its device and namespace, and its socket's owner.
pub struct DropCtx {
    pub info: SkbInfo,
    /// The drop's socket: the one the owner came from, else skb->sk, else
    /// rx_sk (0 if none).
    pub sock: u64,
    pub owner: SockOwner,
    pub owner_src: u32,
    pub scope: u32,
}

impl DropCtx {
    /// The packet's own socket first (the victim of a queue eviction), then the
    /// receiving socket (the listener of an accept-queue overflow).
    #[inline(always)]
    pub fn read(skb: u64, rx_sk: u64, o: &StructOffsets) -> DropCtx {
        let mut info = skb_info(skb, o);
        // TCP reuses skb->dev (dev_scratch) and a refused ACK has no socket of
        // its own: the receiving socket (a listener) still names the namespace.
        if info.netns == 0 && rx_sk != 0 {
            (info.netns, info.netns_cookie) = sock_netns_id(rx_sk, o);
        }
        let mut owner = sock_owner(info.sk, o);
        let mut src = owner_src::SKB_SK;
        if owner.ino == 0 {
            owner = sock_owner(rx_sk, o);
            src = if owner.ino == 0 {
                owner_src::NONE
            } else {
                owner_src::RX_SK
            };
        }
        let sock = if src == owner_src::RX_SK || info.sk == 0 {
            rx_sk
        } else {
            info.sk
        };
        DropCtx {
            info,
            sock,
            owner,
            owner_src: src,
            scope: scope::ANY,
        }
    }

    /// Applies the netns, device and pid filters; sets `scope` under `--pid`.
    #[inline(always)]
    pub fn keep(&mut self, f: &Filter) -> bool {
        if f.flags & filter::NETNS != 0 && self.info.netns != f.netns {
            return false;
        }
        if f.flags & filter::DEV != 0 && self.info.dev != f.dev {
            return false;
        }
        if f.flags & filter::PID != 0 {
            let ino = self.owner.ino;
            // SAFETY: a map lookup; the value is not kept.
            self.scope = if ino != 0 && unsafe { FILTER_INODES.get(&ino) }.is_some() {
                scope::PROCESS
            } else if ino == 0 && self.info.netns == f.pid_netns {
                scope::NETNS
            } else {
                return false;
            };
        }
        true
    }
}
