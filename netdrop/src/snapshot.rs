//! A point-in-time read of the kernel's own view, every namespace in its own
//! namespace: counters, the sysctls the advice needs, listeners, neighbours.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

use crate::context::{
    self, ArpCacheStats, Listener, NeighEntry, NetnsHandle, NetnsSysctls, in_netns, list_netns,
};
use crate::netns_id::{self, NetnsId};

/// At most this many namespaces are read per snapshot (a node with thousands of
/// pods would otherwise spend its time here); the rest are counted.
pub const MAX_NETNS: usize = 512;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetnsSnapshot {
    pub inode: u64,
    /// The namespace's identity cookie ([`NetnsId::cookie`]): the kernel's
    /// `net_cookie`, or the generation netdrop gave its inode. Not in the
    /// serialized form (recordings carry the cookies beside the snapshot).
    #[serde(skip)]
    pub cookie: u64,
    /// The nsfs file it was read through (not recorded: meaningless elsewhere).
    #[serde(skip)]
    pub path: Option<std::path::PathBuf>,
    pub name: Option<String>,
    /// The container or pod whose processes live in it (recorded beside the
    /// snapshot, as [`Declared`] is).
    #[serde(skip)]
    pub identity: Option<crate::container::Identity>,
    /// TcpExt:ListenOverflows, TcpExt:ListenDrops, TcpExt:IPReversePathFilter.
    pub listen_overflows: Option<u64>,
    pub listen_drops: Option<u64>,
    pub rp_filter_drops: Option<u64>,
    pub sysctls: NetnsSysctls,
    pub listeners: Vec<Listener>,
    pub neighbours: Vec<NeighEntry>,
    /// The per-namespace counters the causes declare (causes/), by name.
    /// These three are recorded beside the snapshot ([`Declared`]), so
    /// recordings made before them still read.
    #[serde(skip)]
    pub counters: BTreeMap<String, u64>,
    /// The sysctl knobs the causes declare, by name (per-device ones with
    /// the device in the name).
    #[serde(skip)]
    pub knobs: BTreeMap<String, i64>,
    /// What else is known per device (its qdisc's kind, limit, drops…).
    #[serde(skip)]
    pub dev_details: BTreeMap<String, Vec<(String, String)>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Seconds since the observation started.
    pub at_s: f64,
    /// The ARP and ND tables are global: read in the initial namespace.
    pub arp: Option<ArpCacheStats>,
    pub ndisc: Option<ArpCacheStats>,
    /// net.ipv4.neigh.default.gc_thresh1..3 and the ipv6 ones.
    pub gc_thresh4: [Option<u64>; 3],
    pub gc_thresh6: [Option<u64>; 3],
    pub netns: Vec<NetnsSnapshot>,
    /// Namespaces not read because of MAX_NETNS.
    pub netns_skipped: usize,
    /// The global counters the causes declare (softnet_stat…), by name
    /// (recorded beside the snapshot, as the namespaces' ones).
    #[serde(skip)]
    pub counters: BTreeMap<String, u64>,
    /// The causes' sysctl knobs as the initial namespace shows them: in force
    /// where a namespace does not show its own.
    #[serde(skip)]
    pub knobs: BTreeMap<String, i64>,
}

/// What a namespace read holds for the causes' declarations: recorded
/// beside it (record/format.rs), not in its own serialized form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Declared {
    pub counters: BTreeMap<String, u64>,
    pub knobs: BTreeMap<String, i64>,
    pub dev_details: BTreeMap<String, Vec<(String, String)>>,
}

impl NetnsSnapshot {
    pub fn declared(&self) -> Declared {
        Declared {
            counters: self.counters.clone(),
            knobs: self.knobs.clone(),
            dev_details: self.dev_details.clone(),
        }
    }

    pub fn set_declared(&mut self, d: Declared) {
        (self.counters, self.knobs, self.dev_details) = (d.counters, d.knobs, d.dev_details);
    }

    pub fn id(&self) -> NetnsId {
        NetnsId::new(self.inode as u32, self.cookie)
    }
}

impl Snapshot {
    pub fn netns(&self, id: NetnsId) -> Option<&NetnsSnapshot> {
        self.netns.iter().find(|n| n.id() == id)
    }

    /// Reads everything. Blocking (threads join each namespace): call from a
    /// blocking task.
    pub fn read(at_s: f64) -> Snapshot {
        let mut snap = Snapshot {
            at_s,
            ..Snapshot::default()
        };
        let read_global = || {
            let g = |p: &str| context::read_sysctl_int(p).ok().map(|v| v.max(0) as u64);
            (
                context::read_arp_cache().ok().flatten(),
                context::read_ndisc_cache().ok().flatten(),
                [1, 2, 3].map(|i| g(&format!("net/ipv4/neigh/default/gc_thresh{i}"))),
                [1, 2, 3].map(|i| g(&format!("net/ipv6/neigh/default/gc_thresh{i}"))),
                context::declared::global_counters(),
                context::declared::ns_knobs(&[]),
            )
        };
        // The tables are only visible from the initial namespace; netdrop normally
        // runs there (and /proc/1/ns/net may be refused even to root).
        let global = if context::netns::is_initial_netns() {
            Ok(read_global())
        } else {
            in_netns(Path::new(context::netns::ROOT_NETNS_PATH), read_global)
        };
        if let Ok((arp, ndisc, g4, g6, counters, knobs)) = global {
            (snap.arp, snap.ndisc, snap.gc_thresh4, snap.gc_thresh6) = (arp, ndisc, g4, g6);
            (snap.counters, snap.knobs) = (counters, knobs);
        }
        let all = list_netns();
        snap.netns_skipped = all.len().saturating_sub(MAX_NETNS);
        for ns in all.into_iter().take(MAX_NETNS) {
            if let Some(s) = read_netns(&ns, context::nft::Why::Snapshot) {
                snap.netns.push(s);
            }
        }
        snap
    }
}

/// Reads one namespace, in it, because of `why`.
pub fn read_netns(ns: &NetnsHandle, why: context::nft::Why) -> Option<NetnsSnapshot> {
    let (inode, name) = (ns.inode, display_name(ns));
    let identity = crate::namespaces::identity_of(ns);
    let path = Some(ns.path.clone());
    in_netns(&ns.path, move || {
        let netstat = context::read_netstat().unwrap_or_default();
        let get = |k: &str| netstat.get(k).copied();
        let devs: Vec<String> = std::fs::read_dir("/proc/sys/net/ipv4/conf")
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|d| d != "all" && d != "default")
                    .collect()
            })
            .unwrap_or_default();
        let (qdisc_drops, dev_details) = context::qdisc::read();
        NetnsSnapshot {
            inode,
            cookie: netns_id::current_cookie().unwrap_or(0),
            path,
            name,
            identity,
            listen_overflows: get("TcpExt:ListenOverflows"),
            listen_drops: get("TcpExt:ListenDrops"),
            rp_filter_drops: get("TcpExt:IPReversePathFilter"),
            sysctls: context::read_netns_sysctls(&devs),
            listeners: context::tcp_listeners().unwrap_or_default(),
            neighbours: context::neighbours().unwrap_or_default(),
            counters: context::declared::ns_counters(why, qdisc_drops),
            knobs: context::declared::ns_knobs(&devs),
            dev_details,
        }
    })
    .ok()
}

/// Per-namespace counter differences between two snapshots.
pub fn deltas(
    before: &Snapshot,
    after: &Snapshot,
    get: impl Fn(&NetnsSnapshot) -> Option<u64>,
) -> BTreeMap<NetnsId, u64> {
    after
        .netns
        .iter()
        .filter_map(|a| {
            let now = get(a)?;
            // A namespace that appeared during the observation started from 0.
            let then = before.netns(a.id()).and_then(&get).unwrap_or(0);
            Some((a.id(), now.saturating_sub(then)))
        })
        .filter(|(_, d)| *d > 0)
        .collect()
}

/// A name people know: the `ip netns` name, else the container of the
/// process holding it, else none (the inode is shown).
pub fn display_name(ns: &NetnsHandle) -> Option<String> {
    ns.name.clone().or_else(|| {
        // /proc/PID/ns/net: name it after the process's container.
        let pid: u32 = ns.path.iter().nth(2)?.to_str()?.parse().ok()?;
        crate::owner::container_of(pid).map(|c| format!("container:{c}"))
    })
}
