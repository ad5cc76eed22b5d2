//! The network namespaces a session has seen: identity → name, path, gone.
//!
//! A drop names its namespace by inode and cookie ([`NetnsId`]). The first
//! drop of a namespace not seen before makes netdrop find it at once (in
//! `/run/netns` and `/proc/*/ns/net`), check that the namespace now holding
//! that inode is the one that dropped (its cookie), name it, and hand it back
//! to be read ([`Seen::New`]): a namespace that lives for a second still gets
//! its name, values and counters. A namespace that goes away keeps its last
//! name, marked gone; a new one that gets the same inode is another entry.

use std::{
    collections::{HashMap, VecDeque},
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::{
    container::Identity,
    context::{NetnsHandle, in_netns, list_netns},
    netns_id::{self, GENERATION, NetnsId},
};

/// What is known of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// `ip netns` name or `container:<id>`.
    pub name: Option<String>,
    /// An nsfs file that held it when it was found.
    pub path: Option<PathBuf>,
    /// It no longer exists (another namespace has its inode, or none).
    pub gone: bool,
    /// Found after the last full snapshot: read again shortly after its drops,
    /// since the periodic snapshot may never see it.
    pub young: bool,
    /// The container or pod whose processes live in it, as last found.
    pub identity: Option<Identity>,
}

/// The container or pod of namespace `ns`: that of the lowest pid found in it
/// (under Kubernetes the pod's sandbox: its pod, with no container name).
pub fn identity_of(ns: &NetnsHandle) -> Option<Identity> {
    let from_path = || {
        ns.path
            .strip_prefix("/proc")
            .ok()?
            .iter()
            .next()?
            .to_str()?
            .parse()
            .ok()
    };
    crate::container::of_pid(ns.pid.or_else(from_path)?)
}

/// What [`Namespaces::see`] learned about a drop's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Known already.
    Known,
    /// Found just now: read it (its values and counters) while it exists.
    New(NetnsHandle),
    /// Not found (yet, or any more).
    Unknown,
}

/// Entries kept; the oldest gone ones are forgotten first (a node where pods
/// come and go must not grow without bound).
const MAX_KNOWN: usize = 16384;
/// Listings made to find new namespaces, per second and in one burst.
const RELISTS_PER_SEC: f64 = 100.0;
const RELIST_BURST: f64 = 20.0;
/// A namespace not found is looked for again after this long.
const RETRY_MISS: Duration = Duration::from_millis(200);

/// A namespace a full snapshot read: inode, cookie as read, name, file.
pub type Listing = (u32, u64, Option<String>, Option<PathBuf>);

#[derive(Debug)]
struct Listed {
    handle: NetnsHandle,
    /// Its cookie, read on demand (`None`: not read yet).
    cookie: Option<Option<u64>>,
}

#[derive(Debug)]
pub struct Namespaces {
    /// The kernel's cookies are usable on both sides (probes and agent).
    cookies: bool,
    known: HashMap<NetnsId, Known>,
    order: VecDeque<NetnsId>,
    listing: HashMap<u32, Listed>,
    misses: HashMap<NetnsId, Instant>,
    /// Listing every namespace scans /proc: at most [`RELISTS_PER_SEC`] (in bursts).
    relist_budget: Budget,
    /// Without cookies: the current generation of each inode.
    generation: HashMap<u32, u64>,
}

impl Namespaces {
    /// `kernel_cookies`: the probes read `net_cookie` on this kernel.
    pub fn new(kernel_cookies: bool) -> Namespaces {
        Namespaces::with_cookies(kernel_cookies && netns_id::current_cookie().is_some())
    }

    /// A registry that trusts cookies (`true`) or makes generations up.
    pub fn with_cookies(cookies: bool) -> Namespaces {
        Namespaces {
            cookies,
            known: HashMap::new(),
            order: VecDeque::new(),
            listing: HashMap::new(),
            misses: HashMap::new(),
            relist_budget: Budget::new(RELISTS_PER_SEC, RELIST_BURST),
            generation: HashMap::new(),
        }
    }

    pub fn uses_cookies(&self) -> bool {
        self.cookies
    }

    /// The identity of namespace `inode` whose kernel cookie is `cookie` (0:
    /// unknown): the cookie itself, or without cookies the inode's current
    /// generation.
    pub fn identify(&self, inode: u32, cookie: u64) -> NetnsId {
        if self.cookies && cookie != 0 {
            NetnsId::new(inode, cookie)
        } else {
            let g = self.generation.get(&inode).copied().unwrap_or(0);
            NetnsId::new(inode, GENERATION | g)
        }
    }

    pub fn get(&self, id: NetnsId) -> Option<&Known> {
        self.known.get(&id)
    }

    pub fn name(&self, id: NetnsId) -> Option<String> {
        self.known.get(&id).and_then(|k| k.name.clone())
    }

    /// The container or pod whose processes live in namespace `id` (labels
    /// for it: [`Identity::labels`]).
    pub fn identity(&self, id: NetnsId) -> Option<&Identity> {
        self.known.get(&id).and_then(|k| k.identity.as_ref())
    }

    /// A drop (or refused SYN) in namespace `id`: finds it if it is new.
    pub fn see(&mut self, id: NetnsId) -> Seen {
        if id.inode == 0 || self.known.contains_key(&id) {
            return Seen::Known;
        }
        if self
            .misses
            .get(&id)
            .is_some_and(|t| t.elapsed() < RETRY_MISS)
        {
            return Seen::Unknown;
        }
        // The listing may be older than the namespace (or show the inode's
        // previous holder): list again, within the budget.
        let mut handle = self.find(id);
        if handle.is_none() {
            if !self.relist_budget.take() {
                // Over budget: the next drop tries again (no miss recorded).
                return Seen::Unknown;
            }
            self.relist();
            handle = self.find(id);
        }
        let Some(handle) = handle else {
            self.miss(id);
            return Seen::Unknown;
        };
        self.misses.remove(&id);
        self.insert(
            id,
            Known {
                name: crate::snapshot::display_name(&handle),
                path: Some(handle.path.clone()),
                gone: false,
                young: true,
                identity: identity_of(&handle),
            },
        );
        Seen::New(handle)
    }

    /// The listed namespace that is `id` (same inode and, with cookies, same cookie).
    fn find(&mut self, id: NetnsId) -> Option<NetnsHandle> {
        let cookies = self.cookies;
        let listed = self.listing.get_mut(&id.inode)?;
        if cookies {
            let path = listed.handle.path.clone();
            let cookie = *listed
                .cookie
                .get_or_insert_with(|| in_netns(&path, netns_id::current_cookie).ok().flatten());
            if cookie != Some(id.cookie) {
                return None;
            }
        }
        Some(listed.handle.clone())
    }

    fn miss(&mut self, id: NetnsId) {
        if self.misses.len() >= MAX_KNOWN {
            self.misses.retain(|_, t| t.elapsed() < RETRY_MISS);
        }
        self.misses.insert(id, Instant::now());
    }

    /// The namespaces a full snapshot listed (`complete`: all of them):
    /// returns the identity of each, in order, and updates names and what is gone.
    pub fn on_listing(&mut self, listed: &[Listing], complete: bool) -> Vec<NetnsId> {
        if complete {
            let now: std::collections::HashSet<u32> = listed.iter().map(|l| l.0).collect();
            // Without cookies, an inode that went away starts a new generation.
            if !self.cookies {
                let gone: Vec<u32> = self
                    .known
                    .keys()
                    .filter(|id| !now.contains(&id.inode))
                    .map(|id| id.inode)
                    .collect();
                for inode in gone {
                    *self.generation.entry(inode).or_default() += 1;
                }
            }
        }
        let ids: Vec<NetnsId> = listed.iter().map(|l| self.identify(l.0, l.1)).collect();
        if complete {
            let present: std::collections::HashSet<NetnsId> = ids.iter().copied().collect();
            for (id, k) in self.known.iter_mut() {
                if !present.contains(id) {
                    k.gone = true;
                }
            }
        }
        for (id, (_, _, name, path)) in ids.iter().zip(listed) {
            match self.known.get_mut(id) {
                Some(k) => {
                    k.young = false;
                    if name.is_some() {
                        k.name = name.clone();
                    }
                    if path.is_some() {
                        k.path = path.clone();
                    }
                }
                None => self.insert(
                    *id,
                    Known {
                        name: name.clone(),
                        path: path.clone(),
                        gone: false,
                        young: false,
                        identity: None,
                    },
                ),
            }
        }
        ids
    }

    /// Gives a full snapshot's namespaces their identities (cookies or
    /// generations) and learns their names and which are gone.
    pub fn identify_snapshot(&mut self, snap: &mut crate::snapshot::Snapshot) {
        let listed: Vec<Listing> = snap
            .netns
            .iter()
            .map(|n| (n.inode as u32, n.cookie, n.name.clone(), n.path.clone()))
            .collect();
        let ids = self.on_listing(&listed, snap.netns_skipped == 0);
        for (n, id) in snap.netns.iter_mut().zip(ids) {
            n.cookie = id.cookie;
            if let Some(k) = self.known.get_mut(&id)
                && n.identity.is_some()
            {
                k.identity = n.identity.clone();
            }
        }
    }

    /// Namespace `id` was found gone when netdrop tried to read it.
    pub fn mark_gone(&mut self, id: NetnsId) {
        if let Some(k) = self.known.get_mut(&id) {
            k.gone = true;
        }
    }

    fn insert(&mut self, id: NetnsId, k: Known) {
        if self.known.len() >= MAX_KNOWN {
            // Forget the oldest gone namespace, else the oldest.
            let at = self
                .order
                .iter()
                .position(|i| self.known.get(i).is_none_or(|k| k.gone))
                .unwrap_or(0);
            if let Some(old) = self.order.remove(at) {
                self.known.remove(&old);
            }
        }
        if self.known.insert(id, k).is_none() {
            self.order.push_back(id);
        }
    }

    fn relist(&mut self) {
        let mut old = std::mem::take(&mut self.listing);
        for handle in list_netns() {
            let Ok(inode) = u32::try_from(handle.inode) else {
                continue;
            };
            // Keep a cookie already read if the same file still holds the inode.
            let cookie = old
                .remove(&inode)
                .filter(|l| l.handle.path == handle.path)
                .and_then(|l| l.cookie);
            self.listing.insert(inode, Listed { handle, cookie });
        }
    }
}

/// A token bucket.
#[derive(Debug)]
pub struct Budget {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Budget {
    pub fn new(per_sec: f64, burst: f64) -> Budget {
        Budget {
            per_sec,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        let secs = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + secs * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_cookies_an_inode_that_goes_away_is_a_new_namespace() {
        let mut ns = Namespaces::with_cookies(false);
        let a = ns.identify(4026532300, 0);
        let ids = ns.on_listing(&[(4026532300, 0, Some("pod-a".into()), None)], true);
        assert_eq!(ids, vec![a]);
        assert_eq!(ns.name(a).as_deref(), Some("pod-a"));
        // Gone at the next listing: the inode's next namespace is another one.
        ns.on_listing(&[], true);
        assert!(ns.get(a).unwrap().gone);
        let b = ns.identify(4026532300, 0);
        assert_ne!(a, b);
        ns.on_listing(&[(4026532300, 0, Some("pod-b".into()), None)], true);
        assert_eq!(ns.name(b).as_deref(), Some("pod-b"));
        assert_eq!(
            ns.name(a).as_deref(),
            Some("pod-a"),
            "the gone one keeps its name"
        );
    }

    #[test]
    fn with_cookies_the_cookie_is_the_identity() {
        let mut ns = Namespaces::with_cookies(true);
        let a = ns.identify(4026532300, 11);
        let b = ns.identify(4026532300, 12);
        assert_ne!(a, b);
        assert_eq!(ns.identify(4026532300, 11), a);
        let ids = ns.on_listing(
            &[
                (4026532300, 11, Some("old".into()), None),
                (7, 13, None, None),
            ],
            true,
        );
        assert_eq!(ids[0], a);
        ns.on_listing(&[(4026532300, 12, Some("new".into()), None)], true);
        assert!(ns.get(a).unwrap().gone);
        assert_eq!(ns.name(a).as_deref(), Some("old"));
        assert_eq!(ns.name(b).as_deref(), Some("new"));
        assert!(!ns.get(b).unwrap().gone);
        // A zero cookie (unknown) falls back to a generation, never to another's cookie.
        assert_eq!(ns.identify(5, 0).cookie & GENERATION, GENERATION);
    }

    #[test]
    fn relisting_has_a_budget() {
        let mut b = Budget::new(100.0, 3.0);
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take(), "a burst of 3");
        std::thread::sleep(Duration::from_millis(25));
        assert!(b.take(), "refilled at 100/s");
    }

    #[test]
    fn memory_stays_bounded() {
        let mut ns = Namespaces::with_cookies(true);
        for i in 0..(MAX_KNOWN as u64 + 500) {
            // Incomplete listings: no sweep for gone ones (keeps the test fast).
            let listed = [(1000 + i as u32, i + 1, None, None)];
            ns.on_listing(&listed, false);
        }
        assert!(ns.known.len() <= MAX_KNOWN);
        assert_eq!(ns.known.len(), ns.order.len());
    }

    #[test]
    fn the_own_namespace_is_found_and_named_once() {
        let me = crate::context::current_netns_inode().unwrap() as u32;
        let mut ns = Namespaces::new(true);
        let cookie = netns_id::current_cookie().unwrap_or(0);
        let id = ns.identify(me, cookie);
        match ns.see(id) {
            Seen::New(h) => assert_eq!(h.inode, u64::from(me)),
            // Not root: /proc/*/ns/net of other processes may be unreadable, and
            // setns refused; our own is still listed.
            other => eprintln!("SKIP: own namespace not found ({other:?}); needs root"),
        }
        assert_ne!(
            ns.see(id),
            Seen::New(NetnsHandle {
                inode: u64::from(me),
                path: PathBuf::new(),
                name: None,
                pid: None,
            })
        );
        // A cookie that is not this namespace's (with cookies): not ours.
        if ns.uses_cookies() {
            let other = NetnsId::new(me, cookie + 1_000_000);
            assert_eq!(ns.see(other), Seen::Unknown);
        }
    }
}
