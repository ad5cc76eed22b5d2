//! What a cause declares: the types of the registry. A leaf: it names no
//! other netdrop module, so every layer (decode, classify, snapshots, the
//! diagnosis, sinks) can read the registry without a circle.

use std::{collections::BTreeMap, net::IpAddr};

use serde::{Deserialize, Serialize};

/// A kernel drop reason (its name without `SKB_DROP_REASON_`), with the
/// kernels of the matrix (`cargo xtask vm-test`) that give it: which number
/// it has is read from each kernel's BTF, never from here.
#[derive(Debug, Clone, Copy)]
pub struct Reason {
    pub name: &'static str,
    pub seen: &'static str,
}

/// Where a kernel counter of a cause is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Read by the diagnosis's own code for the cause (the first four causes:
    /// diagnose/counters.rs, the neighbour tables' statistics).
    Bespoke,
    /// `/proc/net/netstat` or `/proc/net/snmp` of each namespace, as
    /// `Group:Field` (e.g. `Udp:RcvbufErrors`).
    Netstat(&'static str),
    /// A column of `/proc/net/stat/<file>` of each namespace, summed over the
    /// CPUs' rows (e.g. `nf_conntrack`, `drop`).
    ProcStat {
        file: &'static str,
        column: &'static str,
    },
    /// A column of `/proc/net/softnet_stat` (global, one row per CPU), summed.
    Softnet { column: usize },
    /// The `dropped` statistics of each namespace's root qdiscs, summed.
    QdiscDrops,
    /// The counters of each namespace's nftables rules with a drop verdict
    /// (iptables-nft rules included), summed.
    NftDropRules,
}

impl Source {
    /// Where a source also records a counter per item beside the declared
    /// sum (each nftables drop rule's), the prefix of their names: the
    /// diagnosis lists a group's items that moved in its details.
    pub fn item_prefix(self) -> Option<&'static str> {
        match self {
            Source::NftDropRules => Some("nft:"),
            _ => None,
        }
    }

    /// Whether each namespace has its own (else: one global count).
    pub fn per_netns(self) -> bool {
        !matches!(self, Source::Softnet { .. })
    }
}

/// A kernel counter of a cause: shown beside netdrop's count.
#[derive(Debug, Clone, Copy)]
pub struct Counter {
    /// How it is shown and keyed in snapshots (e.g. `Udp:RcvbufErrors`).
    pub name: &'static str,
    pub source: Source,
}

/// How a knob's value in force is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// By the diagnosis's own code for the cause (the first four causes).
    Bespoke,
    /// A sysctl, by its dotted name, in each namespace (where a namespace does
    /// not show it, the initial namespace's value is in force).
    Sysctl,
    /// A per-device sysctl: the name holds `{dev}`, the group's device.
    DevSysctl,
    /// A setting of the application or of a device (SO_RCVBUF, listen()
    /// backlog, a qdisc's limit): named in the advice, its value shown where
    /// the group has it.
    Setting,
}

/// A setting that governs a cause.
#[derive(Debug, Clone, Copy)]
pub struct KnobSpec {
    pub name: &'static str,
    pub read: Read,
}

impl KnobSpec {
    pub const fn sysctl(name: &'static str) -> KnobSpec {
        KnobSpec {
            name,
            read: Read::Sysctl,
        }
    }
    pub const fn dev(name: &'static str) -> KnobSpec {
        KnobSpec {
            name,
            read: Read::DevSysctl,
        }
    }
    pub const fn setting(name: &'static str) -> KnobSpec {
        KnobSpec {
            name,
            read: Read::Setting,
        }
    }
    pub const fn bespoke(name: &'static str) -> KnobSpec {
        KnobSpec {
            name,
            read: Read::Bespoke,
        }
    }

    /// Its `/proc/sys` path (relative) for device `dev`: dots become
    /// slashes, the device name is kept whole (it may hold dots).
    pub fn sysctl_path(&self, dev: Option<&str>) -> Option<String> {
        let path = self.name.replace('.', "/");
        match (self.read, dev) {
            (Read::Sysctl, _) => Some(path),
            (Read::DevSysctl, Some(dev)) if !dev.contains('/') && !dev.is_empty() => {
                Some(path.replace("{dev}", dev))
            }
            _ => None,
        }
    }

    /// Its name for device `dev` (how values are keyed and shown).
    pub fn name_for(&self, dev: Option<&str>) -> String {
        match (self.read, dev) {
            (Read::DevSysctl, Some(dev)) => self.name.replace("{dev}", dev),
            _ => self.name.to_string(),
        }
    }
}

/// How a cause's drops are grouped in the diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// By the diagnosis's own code for the cause (listener, neighbour, table,
    /// device with rp_filter's sources).
    Bespoke,
    /// The local socket the packet was for: destination address and port.
    Socket,
    /// The device the packet was on.
    Device,
    /// The remote address the packet came from.
    Peer,
    /// The namespace.
    Netns,
}

/// A group of a registered cause, within its namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum GroupKey {
    Socket {
        proto: u8,
        addr: IpAddr,
        port: u16,
    },
    Device {
        dev: String,
    },
    Peer {
        addr: IpAddr,
    },
    Netns,
    /// Drops without what the grouping needs (no packet, no device), or
    /// beyond the groups kept per cause.
    Rest,
}

impl GroupKey {
    pub fn dev(&self) -> Option<&str> {
        match self {
            GroupKey::Device { dev } => Some(dev),
            _ => None,
        }
    }

    /// Its kind and name as metric labels (`socket`, `udp 198.18.0.1:53`).
    pub fn metric_label(&self) -> (&'static str, String) {
        let kind = match self {
            GroupKey::Socket { .. } => "socket",
            GroupKey::Device { .. } => "device",
            GroupKey::Peer { .. } => "peer",
            GroupKey::Netns => "netns",
            GroupKey::Rest => "other",
        };
        let name = match self {
            GroupKey::Device { dev } => dev.clone(),
            GroupKey::Peer { addr } => addr.to_string(),
            GroupKey::Netns => String::new(),
            _ => self.to_string(),
        };
        (kind, name)
    }
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupKey::Socket { proto, addr, port } => {
                let p = match *proto {
                    6 => "tcp",
                    17 => "udp",
                    _ => "ip",
                };
                match addr {
                    IpAddr::V6(a) => write!(f, "{p} [{a}]:{port}"),
                    IpAddr::V4(a) => write!(f, "{p} {a}:{port}"),
                }
            }
            GroupKey::Device { dev } => write!(f, "device {dev}"),
            GroupKey::Peer { addr } => write!(f, "peer {addr}"),
            GroupKey::Netns => write!(f, "namespace"),
            GroupKey::Rest => write!(f, "the rest"),
        }
    }
}

/// What the diagnosis knows of one group, for the cause's advice.
#[derive(Debug, Clone)]
pub struct GroupFacts<'a> {
    pub key: &'a GroupKey,
    pub drops: u64,
    /// `name (inode)` of its namespace.
    pub netns: String,
    /// Values in force, by knob name (per-device ones with the device in).
    pub values: &'a BTreeMap<String, i64>,
    /// What else is known of the group (a qdisc's kind and limit…).
    pub details: &'a [(String, String)],
    /// The cause's kernel counters over the observation, summed: in its
    /// namespace (global ones globally).
    pub counter: Option<u64>,
}

impl GroupFacts<'_> {
    pub fn value(&self, knob: &str) -> Option<i64> {
        self.values.get(knob).copied()
    }
}

/// A knob in an advice: its value in force and what to set it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnobAdvice {
    pub name: String,
    pub current: Option<i64>,
    pub suggested: Option<i64>,
}

/// A cause's advice for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it is about (the socket, the device…).
    pub subject: String,
    pub knobs: Vec<KnobAdvice>,
    /// What to do, with the values in force.
    pub action: String,
}

/// A cause's advice, from what the diagnosis knows of a group.
pub type Advise = fn(&GroupFacts<'_>) -> Finding;
