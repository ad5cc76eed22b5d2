//! Types shared by the kernel side (`netdrop-ebpf`) and the agent (`netdrop`).
//!
//! Everything here is `#[repr(C)]`, `Copy`, with explicit padding, because the
//! bytes cross the user/kernel boundary as they are: the config is written into
//! the program's read-only data before load, events come back through the ring
//! buffer. The kernel side never hard-codes a kernel layout: every offset it
//! needs arrives in [`Config`], computed at start from tracefs format files and
//! the running kernel's BTF.
#![no_std]

mod location;
mod offsets;
pub use location::{LocationRange, MAX_LOCATIONS, location_slot};
pub use offsets::{
    ConntrackOffsets, KfreeSkbArgs, KfreeSkbOffsets, NeighCreateOffsets, NeighStateOffsets,
    RAW_ARGS, SockSetStateOffsets, StructOffsets,
};

/// Names of the maps and programs, shared so both sides spell them the same.
pub mod names {
    pub const EVENTS: &str = "EVENTS";
    pub const DROP_COUNTS: &str = "DROP_COUNTS";
    pub const LOST_COUNTS: &str = "LOST_COUNTS";
    pub const STATS: &str = "STATS";
    pub const EVENT_COUNTS: &str = "EVENT_COUNTS";
    pub const RATE: &str = "RATE";
    pub const WINDOW: &str = "WINDOW";
    pub const FILTER_INODES: &str = "FILTER_INODES";
    pub const FILTER_REASONS: &str = "FILTER_REASONS";
    pub const SOCK_OWNERS: &str = "SOCK_OWNERS";
    pub const CONFIG: &str = "NETDROP_CONFIG";
    pub const PROG_KFREE_SKB: &str = "netdrop_kfree_skb";
    pub const PROG_KFREE_SKB_RAW: &str = "netdrop_kfree_skb_raw";
    pub const PROG_NEIGH_CREATE: &str = "netdrop_neigh_create";
    pub const PROG_CONN_REQUEST_FENTRY: &str = "netdrop_tcp_conn_request_fentry";
    pub const PROG_CONN_REQUEST_KPROBE: &str = "netdrop_tcp_conn_request_kprobe";
    pub const PROG_SOCK_SET_STATE: &str = "netdrop_inet_sock_set_state";
    pub const PROG_NEIGH_UPDATE: &str = "netdrop_neigh_update";
    pub const PROG_NEIGH_TIMER: &str = "netdrop_neigh_timer_handler";
}

/// Size of the per-reason counter arrays. Reasons at or above `MAX_REASONS - 1`
/// (subsystem reasons carry high bits) share the last slot; their events still
/// carry the exact reason number.
pub const MAX_REASONS: u32 = 512;
/// The shared slot for reasons that do not fit the array.
pub const REASON_OVERFLOW_SLOT: u32 = MAX_REASONS - 1;
/// A slot of netdrop's own, not a kernel reason: `NO_SOCKET` drops whose
/// receiving socket (`rx_sk`) is a listener with a full accept queue. With
/// syncookies on (the kernel default), the ACK completing a cookie handshake
/// at a full accept queue is freed with NO_SOCKET: an accept-queue overflow,
/// counted by the kernel in ListenOverflows. Its events carry the kernel's
/// real reason value.
pub const LISTEN_FULL_NO_SOCKET_SLOT: u32 = MAX_REASONS - 2;
/// A slot of netdrop's own: `NETFILTER_DROP` drops of a packet without a
/// conntrack entry (`skb->_nfct == 0`) in a namespace whose conntrack table is
/// full (count >= `nf_conntrack_max`): conntrack refused it (conntrack_full),
/// not a rule (firewall_rule). Below the [`location_slot`]s. Its events carry
/// this slot as their reason (the kernel's is NETFILTER_DROP).
pub const NETFILTER_DROP_CONNTRACK_FULL_SLOT: u32 = MAX_REASONS - 6;

/// Indexes into the `STATS` per-CPU array.
pub mod stat {
    /// neigh:neigh_create fired with `created == 0` (the table refused an entry).
    pub const NEIGH_CREATE_FAIL: u32 = 0;
    /// A failed-create event could not be reserved in the ring buffer.
    pub const NEIGH_CREATE_FAIL_LOST: u32 = 1;
    /// Unused since drop events are counted per reason (`EVENT_COUNTS`); the
    /// index stays so the others keep their numbers (recordings hold them).
    pub const DROP_EVENTS_SENT: u32 = 2;
    /// SYNs refused by tcp_conn_request because the listener's accept queue was
    /// full (these carry no kfree_skb reason: the caller consumes them).
    pub const ACCEPT_SYN_DROP: u32 = 3;
    /// Such a SYN whose event did not fit in the ring buffer.
    pub const ACCEPT_SYN_DROP_LOST: u32 = 4;
    /// Neighbour state events ([`crate::kind::NEIGH_STATE`]) submitted.
    pub const NEIGH_STATE_SENT: u32 = 5;
    /// Neighbour state events that did not fit in the ring buffer.
    pub const NEIGH_STATE_LOST: u32 = 6;
    /// Failed-create events submitted (the rest of NEIGH_CREATE_FAIL was lost
    /// or held back by the event limit).
    pub const NEIGH_CREATE_FAIL_SENT: u32 = 7;
    /// Refused-SYN events submitted.
    pub const ACCEPT_SYN_DROP_SENT: u32 = 8;
    pub const COUNT: u32 = 9;
}

/// Slots of the `RATE` array: the detail-event limit (`Config::event_limit`)
/// is kept per reason slot (`0..MAX_REASONS`) and for these two.
pub mod rate {
    use super::MAX_REASONS;
    pub const NEIGH_CREATE_FAIL: u32 = MAX_REASONS;
    pub const ACCEPT_SYN_DROP: u32 = MAX_REASONS + 1;
    pub const SLOTS: u32 = MAX_REASONS + 2;
}

/// One slot of the `RATE` array: detail events sent in the current window.
/// Shared by all CPUs; written only while under the limit, so a storm over the
/// limit only reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateSlot {
    /// The window (`WINDOW[0]`, advanced by the agent every second) `sent` counts in.
    pub window: u64,
    pub sent: u64,
}

/// "This field does not exist on this kernel" in a [`Config`] offset.
pub const ABSENT: u32 = u32::MAX;

/// Which drops to keep, decided in the kernel so a storm of other drops costs
/// little. Counts then cover only the kept drops.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filter {
    /// [`filter`] bits.
    pub flags: u32,
    /// `--pid`: the process (tgid) whose sockets are kept; its new TCP sockets
    /// are added to `FILTER_INODES` by the inet_sock_set_state hook.
    pub pid_tgid: u32,
    /// `--pid`: drops with no socket are kept when in this namespace.
    pub pid_netns: u32,
    /// `--netns`.
    pub netns: u32,
    /// `--dev`, NUL-padded.
    pub dev: [u8; IFNAMSIZ],
    // `--cause`: the allowed reason slots are in the FILTER_REASONS array map
    // (a map lookup is bounds-checked by the kernel, which the verifier needs).
}

/// Bits of [`Filter::flags`].
pub mod filter {
    pub const PID: u32 = 1;
    pub const NETNS: u32 = 2;
    pub const DEV: u32 = 4;
    pub const REASONS: u32 = 8;
    /// With REASONS: neighbour-table refusals (neigh_create) are wanted.
    pub const NEIGH_TABLE: u32 = 16;
    /// With REASONS: refused SYNs (tcp_conn_request) are wanted.
    pub const ACCEPT_QUEUE: u32 = 32;
}

/// [`RawDropEvent::scope`] under `--pid`.
pub mod scope {
    pub const ANY: u32 = 0;
    /// A socket of the watched process.
    pub const PROCESS: u32 = 1;
    /// No socket: a namespace-level drop in the process's namespace.
    pub const NETNS: u32 = 2;
}

impl Filter {
    pub const fn none() -> Self {
        Filter {
            flags: 0,
            pid_tgid: 0,
            pid_netns: 0,
            netns: 0,
            dev: [0; IFNAMSIZ],
        }
    }
}

impl ConntrackOffsets {
    pub const fn absent() -> Self {
        ConntrackOffsets {
            reason: ABSENT,
            sk_buff_nfct: ABSENT,
            net_gen: ABSENT,
            generic_len: ABSENT,
            generic_ptr: ABSENT,
            cnet_count: ABSENT,
            cnet_sysctl_header: ABSENT,
            header_table: ABSENT,
            table_max_entry: ABSENT,
            table_procname: ABSENT,
            table_data: ABSENT,
            _pad: 0,
            hook_start: 0,
            hook_end: 0,
        }
    }
}

/// Everything the kernel side needs, written into its read-only data before load.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub kfree_skb: KfreeSkbOffsets,
    pub kfree_skb_args: KfreeSkbArgs,
    pub neigh_create: NeighCreateOffsets,
    pub structs: StructOffsets,
    pub sock_set_state: SockSetStateOffsets,
    pub neigh_update: NeighStateOffsets,
    pub neigh_timer: NeighStateOffsets,
    pub filter: Filter,
    /// Send detail events (counting never stops); 0 = counters only.
    pub emit_events: u32,
    /// Bytes of the packet to copy into each drop event, from its network
    /// header (0..=MAX_CAPTURE; NET_HDR_LEN unless asked for more).
    pub net_hdr_len: u32,
    /// Send neighbour state events ([`kind::NEIGH_STATE`]): successful creates
    /// from neigh_create, and the neigh_update / neigh_timer_handler hooks
    /// (attached only when asked for). 0 = none, so `watch` pays nothing.
    pub emit_neigh_states: u32,
    /// Detail events per window (one second) per reason slot, over all CPUs;
    /// 0 = no limit. Drops past it are still counted; the agent shows them as
    /// held back (counted − sent − lost).
    pub event_limit: u32,
    /// This kernel's value of `SKB_DROP_REASON_NO_SOCKET` (from BTF), [`ABSENT`]
    /// if unknown: such drops at a full listener go to
    /// [`LISTEN_FULL_NO_SOCKET_SLOT`].
    pub reason_no_socket: u32,
    /// How many of `locations` are in use (0 on kernels with drop reasons).
    pub n_locations: u32,
    /// NETFILTER_DROP at a full conntrack table: see [`ConntrackOffsets`]
    /// (8-aligned: it holds addresses).
    pub conntrack: ConntrackOffsets,
    /// Kernels without drop reasons (before 5.17): drops freed inside these
    /// kernel functions are counted in the range's slot (a [`location_slot`]).
    pub locations: [LocationRange; MAX_LOCATIONS],
}

impl Config {
    /// A config where nothing is known: the programs count and read nothing else.
    pub const fn unknown() -> Self {
        Config {
            kfree_skb: KfreeSkbOffsets {
                skbaddr: ABSENT,
                location: ABSENT,
                rx_sk: ABSENT,
                protocol: ABSENT,
                reason: ABSENT,
                _pad: 0,
            },
            kfree_skb_args: KfreeSkbArgs::absent(),
            neigh_create: NeighCreateOffsets {
                family: ABSENT,
                dev: ABSENT,
                entries: ABSENT,
                created: ABSENT,
                primary_key4: ABSENT,
                primary_key6: ABSENT,
            },
            structs: StructOffsets {
                sk_buff_dev: ABSENT,
                sk_buff_sk: ABSENT,
                sk_buff_head: ABSENT,
                sk_buff_network_header: ABSENT,
                sk_buff_len: ABSENT,
                sk_buff_data: ABSENT,
                sk_buff_tail: ABSENT,
                sk_buff_protocol: ABSENT,
                net_device_ifindex: ABSENT,
                net_device_name: ABSENT,
                net_device_net: ABSENT,
                net_inum: ABSENT,
                net_cookie: ABSENT,
                sock_net: ABSENT,
                sock_family: ABSENT,
                sock_num: ABSENT,
                sock_rcv_saddr: ABSENT,
                sock_v6_rcv_saddr: ABSENT,
                sock_ack_backlog: ABSENT,
                sock_max_ack_backlog: ABSENT,
                sock_state: ABSENT,
                sock_uid: ABSENT,
                sock_socket: ABSENT,
                socket_file: ABSENT,
                file_inode: ABSENT,
                inode_ino: ABSENT,
            },
            sock_set_state: SockSetStateOffsets {
                skaddr: ABSENT,
                newstate: ABSENT,
            },
            neigh_update: NeighStateOffsets::absent(),
            neigh_timer: NeighStateOffsets::absent(),
            filter: Filter::none(),
            emit_events: 1,
            net_hdr_len: NET_HDR_LEN as u32,
            emit_neigh_states: 0,
            event_limit: 0,
            reason_no_socket: ABSENT,
            n_locations: 0,
            conntrack: ConntrackOffsets::absent(),
            locations: [LocationRange::NONE; MAX_LOCATIONS],
        }
    }
}

/// Kinds of ring buffer records; the first u32 of every record.
pub mod kind {
    pub const DROP: u32 = 1;
    pub const NEIGH_CREATE_FAIL: u32 = 2;
    pub const LISTEN_SYN_DROP: u32 = 3;
    pub const NEIGH_STATE: u32 = 4;
}

/// [`RawNeighStateEvent::event`]: which hook saw the state.
pub mod neigh_event {
    /// neigh:neigh_create with `created != 0`: a new entry (state NUD_NONE).
    pub const CREATED: u32 = 1;
    /// neigh:neigh_update: an update that resolves the entry or changes its
    /// reachability (see the probe for which updates are sent).
    pub const UPDATE: u32 = 2;
    /// neigh:neigh_timer_handler with NUD_FAILED: resolution gave up.
    pub const TIMER: u32 = 3;
}

pub mod nud;

pub const IFNAMSIZ: usize = 16;
pub const TASK_COMM_LEN: usize = 16;
/// The bytes of each dropped packet copied by default: enough for an IPv4
/// header with options (60) plus the L4 ports, or an IPv6 header (40) plus the
/// ports.
pub const NET_HDR_LEN: usize = 64;
/// The most bytes of a dropped packet an event can carry (its buffer size).
pub const MAX_CAPTURE: usize = 256;

/// One dropped skb, as the kfree_skb probe saw it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawDropEvent {
    /// [`kind::DROP`]
    pub kind: u32,
    /// `enum skb_drop_reason` value on this kernel (0 where the kernel has no reason field).
    pub reason: u32,
    /// bpf_ktime_get_ns(): CLOCK_MONOTONIC.
    pub ts_ns: u64,
    /// Kernel address that freed the skb.
    pub location: u64,
    pub skbaddr: u64,
    /// skb->sk (0 if none).
    pub sk: u64,
    /// The tracepoint's rx_sk (0 if none or absent on this kernel).
    pub rx_sk: u64,
    /// Network namespace inode, from the device, else the socket; 0 if unknown.
    pub netns: u32,
    pub ifindex: u32,
    /// tgid of the task that was running: NOT necessarily the packet's owner.
    pub pid: u32,
    /// Ethernet protocol, host order (0x0800 IPv4, 0x86dd IPv6).
    pub protocol: u16,
    /// Bytes copied into `net_hdr` (at most the config's `net_hdr_len`, the
    /// linear data and `pkt_len`).
    pub net_hdr_len: u16,
    pub dev: [u8; IFNAMSIZ],
    pub comm: [u8; TASK_COMM_LEN],
    /// The packet from its network header on, when the skb has one.
    pub net_hdr: [u8; MAX_CAPTURE],
    /// The socket the drop belongs to: its inode (0 if none) and uid, and where
    /// it came from ([`owner_src`]).
    pub owner_ino: u64,
    pub owner_uid: u32,
    pub owner_src: u32,
    /// [`scope`] of the drop under `--pid`.
    pub scope: u32,
    /// The socket's owner (tgid) as the kernel learned it when the socket
    /// connected or listened (TCP); 0 if unknown.
    pub owner_tgid: u32,
    /// When the drop's socket (skb->sk, else rx_sk) is a listener (TCP_LISTEN):
    /// its accept queue length (`sk_ack_backlog`) and limit
    /// (`sk_max_ack_backlog`) at the drop; [`NOT_LISTENER`] in both otherwise.
    pub accept_queue: u32,
    pub accept_limit: u32,
    /// The packet's length from its network header to its end (paged data
    /// included): `len + (data - head) - network_header`; 0 if unknown or
    /// there is no network header.
    pub pkt_len: u32,
    pub _pad: u32,
    /// The namespace's `net_cookie` (never reused, unlike `netns`); 0 if
    /// unknown on this kernel.
    pub netns_cookie: u64,
}

/// [`RawDropEvent::accept_queue`] / `accept_limit`: no listener (or its queue
/// fields are unknown on this kernel).
pub const NOT_LISTENER: u32 = u32::MAX;

/// Where a drop's socket came from.
pub mod owner_src {
    pub const NONE: u32 = 0;
    /// `skb->sk` of the dropped skb (e.g. the SYN_SENT socket of a queued SYN).
    pub const SKB_SK: u32 = 1;
    /// The tracepoint's `rx_sk` (e.g. the listener of an accept-queue overflow).
    pub const RX_SK: u32 = 2;
    /// The listener seen by the tcp_conn_request hook.
    pub const LISTENER: u32 = 3;
}

/// A neighbour entry the table refused to create (neigh:neigh_create, created = 0).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawNeighEvent {
    /// [`kind::NEIGH_CREATE_FAIL`]
    pub kind: u32,
    pub family: u32,
    pub ts_ns: u64,
    /// Entries in the table when the create was refused.
    pub entries: i32,
    pub pid: u32,
    pub dev: [u8; IFNAMSIZ],
    /// primary_key4 in the first 4 bytes for IPv4, primary_key6 for IPv6.
    pub key: [u8; 16],
    pub comm: [u8; TASK_COMM_LEN],
}

/// A SYN refused because the listener's accept queue was full (tcp_conn_request hook).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawListenEvent {
    /// [`kind::LISTEN_SYN_DROP`]
    pub kind: u32,
    pub family: u16,
    /// The listener's local port.
    pub port: u16,
    pub ts_ns: u64,
    pub netns: u32,
    /// Accept queue length and its limit when the SYN arrived.
    pub ack_backlog: u32,
    pub max_ack_backlog: u32,
    pub pid: u32,
    /// The listener's local address (first 4 bytes for IPv4).
    pub addr: [u8; 16],
    pub comm: [u8; TASK_COMM_LEN],
    /// The listener's socket inode and uid.
    pub owner_ino: u64,
    pub owner_uid: u32,
    pub _pad: u32,
    /// The namespace's `net_cookie`; 0 if unknown on this kernel.
    pub netns_cookie: u64,
}

/// A neighbour entry's state changed (for resolution latency: created →
/// REACHABLE/STALE or FAILED). Sent only with [`Config::emit_neigh_states`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawNeighStateEvent {
    /// [`kind::NEIGH_STATE`]
    pub kind: u32,
    pub family: u32,
    pub ts_ns: u64,
    /// [`neigh_event`]
    pub event: u32,
    /// [`nud`] bits before the change ([`nud::NONE`] for CREATED,
    /// [`nud::UNKNOWN`] for TIMER).
    pub old_state: u32,
    /// [`nud`] bits after the change.
    pub new_state: u32,
    pub _pad: u32,
    pub dev: [u8; IFNAMSIZ],
    /// primary_key4 in the first 4 bytes for IPv4, primary_key6 for IPv6.
    pub key: [u8; 16],
}

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::RateSlot {}
    unsafe impl aya::Pod for super::RawDropEvent {}
    unsafe impl aya::Pod for super::RawNeighEvent {}
    unsafe impl aya::Pod for super::RawListenEvent {}
    unsafe impl aya::Pod for super::RawNeighStateEvent {}
}

// The kernel writes these records as they are; keep their sizes stable and 8-aligned.
const _: () = assert!(core::mem::size_of::<RawDropEvent>() == 400);
const _: () = assert!(core::mem::align_of::<RawDropEvent>() == 8);
const _: () = assert!(MAX_CAPTURE.is_power_of_two() && NET_HDR_LEN <= MAX_CAPTURE);
const _: () = assert!(core::mem::size_of::<RawNeighEvent>() == 72);
const _: () = assert!(core::mem::size_of::<RawListenEvent>() == 88);
const _: () = assert!(core::mem::size_of::<RawNeighStateEvent>() == 64);
const _: () = assert!(core::mem::align_of::<RawNeighStateEvent>() == 8);
const _: () = assert!(core::mem::size_of::<Config>().is_multiple_of(4));
// No implicit padding before the location table (the config's bytes are copied as they are).
const _: () = assert!(core::mem::offset_of!(Config, conntrack).is_multiple_of(8));
const _: () = assert!(
    core::mem::offset_of!(Config, n_locations) + 4 == core::mem::offset_of!(Config, conntrack)
);
const _: () = assert!(core::mem::size_of::<ConntrackOffsets>() == 64);
const _: () = assert!(
    core::mem::offset_of!(Config, conntrack) + core::mem::size_of::<ConntrackOffsets>()
        == core::mem::offset_of!(Config, locations)
);
const _: () = assert!(core::mem::offset_of!(Config, locations).is_multiple_of(8));
const _: () = assert!(
    core::mem::offset_of!(Config, locations)
        + core::mem::size_of::<[LocationRange; MAX_LOCATIONS]>()
        == core::mem::size_of::<Config>()
);
