//! Which network namespace: an identity the kernel never reuses.
//!
//! The inode number users see (`ls -l /proc/PID/ns/net`) is reused as soon as a
//! namespace is freed: on a node where pods come and go, one inode names many
//! namespaces in one session. netdrop tells them apart by the kernel's
//! `net->net_cookie` (read by the probes at the drop, and by the agent with
//! `SO_NETNS_COOKIE` on a socket made inside the namespace). Where the kernel
//! has no cookie for both sides (before 5.14), the agent makes one up: a
//! generation per inode that changes when it sees the namespace go away
//! ([`GENERATION`] set).

use serde::{Deserialize, Serialize};

/// A network namespace: the inode users know it by, and what makes it unique.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct NetnsId {
    /// The nsfs inode (`ns.inum`), 0 if unknown.
    pub inode: u32,
    /// The kernel's `net_cookie`, or a generation netdrop assigned
    /// ([`GENERATION`] set); 0 when neither is known (old recordings).
    pub cookie: u64,
}

/// Marks a cookie netdrop made up (inode generation), not the kernel's.
pub const GENERATION: u64 = 1 << 63;

impl NetnsId {
    pub const fn new(inode: u32, cookie: u64) -> NetnsId {
        NetnsId { inode, cookie }
    }

    /// The kernel's cookie, if that is what this identity holds.
    pub fn kernel_cookie(&self) -> Option<u64> {
        (self.cookie != 0 && self.cookie & GENERATION == 0).then_some(self.cookie)
    }
}

impl std::fmt::Display for NetnsId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.inode)
    }
}

/// The cookie of the calling thread's network namespace (`SO_NETNS_COOKIE`,
/// Linux 5.14+); `None` where the kernel does not have it.
pub fn current_cookie() -> Option<u64> {
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: cookie and len are valid out-pointers of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    (rc == 0 && cookie != 0).then_some(cookie)
}

/// `SO_NETNS_COOKIE` (include/uapi/asm-generic/socket.h).
const SO_NETNS_COOKIE: libc::c_int = 71;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_cookie_or_generation() {
        assert_eq!(NetnsId::new(7, 42).kernel_cookie(), Some(42));
        assert_eq!(NetnsId::new(7, GENERATION | 3).kernel_cookie(), None);
        assert_eq!(NetnsId::new(7, 0).kernel_cookie(), None);
        assert_eq!(NetnsId::new(4026531840, 1).to_string(), "4026531840");
    }

    #[test]
    fn own_namespace_has_a_stable_cookie() {
        match (current_cookie(), current_cookie()) {
            (Some(a), Some(b)) => assert_eq!(a, b),
            (None, None) => eprintln!("SKIP: no SO_NETNS_COOKIE on this kernel (before 5.14)"),
            other => panic!("cookie came and went: {other:?}"),
        }
    }

    #[test]
    fn reused_identity_differs() {
        // Same inode, another namespace: never equal, never the same map key.
        let a = NetnsId::new(4026532300, 9001);
        let b = NetnsId::new(4026532300, 9002);
        assert_ne!(a, b);
        let mut m = std::collections::BTreeMap::new();
        m.insert(a, "old");
        m.insert(b, "new");
        assert_eq!(m.len(), 2);
    }
}
