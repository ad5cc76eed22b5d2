//! rp_filter: datagrams from a source the receiver has no route back to.

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::Result;

use crate::netns::{Netns, veth_pair};
use crate::traffic::udp_send;

/// ns A (198.18.4.1/24, plus 198.19.9.1/32 on lo) -- ns B (198.18.4.2/24,
/// rp_filter = 1 on "all" and on its veth). A sends UDP from 198.19.9.1 to B;
/// B has no route to 198.19.9.1, so `ip_route_input_slow` ->
/// `fib_validate_source` fails: IP_RPFILTER drop on B's veth and
/// TcpExt:IPReversePathFilter += 1 in B, once per datagram. A has a permanent
/// neighbour entry for B: otherwise A's ARP request would carry the spoofed
/// source, B's rp_filter would ignore it, and nothing would be sent at all.
pub struct RpFilter {
    pub a: Netns,
    pub b: Netns,
}

impl RpFilter {
    pub const DEV_A: &str = "rpa0";
    pub const DEV_B: &str = "rpb0";
    pub const SPOOFED: Ipv4Addr = Ipv4Addr::new(198, 19, 9, 1);
    pub const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 4, 2);
    pub const PORT: u16 = 9;
    pub const SENDS: usize = 10;
    pub const DEV_OTHER: &str = "rpd0";

    pub fn setup() -> Result<Self> {
        let a = Netns::new()?;
        let b = Netns::new()?;
        veth_pair(
            &a,
            Self::DEV_A,
            "198.18.4.1/24",
            &b,
            Self::DEV_B,
            "198.18.4.2/24",
        )?;
        b.sysctl("net.ipv4.conf.all.rp_filter", "1")?;
        b.sysctl(&format!("net.ipv4.conf.{}.rp_filter", Self::DEV_B), "1")?;
        a.ip(&["addr", "add", "198.19.9.1/32", "dev", "lo"])?;
        let mac_b = b.mac(Self::DEV_B)?;
        a.static_neighbour(Self::DEV_A, Self::DST, &mac_b)?;
        Ok(RpFilter { a, b })
    }

    /// The LVS/tunnel shape: B does have a route back to the spoofed source, but
    /// through another interface (one end of a veth pair kept inside B: this
    /// kernel has no dummy driver), so strict mode drops and loose mode (source
    /// reachable through ANY interface) accepts.
    pub fn route_back_elsewhere(&self) -> Result<()> {
        let peer = format!("{}p", Self::DEV_OTHER);
        self.b.ip(&[
            "link",
            "add",
            Self::DEV_OTHER,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])?;
        self.b.ip(&["link", "set", &peer, "up"])?;
        self.b.ip(&["link", "set", Self::DEV_OTHER, "up"])?;
        self.b
            .ip(&["route", "add", "198.19.9.0/24", "dev", Self::DEV_OTHER])?;
        Ok(())
    }

    /// Sets B's rp_filter on `all` and on its veth.
    pub fn set_mode(&self, mode: u8) -> Result<()> {
        self.b
            .sysctl("net.ipv4.conf.all.rp_filter", &mode.to_string())?;
        self.b.sysctl(
            &format!("net.ipv4.conf.{}.rp_filter", Self::DEV_B),
            &mode.to_string(),
        )?;
        Ok(())
    }

    /// Sends [`SENDS`](Self::SENDS) datagrams from the spoofed source.
    pub fn generate(&self) -> Result<usize> {
        let dst = SocketAddrV4::new(Self::DST, Self::PORT);
        udp_send(&self.a, Some(Self::SPOOFED), dst, Self::SENDS)
    }
}
