//! Which drops to show: `--pid`, `--netns`, `--dev`, `--cause` are decided in the
//! kernel (a storm of other drops costs little, and the counts cover only what
//! is kept); `--port` and `--addr` narrow the detail events in the agent.

use std::{collections::BTreeSet, fs, net::IpAddr, os::unix::fs::MetadataExt, path::Path};

use anyhow::{Context, Result, bail};
use netdrop_common::{Filter, IFNAMSIZ, MAX_REASONS, filter};

use crate::{
    classify::{Cause, cause_of},
    decode::DropRecord,
    kernel::reasons::ReasonTable,
};

/// Filters as the user gave them.
#[derive(Debug, Clone, Default)]
pub struct FilterSpec {
    pub pid: Option<u32>,
    /// A namespace inode, an `ip netns` name, or a path to an nsfs file.
    pub netns: Option<String>,
    pub dev: Option<String>,
    pub causes: Vec<Cause>,
    pub port: Option<u16>,
    pub addr: Option<IpAddr>,
}

impl FilterSpec {
    /// The filters as command-line flags (for a recording's header).
    pub fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(p) = self.pid {
            v.push(format!("--pid {p}"));
        }
        if let Some(n) = &self.netns {
            v.push(format!("--netns {n}"));
        }
        if let Some(d) = &self.dev {
            v.push(format!("--dev {d}"));
        }
        v.extend(
            self.causes
                .iter()
                .map(|c| format!("--cause {}", c.as_str())),
        );
        if let Some(p) = self.port {
            v.push(format!("--port {p}"));
        }
        if let Some(a) = self.addr {
            v.push(format!("--addr {a}"));
        }
        v
    }
}

/// Resolved filters: the kernel part and the agent part.
#[derive(Debug, Clone)]
pub struct Filters {
    pub kernel: Filter,
    /// `--cause`: the reason slots the kernel keeps (FILTER_REASONS).
    pub reason_slots: Vec<u32>,
    pub pid: Option<u32>,
    pub port: Option<u16>,
    pub addr: Option<IpAddr>,
}

impl Filters {
    pub fn none() -> Filters {
        Filters {
            kernel: Filter::none(),
            reason_slots: Vec::new(),
            pid: None,
            port: None,
            addr: None,
        }
    }

    /// Does a drop's packet match `--port`/`--addr`? (The rest was decided in the kernel.)
    pub fn keep_packet(&self, rec: &DropRecord) -> bool {
        let p = rec.packet.as_ref();
        let port_ok = self
            .port
            .is_none_or(|port| p.is_some_and(|p| p.sport == Some(port) || p.dport == Some(port)));
        let addr_ok = self
            .addr
            .is_none_or(|addr| p.is_some_and(|p| p.saddr == addr || p.daddr == addr));
        port_ok && addr_ok
    }

    /// Port/address filters also drop events with no packet header (refused
    /// neighbour creates, refused SYNs are matched on what they carry).
    pub fn has_packet_filter(&self) -> bool {
        self.port.is_some() || self.addr.is_some()
    }
}

/// The network namespace inode of a process.
pub fn netns_of_pid(pid: u32) -> Result<u32> {
    netns_inode(&format!("/proc/{pid}/ns/net"))
}

fn netns_inode(path: &str) -> Result<u32> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read {path}"))?;
    u32::try_from(meta.ino()).context("namespace inode out of range")
}

/// `--netns`: an inode number, an `ip netns` name, or a path.
pub fn resolve_netns(spec: &str) -> Result<u32> {
    if let Ok(inode) = spec.parse::<u32>() {
        return Ok(inode);
    }
    let path = if spec.contains('/') {
        spec.to_string()
    } else {
        format!("/run/netns/{spec}")
    };
    if !Path::new(&path).exists() {
        bail!("no network namespace {spec:?} (not an inode number, and no {path})");
    }
    netns_inode(&path)
}

/// Checks the process exists; the error names it.
pub fn check_pid(pid: u32) -> Result<()> {
    if pid == 0 || !Path::new(&format!("/proc/{pid}")).exists() {
        bail!("no process {pid}");
    }
    Ok(())
}

/// The reason slots whose cause is one of `causes`.
pub fn reason_slots(causes: &[Cause], reasons: &ReasonTable, has_reason_field: bool) -> Vec<u32> {
    let wanted: BTreeSet<Cause> = causes.iter().copied().collect();
    (0..MAX_REASONS)
        .filter(|&slot| {
            let name = if !has_reason_field {
                "UNKNOWN".to_string()
            } else if slot == netdrop_common::LISTEN_FULL_NO_SOCKET_SLOT {
                crate::classify::NO_SOCKET_LISTEN_FULL.to_string()
            } else {
                reasons.name(slot)
            };
            wanted.contains(&cause_of(&name))
        })
        .collect()
}

pub fn resolve(
    spec: &FilterSpec,
    reasons: &ReasonTable,
    has_reason_field: bool,
) -> Result<Filters> {
    let mut k = Filter::none();
    let mut slots = Vec::new();
    if let Some(pid) = spec.pid {
        check_pid(pid)?;
        k.flags |= filter::PID;
        k.pid_tgid = pid;
        k.pid_netns = netns_of_pid(pid).with_context(|| format!("process {pid}"))?;
    }
    if let Some(ns) = &spec.netns {
        k.flags |= filter::NETNS;
        k.netns = resolve_netns(ns)?;
    }
    if let Some(dev) = &spec.dev {
        if dev.is_empty() || dev.len() >= IFNAMSIZ {
            bail!(
                "--dev {dev:?}: an interface name has 1 to {} characters",
                IFNAMSIZ - 1
            );
        }
        k.flags |= filter::DEV;
        k.dev[..dev.len()].copy_from_slice(dev.as_bytes());
    }
    if !spec.causes.is_empty() {
        k.flags |= filter::REASONS;
        slots = reason_slots(&spec.causes, reasons, has_reason_field);
        if spec.causes.contains(&Cause::NeighTableOverflow) {
            k.flags |= filter::NEIGH_TABLE;
        }
        if spec.causes.contains(&Cause::AcceptQueueFull) {
            k.flags |= filter::ACCEPT_QUEUE;
        }
    }
    Ok(Filters {
        kernel: k,
        reason_slots: slots,
        pid: spec.pid,
        port: spec.port,
        addr: spec.addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Packet;

    fn table() -> ReasonTable {
        ReasonTable::from_pairs(
            [
                ("NOT_SPECIFIED", 2),
                ("IP_RPFILTER", 16),
                ("NEIGH_QUEUEFULL", 59),
            ]
            .map(|(n, v)| (format!("SKB_DROP_REASON_{n}"), v)),
        )
    }

    #[test]
    fn causes_become_a_reason_bitmap() {
        let f = resolve(
            &FilterSpec {
                causes: vec![Cause::RpFilter, Cause::NeighTableOverflow],
                ..Default::default()
            },
            &table(),
            true,
        )
        .unwrap();
        assert!(f.reason_slots.contains(&16));
        assert!(!f.reason_slots.contains(&59));
        assert!(!f.reason_slots.contains(&2));
        assert_ne!(f.kernel.flags & filter::NEIGH_TABLE, 0);
        assert_eq!(f.kernel.flags & filter::ACCEPT_QUEUE, 0);
        // "other" takes every reason not of the four, unknown numbers included.
        let o = resolve(
            &FilterSpec {
                causes: vec![Cause::Other],
                ..Default::default()
            },
            &table(),
            true,
        )
        .unwrap();
        let slots = &o.reason_slots;
        assert!(slots.contains(&2) && slots.contains(&300) && !slots.contains(&59));
        // NO_SOCKET at a full listener is an accept-queue drop, not "other".
        let listen_full = netdrop_common::LISTEN_FULL_NO_SOCKET_SLOT;
        assert!(!slots.contains(&listen_full));
        let a = resolve(
            &FilterSpec {
                causes: vec![Cause::AcceptQueueFull],
                ..Default::default()
            },
            &table(),
            true,
        )
        .unwrap();
        assert!(a.reason_slots.contains(&listen_full));
        assert_eq!(
            Filters::none().kernel.flags,
            0,
            "no filter: the kernel keeps everything"
        );
    }

    #[test]
    fn pid_netns_and_dev_resolve_or_fail_clearly() {
        let me = std::process::id();
        let f = resolve(
            &FilterSpec {
                pid: Some(me),
                dev: Some("eth0".into()),
                netns: Some("4026531840".into()),
                ..Default::default()
            },
            &table(),
            true,
        )
        .unwrap();
        assert_eq!(f.kernel.flags, filter::PID | filter::DEV | filter::NETNS);
        assert_eq!(f.kernel.pid_netns, netns_of_pid(me).unwrap());
        assert_eq!(&f.kernel.dev[..5], b"eth0\0");
        let err = resolve(
            &FilterSpec {
                pid: Some(999_999_999),
                ..Default::default()
            },
            &table(),
            true,
        )
        .unwrap_err();
        assert!(err.to_string().contains("no process 999999999"), "{err}");
        assert!(
            resolve(
                &FilterSpec {
                    dev: Some("x".repeat(16)),
                    ..Default::default()
                },
                &table(),
                true
            )
            .is_err()
        );
        let err = resolve(
            &FilterSpec {
                netns: Some("no-such-ns".into()),
                ..Default::default()
            },
            &table(),
            true,
        )
        .unwrap_err();
        assert!(err.to_string().contains("no network namespace"), "{err}");
    }

    #[test]
    fn port_and_address_match_either_side() {
        let mut rec = crate::decode::tests_support::drop_record();
        rec.packet = Some(Packet {
            saddr: "198.18.0.1".parse().unwrap(),
            daddr: "198.18.0.2".parse().unwrap(),
            l4: 17,
            sport: Some(5000),
            dport: Some(53),
        });
        let f = |port, addr: Option<&str>| Filters {
            port,
            addr: addr.map(|a| a.parse().unwrap()),
            ..Filters::none()
        };
        assert!(f(Some(53), None).keep_packet(&rec));
        assert!(f(Some(5000), Some("198.18.0.1")).keep_packet(&rec));
        assert!(!f(Some(80), None).keep_packet(&rec));
        assert!(!f(None, Some("198.18.0.9")).keep_packet(&rec));
        rec.packet = None;
        assert!(
            !f(Some(53), None).keep_packet(&rec),
            "no packet header: cannot match a port"
        );
        assert!(f(None, None).keep_packet(&rec));
    }
}
