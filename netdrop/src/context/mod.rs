//! The kernel's own view of the network, read in the right network namespace:
//! counters, sysctls, TCP listeners with their accept queues, neighbour entries.
//!
//! Everything here reads the namespace of the *calling thread*. To look at another
//! namespace, wrap the calls in [`in_netns`], which runs a closure on a fresh thread
//! joined to that namespace:
//!
//! ```no_run
//! # use netdrop::context::*;
//! for ns in list_netns() {
//!     let (netstat, listeners) = in_netns(&ns.path, || (read_netstat(), tcp_listeners()))?;
//!     println!("{:?} {:?} {:?}", ns.name, netstat?.get("TcpExt:ListenOverflows"), listeners?);
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! - [`netns`] lists namespaces, identifies the current one, runs code in one.
//! - [`procnet`] reads `/proc/thread-self/net/{netstat,snmp,stat/arp_cache,...}` and
//!   the `/proc/sys/net` sysctls (somaxconn, rp_filter, unres_qlen_bytes, gc_thresh*).
//! - [`sockdiag`] lists TCP listeners through NETLINK_SOCK_DIAG (accept queue, limit).
//! - [`neigh`] lists neighbour entries through an rtnetlink RTM_GETNEIGH dump.
//!
//! Things that are per namespace and things that are not:
//! - per namespace: netstat/snmp counters, somaxconn, tcp_*, rp_filter, per-device
//!   neigh settings (`unres_qlen_bytes`), listeners, neighbour entries;
//! - global (one ARP table and one ND table for the whole kernel): table size
//!   `gc_thresh1..3` and the `stat/arp_cache` counters, which the kernel only shows in
//!   the initial namespace (`None` elsewhere).
//!
//! Use `/proc/thread-self/net`, never `/proc/net`, inside [`in_netns`]: `/proc/net`
//! follows the thread-group leader, so a setns'd thread would silently read the
//! leader's namespace.

pub mod declared;
pub mod neigh;
pub mod netns;
pub mod nft;
mod nl;
pub mod procnet;
pub mod qdisc;
pub mod sockdiag;

pub use neigh::{NeighEntry, neighbours, nud_state_name};
pub use netns::{
    NetnsHandle, current_netns_inode, in_netns, is_initial_netns, list_netns, netns_inode,
};
pub use procnet::{
    ArpCacheStats, DevSysctls, NetnsSysctls, parse_arp_cache, parse_netstat, read_arp_cache,
    read_ndisc_cache, read_netns_sysctls, read_netstat, read_snmp, read_sysctl, read_sysctl_int,
};
pub use sockdiag::{Listener, tcp_listeners};

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// A network namespace `ndc-<pid>` that is deleted when dropped, even on panic.
    struct TempNetns {
        name: String,
        path: PathBuf,
    }

    impl TempNetns {
        fn create() -> Option<TempNetns> {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                eprintln!("SKIP: creating a network namespace needs root");
                return None;
            }
            let name = format!("ndc-{}", std::process::id());
            match Command::new("ip").args(["netns", "add", &name]).status() {
                Err(e) => {
                    eprintln!("SKIP: cannot run ip(8): {e}");
                    return None;
                }
                Ok(s) => assert!(s.success(), "ip netns add {name}"),
            }
            let path = Path::new(netns::NAMED_NETNS_DIR).join(&name);
            Some(TempNetns { name, path })
        }

        fn ip(&self, args: &[&str]) {
            let status = Command::new("ip")
                .arg("-n")
                .arg(&self.name)
                .args(args)
                .status();
            assert!(status.unwrap().success(), "ip -n {} {args:?}", self.name);
        }
    }

    impl Drop for TempNetns {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .status();
        }
    }

    /// What a thread inside the namespace saw.
    #[derive(Debug)]
    struct Inside {
        inode: u64,
        initial: bool,
        sysctls: NetnsSysctls,
        listener: Option<Listener>,
        queued: u32,
        neighbours: Vec<NeighEntry>,
        ndca_index: u32,
        ndca_name: Option<String>,
        thread_self_has_ndca: bool,
        self_has_ndca: bool,
        proc_net_has_ndca: bool,
        arp_cache: Option<ArpCacheStats>,
        netstat_ok: bool,
    }

    fn has_ndca(path: &str) -> bool {
        std::fs::read_to_string(path).unwrap().contains("ndca:")
    }

    fn look_inside() -> Inside {
        std::fs::write("/proc/sys/net/core/somaxconn", "77").unwrap();
        let sysctls = read_netns_sysctls(&["ndca".to_string()]);
        // listen() after the sysctl change: backlog = min(std's 128, 77).
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let _client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let find = || {
            tcp_listeners()
                .unwrap()
                .into_iter()
                .find(|l| l.port == port)
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut queued = 0;
        while queued == 0 && Instant::now() < deadline {
            queued = find().map_or(0, |l| l.accept_queue);
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: a NUL-terminated name; if_nametoindex only reads it.
        let ndca_index = unsafe { libc::if_nametoindex(c"ndca".as_ptr()) };
        Inside {
            inode: current_netns_inode().unwrap(),
            initial: is_initial_netns(),
            sysctls,
            listener: find(),
            queued,
            neighbours: neighbours().unwrap(),
            ndca_index,
            ndca_name: neigh::ifindex_name(ndca_index),
            thread_self_has_ndca: has_ndca("/proc/thread-self/net/dev"),
            self_has_ndca: has_ndca("/proc/self/net/dev"),
            proc_net_has_ndca: has_ndca("/proc/net/dev"),
            arp_cache: read_arp_cache().unwrap(),
            netstat_ok: read_netstat().is_ok_and(|m| m.contains_key("TcpExt:ListenOverflows")),
        }
    }

    #[test]
    fn live_in_created_netns() {
        let Some(ns) = TempNetns::create() else {
            return;
        };
        ns.ip(&["link", "set", "lo", "up"]);
        // Links stay down: no packet leaves anything; entries are added statically.
        ns.ip(&[
            "link", "add", "ndca", "type", "veth", "peer", "name", "ndcb",
        ]);
        let entries = [
            ("198.18.0.2", "permanent"),
            ("198.18.0.4", "stale"),
            ("2001:db8::2", "permanent"),
        ];
        for (addr, nud) in entries {
            let lladdr = "02:00:00:00:00:02";
            ns.ip(&[
                "neigh", "add", addr, "lladdr", lladdr, "dev", "ndca", "nud", nud,
            ]);
        }

        let ns_inode = netns_inode(&ns.path).unwrap();
        let root_inode = current_netns_inode().unwrap();
        assert_ne!(ns_inode, root_inode);
        let listed = list_netns();
        let mine = listed.iter().find(|h| h.inode == ns_inode).expect("listed");
        assert_eq!(
            (&mine.path, mine.name.as_deref()),
            (&ns.path, Some(ns.name.as_str()))
        );

        let inside = in_netns(&ns.path, look_inside).unwrap();
        eprintln!("inside {}: {inside:#?}", ns.name);
        assert_eq!(inside.inode, ns_inode);
        assert_eq!(
            current_netns_inode().unwrap(),
            root_inode,
            "caller did not move"
        );
        assert!(!inside.initial);

        // Sysctls are the namespace's own.
        assert_eq!(inside.sysctls.netns_inode, Some(ns_inode));
        assert_eq!(inside.sysctls.somaxconn, Some(77));
        assert_ne!(read_sysctl_int("net/core/somaxconn").unwrap(), 77);
        let ndca = &inside.sysctls.devs["ndca"];
        assert!(ndca.rp_filter.is_some() && ndca.unres_qlen_bytes.is_some());
        assert_eq!(
            inside.sysctls.gc_thresh3, None,
            "gc_thresh* only in the initial netns"
        );

        // Listener and its queue as seen inside; invisible from the root namespace.
        let l = inside.listener.expect("listener seen inside");
        assert_eq!((l.addr, l.backlog), (IpAddr::V4(Ipv4Addr::LOCALHOST), 77));
        assert_eq!(inside.queued, 1);
        assert!(tcp_listeners().unwrap().iter().all(|r| r.inode != l.inode));

        // Neighbours and names resolve in the namespace.
        assert_eq!(inside.ndca_name.as_deref(), Some("ndca"));
        let find = |a: &str| inside.neighbours.iter().find(|e| e.addr.to_string() == a);
        let p = find("198.18.0.2").expect("permanent v4 entry");
        assert_eq!(
            (p.dev.as_str(), nud_state_name(p.state)),
            ("ndca", "PERMANENT")
        );
        assert_eq!(p.ifindex, inside.ndca_index);
        assert_eq!(nud_state_name(find("198.18.0.4").unwrap().state), "STALE");
        assert_eq!(
            nud_state_name(find("2001:db8::2").unwrap().state),
            "PERMANENT"
        );

        // procfs: thread-self follows the thread, /proc/self and /proc/net the leader.
        assert!(inside.thread_self_has_ndca);
        assert!(!inside.self_has_ndca);
        assert!(!inside.proc_net_has_ndca);
        assert!(inside.netstat_ok);
        assert_eq!(
            inside.arp_cache, None,
            "stat/arp_cache only in the initial netns"
        );
    }
}
