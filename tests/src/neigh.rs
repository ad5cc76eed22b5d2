//! Neighbour (ARP) scenarios: a full unresolved queue, and a full table.

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::Result;

use crate::counters::arp_cache;
use crate::netns::{Netns, veth_pair};
use crate::sysctl::SysctlGuard;
use crate::traffic::udp_send_each;

/// UDP port the datagrams go to (nothing listens; they never leave ns A anyway).
pub const PORT: u16 = 9;

/// neigh_queue_full: ns A (198.18.1.1/24) -- ns B (198.18.1.2/24). A sends
/// [`SENDS`](Self::SENDS) datagrams to 198.18.1.99, an on-link address nobody
/// owns: the ARP entry stays INCOMPLETE and the datagrams wait in its
/// unresolved queue. A's `unres_qlen_bytes` is 1, so each new datagram evicts
/// the one queued before it (`__neigh_event_send`: SKB_DROP_REASON_NEIGH_QUEUEFULL,
/// arp_cache `unresolved_discards` += 1). The last datagram stays queued and
/// is dropped later as NEIGH_FAILED (cause "other") when resolution fails.
pub struct NeighQueueFull {
    pub a: Netns,
    pub b: Netns,
    pub target: Ipv4Addr,
}

impl NeighQueueFull {
    pub const DEV_A: &str = "nqa0";
    pub const DEV_B: &str = "nqb0";
    pub const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
    /// The seed incident: a pool of 16 connections losing their SYNs.
    pub const SENDS: usize = 16;
    /// Every datagram but the last one is evicted.
    pub const EXPECTED_DROPS: u64 = Self::SENDS as u64 - 1;

    pub fn setup() -> Result<Self> {
        let a = Netns::new()?;
        let b = Netns::new()?;
        veth_pair(
            &a,
            Self::DEV_A,
            "198.18.1.1/24",
            &b,
            Self::DEV_B,
            "198.18.1.2/24",
        )?;
        a.sysctl(
            &format!("net.ipv4.neigh.{}.unres_qlen_bytes", Self::DEV_A),
            "1",
        )?;
        Ok(NeighQueueFull {
            a,
            b,
            target: Ipv4Addr::new(198, 18, 1, 99),
        })
    }

    /// Sends the datagrams (a burst of microseconds, well inside the 1 s ARP
    /// retransmit time, so the entry is INCOMPLETE for all of them).
    pub fn generate(&self) -> Result<usize> {
        let dst = SocketAddrV4::new(self.target, PORT);
        udp_send_each(&self.a, Some(Self::SRC), &[dst; Self::SENDS])
    }
}

/// neigh_table_overflow: ns A (198.18.2.1/24) -- ns B (198.18.2.2/24). The
/// global ARP table's gc_thresh1/2/3 are lowered to (current entries +
/// [`HEADROOM`](Self::HEADROOM)), then A sends one datagram to each of
/// [`TARGETS`](Self::TARGETS) on-link addresses nobody owns. Each creates an
/// INCOMPLETE entry (held by its timer, so forced GC cannot free it) until
/// the table is full; every further create fails in `neigh_alloc`
/// (arp_cache `table_fulls` += 1, neigh:neigh_create with created = 0) and
/// `ip_finish_output2` frees the datagram with NEIGH_CREATEFAIL.
pub struct NeighTableOverflow {
    pub a: Netns,
    pub b: Netns,
    pub targets: Vec<Ipv4Addr>,
}

/// What [`NeighTableOverflow::generate`] did.
#[derive(Debug, Clone, Copy)]
pub struct OverflowRun {
    /// The gc_thresh3 (and gc_thresh1/2) in force during the burst.
    pub thresh3: u64,
    /// ARP table entries (all namespaces) just before.
    pub entries_before: u64,
    pub sent: usize,
}

impl NeighTableOverflow {
    pub const DEV_A: &str = "nta0";
    pub const DEV_B: &str = "ntb0";
    pub const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
    pub const TARGETS: u8 = 40;
    /// Entries that may still be created after the thresholds are lowered.
    pub const HEADROOM: u64 = 16;
    pub const THRESH: [&str; 3] = [
        "net.ipv4.neigh.default.gc_thresh1",
        "net.ipv4.neigh.default.gc_thresh2",
        "net.ipv4.neigh.default.gc_thresh3",
    ];

    pub fn setup() -> Result<Self> {
        let a = Netns::new()?;
        let b = Netns::new()?;
        veth_pair(
            &a,
            Self::DEV_A,
            "198.18.2.1/24",
            &b,
            Self::DEV_B,
            "198.18.2.2/24",
        )?;
        let targets = (0..Self::TARGETS)
            .map(|i| Ipv4Addr::new(198, 18, 2, 100 + i))
            .collect();
        Ok(NeighTableOverflow { a, b, targets })
    }

    /// Lowers the global thresholds, sends the burst, and restores the
    /// thresholds at once: they are low only for the few milliseconds of the
    /// burst. The guards restore them on any early return or panic as well.
    ///
    /// Side effect while they are low: a failing allocation first runs the
    /// forced GC, which may free unreferenced stale or FAILED entries of other
    /// namespaces (the host's too; they are simply resolved again later).
    pub fn generate(&self) -> Result<OverflowRun> {
        let (run, guards) = self.generate_held()?;
        // Restore now, in reverse order; a guard that fails tries again on Drop.
        let mut restored = Ok(());
        for g in guards.into_iter().rev() {
            if let Err(e) = g.restore() {
                restored = Err(e);
            }
        }
        restored?;
        Ok(run)
    }

    /// Like [`generate`](Self::generate), but the thresholds stay low until the
    /// returned guards are dropped or restored (so netdrop can read them while
    /// they are in force, as in a real incident). Keep the window short.
    pub fn generate_held(&self) -> Result<(OverflowRun, Vec<SysctlGuard>)> {
        let entries_before = arp_cache()?["entries"];
        let thresh3 = entries_before + Self::HEADROOM;
        let value = thresh3.to_string();
        let mut guards = Vec::new();
        for key in Self::THRESH {
            guards.push(SysctlGuard::set(key, &value)?);
        }
        let dsts: Vec<SocketAddrV4> = self
            .targets
            .iter()
            .map(|t| SocketAddrV4::new(*t, PORT))
            .collect();
        let sent = udp_send_each(&self.a, Some(Self::SRC), &dsts)?;
        Ok((
            OverflowRun {
                thresh3,
                entries_before,
                sent,
            },
            guards,
        ))
    }
}
