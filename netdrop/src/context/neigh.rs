//! Neighbour (ARP / NDISC) entries of the calling thread's network namespace, through
//! an rtnetlink RTM_GETNEIGH dump (what `ip neigh show` prints).
//!
//! Interface names come from `if_indextoname(3)`, which asks the kernel through a
//! socket it creates in the calling thread — so inside [`super::netns::in_netns`] the
//! names are those of the target namespace (checked by the live test in `mod.rs`).

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::nl::{self, u16_at, u32_at};

const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
/// `struct ndmsg`.
const NDMSG_LEN: usize = 12;
const NDA_DST: u16 = 1;

pub const NUD_INCOMPLETE: u16 = 0x01;
pub const NUD_REACHABLE: u16 = 0x02;
pub const NUD_STALE: u16 = 0x04;
pub const NUD_DELAY: u16 = 0x08;
pub const NUD_PROBE: u16 = 0x10;
pub const NUD_FAILED: u16 = 0x20;
pub const NUD_NOARP: u16 = 0x40;
pub const NUD_PERMANENT: u16 = 0x80;
pub const NUD_NONE: u16 = 0x00;

/// One neighbour cache entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighEntry {
    pub ifindex: u32,
    /// Interface name in the entry's namespace; empty if the interface vanished.
    pub dev: String,
    pub addr: IpAddr,
    /// `NUD_*` bits (normally exactly one).
    pub state: u16,
}

/// `ip neigh`-style name of a NUD state. For a value with several bits set the
/// lowest known bit wins; bits the kernel does not define give "UNKNOWN".
pub fn nud_state_name(state: u16) -> &'static str {
    const NAMES: [(u16, &str); 8] = [
        (NUD_INCOMPLETE, "INCOMPLETE"),
        (NUD_REACHABLE, "REACHABLE"),
        (NUD_STALE, "STALE"),
        (NUD_DELAY, "DELAY"),
        (NUD_PROBE, "PROBE"),
        (NUD_FAILED, "FAILED"),
        (NUD_NOARP, "NOARP"),
        (NUD_PERMANENT, "PERMANENT"),
    ];
    if state == NUD_NONE {
        return "NONE";
    }
    NAMES
        .iter()
        .find(|(bit, _)| state & bit != 0)
        .map_or("UNKNOWN", |(_, name)| name)
}

/// Body of an RTM_GETNEIGH dump request for `family`.
pub fn neigh_request(family: u8) -> [u8; NDMSG_LEN] {
    let mut req = [0u8; NDMSG_LEN];
    req[0] = family;
    req
}

/// Parses one RTM_NEWNEIGH payload (`ndmsg` + attributes). `None` unless the family is
/// IPv4/IPv6 and an NDA_DST of the matching length is present. `dev` is left empty.
pub fn parse_neigh(payload: &[u8]) -> Option<NeighEntry> {
    let family = i32::from(*payload.first()?);
    let ifindex = u32_at(payload, 4)?;
    let state = u16_at(payload, 8)?;
    let attrs = payload.get(nl::align4(NDMSG_LEN)..)?;
    let (_, dst) = nl::attributes(attrs).find(|(kind, _)| *kind == NDA_DST)?;
    let addr = match (family, dst.len()) {
        (libc::AF_INET, 4) => IpAddr::V4(Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3])),
        (libc::AF_INET6, 16) => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(dst).ok()?)),
        _ => return None,
    };
    Some(NeighEntry {
        ifindex,
        dev: String::new(),
        addr,
        state,
    })
}

/// Parses every RTM_NEWNEIGH message of a dump; other messages are skipped.
pub fn parse_neighbours(messages: &[(u16, Vec<u8>)]) -> Vec<NeighEntry> {
    messages
        .iter()
        .filter(|(kind, _)| *kind == RTM_NEWNEIGH)
        .filter_map(|(_, payload)| parse_neigh(payload))
        .collect()
}

/// Name of interface `ifindex` in the calling thread's network namespace.
pub fn ifindex_name(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has the IF_NAMESIZE bytes if_indextoname requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

fn dump_family(family: u8) -> io::Result<Vec<NeighEntry>> {
    let messages = nl::dump(libc::NETLINK_ROUTE, RTM_GETNEIGH, &neigh_request(family))?;
    Ok(parse_neighbours(&messages))
}

/// IPv4 and IPv6 neighbour entries of the calling thread's network namespace, sorted
/// by interface then address. Needs no privileges. A kernel without IPv6 yields the
/// IPv4 entries only. Unlike `ip neigh show` (without `nud all`), NOARP entries such as
/// `0.0.0.0 dev lo` are included; proxy entries are not.
pub fn neighbours() -> io::Result<Vec<NeighEntry>> {
    let mut out = dump_family(libc::AF_INET as u8)?;
    match dump_family(libc::AF_INET6 as u8) {
        Ok(v6) => out.extend(v6),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT | libc::ENOENT)) => {}
        Err(e) => return Err(e),
    }
    let mut names: HashMap<u32, String> = HashMap::new();
    for entry in &mut out {
        entry.dev = names
            .entry(entry.ifindex)
            .or_insert_with(|| ifindex_name(entry.ifindex).unwrap_or_default())
            .clone();
    }
    out.sort_by_key(|e| (e.ifindex, e.addr));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::nl::tests::msg;
    use crate::context::nl::{Dump, NLM_F_MULTI, NLMSG_DONE, absorb_datagram};

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = ((4 + data.len()) as u16).to_ne_bytes().to_vec();
        a.extend(kind.to_ne_bytes());
        a.extend(data);
        a.resize(nl::align4(a.len()), 0);
        a
    }

    /// Hand-built RTM_NEWNEIGH payload: ndmsg, NDA_DST, NDA_LLADDR, NDA_PROBES.
    fn neigh_msg(family: u8, ifindex: u32, state: u16, dst: &[u8]) -> Vec<u8> {
        let mut m = vec![family, 0, 0, 0];
        m.extend(ifindex.to_ne_bytes());
        m.extend(state.to_ne_bytes());
        m.extend([0u8, 1]); // flags, type RTN_UNICAST
        m.extend(attr(NDA_DST, dst));
        m.extend(attr(2, &[2, 0, 0, 0, 0, 2])); // NDA_LLADDR
        m.extend(attr(4, &0u32.to_ne_bytes())); // NDA_PROBES
        m
    }

    #[test]
    fn state_names() {
        assert_eq!(nud_state_name(0), "NONE");
        assert_eq!(nud_state_name(NUD_INCOMPLETE), "INCOMPLETE");
        assert_eq!(nud_state_name(NUD_REACHABLE), "REACHABLE");
        assert_eq!(nud_state_name(NUD_STALE), "STALE");
        assert_eq!(nud_state_name(NUD_DELAY), "DELAY");
        assert_eq!(nud_state_name(NUD_PROBE), "PROBE");
        assert_eq!(nud_state_name(NUD_FAILED), "FAILED");
        assert_eq!(nud_state_name(NUD_NOARP), "NOARP");
        assert_eq!(nud_state_name(NUD_PERMANENT), "PERMANENT");
        assert_eq!(nud_state_name(NUD_STALE | NUD_PERMANENT), "STALE");
        assert_eq!(nud_state_name(0x100), "UNKNOWN");
    }

    #[test]
    fn parses_v4_and_v6() {
        let e = parse_neigh(&neigh_msg(2, 3, NUD_STALE, &[198, 18, 0, 2])).unwrap();
        assert_eq!(e.addr, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)));
        assert_eq!((e.ifindex, e.state, e.dev.as_str()), (3, NUD_STALE, ""));
        let v6: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let e = parse_neigh(&neigh_msg(10, 7, NUD_PERMANENT, &v6.octets())).unwrap();
        assert_eq!(
            (e.addr, e.ifindex, e.state),
            (IpAddr::V6(v6), 7, NUD_PERMANENT)
        );
    }

    #[test]
    fn rejects_malformed() {
        let ok = neigh_msg(2, 3, NUD_REACHABLE, &[198, 18, 0, 2]);
        for n in 0..NDMSG_LEN + 8 {
            assert_eq!(parse_neigh(&ok[..n]), None, "prefix of {n} bytes");
        }
        assert_eq!(parse_neigh(&neigh_msg(2, 3, 2, &[1, 2, 3])), None); // short dst
        assert_eq!(parse_neigh(&neigh_msg(10, 3, 2, &[1, 2, 3, 4])), None); // v4 dst in v6
        assert_eq!(parse_neigh(&neigh_msg(7, 3, 2, &[1, 2, 3, 4])), None); // AF_BRIDGE
        let mut no_dst = ok[..NDMSG_LEN].to_vec();
        no_dst.extend(attr(2, &[0; 6]));
        assert_eq!(parse_neigh(&no_dst), None);
    }

    #[test]
    fn dump_fixture() {
        let mut d = Dump::default();
        let mut dg = msg(
            RTM_NEWNEIGH,
            NLM_F_MULTI,
            1,
            &neigh_msg(2, 1, 2, &[198, 18, 0, 9]),
        );
        dg.extend(msg(RTM_NEWNEIGH, NLM_F_MULTI, 1, &[2, 0])); // truncated: skipped
        dg.extend(msg(NLMSG_DONE, NLM_F_MULTI, 1, &0i32.to_ne_bytes()));
        absorb_datagram(&dg, 1, &mut d).unwrap();
        let got = parse_neighbours(&d.messages);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].addr, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 9)));
    }

    #[test]
    fn live_dump_and_names() {
        let all = neighbours().expect("RTM_GETNEIGH dump");
        // Other processes may add and remove interfaces meanwhile: compare only names
        // that still resolve.
        for e in &all {
            if let Some(now) = ifindex_name(e.ifindex) {
                assert_eq!(now, e.dev, "{e:?}");
            }
        }
        assert_eq!(ifindex_name(1).as_deref(), Some("lo"));
        assert_eq!(ifindex_name(u32::MAX), None);
    }
}
