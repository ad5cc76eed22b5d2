//! Offsets of the kernel's records and structs, as the agent found them
//! (tracefs format files, BTF) and the kernel side reads them: part of
//! [`crate::Config`].

use crate::ABSENT;

/// Offsets of the fields of one tracepoint's raw record, from tracefs
/// `events/<system>/<event>/format`. [`ABSENT`] where a kernel lacks a field.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KfreeSkbOffsets {
    pub skbaddr: u32,
    pub location: u32,
    pub rx_sk: u32,
    pub protocol: u32,
    pub reason: u32,
    pub _pad: u32,
}

/// Positions of kfree_skb's arguments (its `TP_PROTO`) for the raw
/// tracepoint, from the kernel's BTF (`btf_trace_kfree_skb`). [`ABSENT`]
/// where a kernel lacks one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KfreeSkbArgs {
    pub skb: u32,
    pub location: u32,
    pub reason: u32,
    pub rx_sk: u32,
}

impl KfreeSkbArgs {
    pub const fn absent() -> Self {
        KfreeSkbArgs {
            skb: ABSENT,
            location: ABSENT,
            reason: ABSENT,
            rx_sk: ABSENT,
        }
    }
}

/// The raw tracepoint reads arguments 0 to `RAW_ARGS - 1` only (each at a
/// constant offset: the verifier refuses a computed one).
pub const RAW_ARGS: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighCreateOffsets {
    pub family: u32,
    /// `__data_loc char[] dev`: a u32 holding (len << 16 | offset).
    pub dev: u32,
    pub entries: u32,
    pub created: u32,
    pub primary_key4: u32,
    pub primary_key6: u32,
}

/// `neigh:neigh_update` and `neigh:neigh_timer_handler` record offsets (the two
/// share a layout today, but each is read from its own format file).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighStateOffsets {
    pub family: u32,
    /// `__data_loc char[] dev`: a u32 holding (len << 16 | offset).
    pub dev: u32,
    /// u8: the entry's state when the tracepoint fired (neigh_update: before
    /// the update; neigh_timer_handler: after the timer ran).
    pub nud_state: u32,
    /// u8, neigh_update only: the state asked for.
    pub new_state: u32,
    /// u8: the entry is being destroyed (neigh_update ignores it).
    pub dead: u32,
    pub primary_key4: u32,
    pub primary_key6: u32,
    pub _pad: u32,
}

impl NeighStateOffsets {
    pub const fn absent() -> Self {
        NeighStateOffsets {
            family: ABSENT,
            dev: ABSENT,
            nud_state: ABSENT,
            new_state: ABSENT,
            dead: ABSENT,
            primary_key4: ABSENT,
            primary_key6: ABSENT,
            _pad: 0,
        }
    }
}

/// `sock:inet_sock_set_state` record offsets.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockSetStateOffsets {
    pub skaddr: u32,
    pub newstate: u32,
}

/// Kernel struct member offsets from the running kernel's BTF.
/// A pointer chain is followed only when every offset on it is known.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StructOffsets {
    pub sk_buff_dev: u32,
    pub sk_buff_sk: u32,
    pub sk_buff_head: u32,
    /// u16 offset of the network header from `head`.
    pub sk_buff_network_header: u32,
    /// `sk_buff.len` (u32): bytes from `data` to the packet's end, paged data included.
    pub sk_buff_len: u32,
    /// `sk_buff.data` (pointer): where the packet's current layer starts.
    pub sk_buff_data: u32,
    /// `sk_buff.tail` (u32 on 64-bit: an offset from `head`): the end of the
    /// linear data. Absent where it is a pointer (32-bit kernels).
    pub sk_buff_tail: u32,
    /// `sk_buff.protocol` (__be16): the raw tracepoint has no protocol argument.
    pub sk_buff_protocol: u32,
    pub net_device_ifindex: u32,
    pub net_device_name: u32,
    /// `net_device.nd_net.net`: the device's `struct net *`.
    pub net_device_net: u32,
    /// `net.ns.inum`: the namespace inode number users see in /proc/PID/ns/net.
    pub net_inum: u32,
    /// `net.net_cookie` (u64; 5.12+ sets it when the namespace is created, and
    /// never reuses one): tells apart namespaces that had the same inode.
    pub net_cookie: u32,
    /// `sock.__sk_common.skc_net.net`.
    pub sock_net: u32,
    /// `sock.__sk_common.skc_family` (u16).
    pub sock_family: u32,
    /// `sock.__sk_common.skc_num`: local port, host order (u16).
    pub sock_num: u32,
    /// `sock.__sk_common.skc_rcv_saddr` (IPv4 local address).
    pub sock_rcv_saddr: u32,
    /// `sock.__sk_common.skc_v6_rcv_saddr` (16 bytes).
    pub sock_v6_rcv_saddr: u32,
    /// `sock.sk_ack_backlog` (u32): connections waiting in the accept queue.
    pub sock_ack_backlog: u32,
    /// `sock.sk_max_ack_backlog` (u32): min(listen() backlog, somaxconn).
    pub sock_max_ack_backlog: u32,
    /// `sock.__sk_common.skc_state` (u8): request and timewait socks are not full sockets.
    pub sock_state: u32,
    /// `sock.sk_uid.val` (u32).
    pub sock_uid: u32,
    /// The chain to the socket's inode number, which names the owner in
    /// /proc/PID/fd: `sock.sk_socket` → `socket.file` → `file.f_inode` → `inode.i_ino`.
    pub sock_socket: u32,
    pub socket_file: u32,
    pub file_inode: u32,
    pub inode_ino: u32,
}

/// What the kfree_skb probe reads to tell a full conntrack table
/// ([`crate::NETFILTER_DROP_CONNTRACK_FULL_SLOT`]) from a rule's drop, all from BTF.
/// `reason` [`ABSENT`]: not told apart (no conntrack in the kernel's BTF…).
///
/// The namespace's conntrack state (`struct nf_conntrack_net`) is its
/// `net->gen->ptr[id]`; the id (`nf_conntrack_net_id`) is not in BTF, nor in
/// kallsyms without CONFIG_KALLSYMS_ALL, so the probe finds it once: the
/// pointer whose sysctl table's entry `NF_SYSCTL_CT_MAX` is named
/// `nf_conntrack_max`; that entry's `data` is the global's address.
///
/// Only drops freed in `nf_hook_slow` (where conntrack's NF_DROP verdict is
/// freed: `hook_start..hook_end`, from kallsyms) are looked at: an nftables
/// rule's drop is freed in `nft_do_chain` and may also meet a packet without
/// a conntrack entry in a full namespace (a raw-priority rule).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConntrackOffsets {
    /// This kernel's `SKB_DROP_REASON_NETFILTER_DROP`.
    pub reason: u32,
    /// `sk_buff._nfct` (unsigned long).
    pub sk_buff_nfct: u32,
    /// `net.gen` (`struct net_generic *`).
    pub net_gen: u32,
    /// `net_generic.s.len` (u32): how many ids the array holds.
    pub generic_len: u32,
    /// `net_generic.ptr`: the array of per-id pointers.
    pub generic_ptr: u32,
    /// `nf_conntrack_net.count` (atomic_t).
    pub cnet_count: u32,
    /// `nf_conntrack_net.sysctl_header` (`struct ctl_table_header *`).
    pub cnet_sysctl_header: u32,
    /// `ctl_table_header.ctl_table` (`struct ctl_table *`).
    pub header_table: u32,
    /// `NF_SYSCTL_CT_MAX * sizeof(struct ctl_table)`: the entry of nf_conntrack_max.
    pub table_max_entry: u32,
    /// `ctl_table.procname` (`const char *`).
    pub table_procname: u32,
    /// `ctl_table.data` (`void *`).
    pub table_data: u32,
    pub _pad: u32,
    /// `nf_hook_slow`'s addresses: a drop freed elsewhere is not conntrack's.
    pub hook_start: u64,
    pub hook_end: u64,
}
