//! Kernels without drop reasons (5.10–5.16): drops classified by the kernel
//! function that freed them (the table is in the agent: `kernel/locations.rs`).

/// How many kernel functions the probe can classify drops by.
pub const MAX_LOCATIONS: usize = 8;

/// A kernel function's addresses `[start, end)` and the counter slot its
/// drops go to, on kernels whose kfree_skb gives no reason.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocationRange {
    pub start: u64,
    pub end: u64,
    pub slot: u32,
    pub _pad: u32,
}

impl LocationRange {
    pub const NONE: LocationRange = LocationRange {
        start: 0,
        end: 0,
        slot: 0,
        _pad: 0,
    };
}

/// Slots of netdrop's own for drops a kernel without drop reasons (5.10–5.16)
/// freed in a function that only that cause drops in (the table is in the
/// agent: `kernel/locations.rs`). Below [`crate::LISTEN_FULL_NO_SOCKET_SLOT`].
pub mod location_slot {
    use crate::MAX_REASONS;
    /// `ip_rcv_finish_core`: the reverse-path filter (IPReversePathFilter).
    pub const RP_FILTER: u32 = MAX_REASONS - 3;
    /// `__neigh_event_send`: the unresolved-neighbour queue was full.
    pub const NEIGH_QUEUE_FULL: u32 = MAX_REASONS - 4;
    /// `ip_finish_output2` / `ip6_finish_output2`: no neighbour entry (table full).
    pub const NEIGH_TABLE_FULL: u32 = MAX_REASONS - 5;
    pub const ALL: [u32; 3] = [RP_FILTER, NEIGH_QUEUE_FULL, NEIGH_TABLE_FULL];
}
