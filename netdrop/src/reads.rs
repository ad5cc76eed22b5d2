//! Reads of namespaces driven by drops, between the periodic snapshots, so that
//! the diagnosis has the values *in force at the drops* and the counters of
//! namespaces that do not live until the next snapshot:
//!
//! - a namespace's first drop: it is found, named and read at once;
//! - a drop in a namespace whose last read is older than [`DropReads::FRESH`]:
//!   read again now (an operator may have changed a knob since), within a budget;
//! - a namespace found after the last full snapshot ("young"): read again
//!   shortly after its latest drops, so its kernel counters include them even
//!   if it is deleted before the next snapshot;
//! - a full neighbour table: the initial namespace (where the global
//!   gc_thresh* live) is read now, if its last read is not fresh.
//!
//! Each read is a thread joined to the namespace ([`crate::context::in_netns`]);
//! they go to the sinks (recordings keep them) and to the diagnosis.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::{
    context::{self, NetnsHandle},
    diagnose::Diagnosis,
    namespaces::{Namespaces, Seen},
    netns_id::{self, NetnsId},
    sink::Sink,
    snapshot::NetnsSnapshot,
};

pub struct DropReads {
    started: Instant,
    /// When each young namespace is due to be read again.
    due: BTreeMap<NetnsId, Instant>,
    last_read: HashMap<NetnsId, Instant>,
    /// Reads at drops (not first reads, not due ones), per second.
    budget: crate::namespaces::Budget,
    /// The initial namespace: (its file, when it was last read).
    root: Option<(PathBuf, Option<Instant>)>,
}

impl DropReads {
    /// How often due namespaces are read.
    pub const TICK: Duration = Duration::from_millis(50);
    /// A read older than this at a drop is taken again.
    pub const FRESH: Duration = Duration::from_millis(250);
    /// Read again this long after a drop (later drops push it back, up to
    /// [`DropReads::MAX_WAIT`] after the last read).
    const AFTER_DROP: Duration = Duration::from_millis(100);
    const MAX_WAIT: Duration = Duration::from_millis(500);
    /// At most this many due reads per tick.
    const PER_TICK: usize = 16;
    /// Namespaces tracked, at most (reads, due).
    const MAX_TRACKED: usize = 4096;

    pub fn new(started: Instant) -> DropReads {
        DropReads {
            started,
            due: BTreeMap::new(),
            last_read: HashMap::new(),
            budget: crate::namespaces::Budget::new(50.0, 20.0),
            root: None,
        }
    }

    pub fn any_due(&self) -> bool {
        !self.due.is_empty()
    }

    /// A full snapshot read every namespace in it.
    pub fn on_snapshot(&mut self, snap: &crate::snapshot::Snapshot) {
        let now = Instant::now();
        if self.last_read.len() > Self::MAX_TRACKED {
            self.last_read.clear();
        }
        for n in &snap.netns {
            self.last_read.insert(n.id(), now);
        }
    }

    /// A drop (or refused SYN) in namespace `id`.
    pub fn on_drop(
        &mut self,
        id: NetnsId,
        ns: &mut Namespaces,
        diagnosis: &mut Diagnosis,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        let path = match ns.see(id) {
            Seen::New(handle) => return self.read(id, &handle.path, ns, diagnosis, sink),
            Seen::Known => match ns.get(id) {
                Some(k) if !k.gone => k.path.clone(),
                _ => return Ok(()),
            },
            Seen::Unknown => return Ok(()),
        };
        let now = Instant::now();
        let stale = self
            .last_read
            .get(&id)
            .is_none_or(|t| now.duration_since(*t) >= Self::FRESH);
        if stale
            && let Some(path) = &path
            && self.budget.take()
        {
            return self.read(id, path, ns, diagnosis, sink);
        }
        if ns.get(id).is_some_and(|k| k.young) {
            let latest = self.last_read.get(&id).map_or(now, |t| *t + Self::MAX_WAIT);
            if self.due.len() < Self::MAX_TRACKED || self.due.contains_key(&id) {
                self.due.insert(id, (now + Self::AFTER_DROP).min(latest));
            }
        }
        Ok(())
    }

    /// A drop of the neighbour table (global): reads the initial namespace,
    /// where gc_thresh* are, unless it was read just now.
    pub fn on_table_drop(
        &mut self,
        ns: &mut Namespaces,
        diagnosis: &mut Diagnosis,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        let root = self.root.get_or_insert_with(|| {
            // netdrop normally runs there; /proc/1/ns/net may be refused even to root.
            let path = if context::is_initial_netns() {
                PathBuf::from("/proc/self/ns/net")
            } else {
                PathBuf::from(context::netns::ROOT_NETNS_PATH)
            };
            (path, None)
        });
        if root.1.is_some_and(|t| t.elapsed() < Self::FRESH) {
            return Ok(());
        }
        root.1 = Some(Instant::now());
        let path = root.0.clone();
        let Ok(inode) = context::netns_inode(&path) else {
            return Ok(());
        };
        let cookie = context::in_netns(&path, netns_id::current_cookie)
            .ok()
            .flatten()
            .unwrap_or(0);
        let id = ns.identify(inode as u32, cookie);
        self.read(id, &path, ns, diagnosis, sink)
    }

    pub fn read_due(
        &mut self,
        ns: &mut Namespaces,
        diagnosis: &mut Diagnosis,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        let now = Instant::now();
        let ready: Vec<NetnsId> = self
            .due
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, _)| *id)
            .take(Self::PER_TICK)
            .collect();
        for id in ready {
            self.due.remove(&id);
            self.read_known(id, ns, diagnosis, sink)?;
        }
        Ok(())
    }

    /// Every namespace waiting, now (at the end of a session).
    pub fn read_all(
        &mut self,
        ns: &mut Namespaces,
        diagnosis: &mut Diagnosis,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        for id in std::mem::take(&mut self.due).into_keys() {
            self.read_known(id, ns, diagnosis, sink)?;
        }
        Ok(())
    }

    fn read_known(
        &mut self,
        id: NetnsId,
        ns: &mut Namespaces,
        diagnosis: &mut Diagnosis,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        match ns.get(id) {
            Some(k) if !k.gone => match k.path.clone() {
                Some(path) => self.read(id, &path, ns, diagnosis, sink),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Reads namespace `id` through `path`, if that file still holds it.
    fn read(
        &mut self,
        id: NetnsId,
        path: &Path,
        ns: &mut Namespaces,
        diagnosis: &mut Diagnosis,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        let handle = NetnsHandle {
            inode: id.inode.into(),
            path: path.to_path_buf(),
            name: ns.name(id),
            pid: None,
        };
        let at = self.started.elapsed().as_secs_f64();
        if self.last_read.len() > Self::MAX_TRACKED {
            let keep = Instant::now() - Self::MAX_WAIT * 4;
            self.last_read.retain(|_, t| *t >= keep);
        }
        self.last_read.insert(id, Instant::now());
        let same = |s: &NetnsSnapshot| {
            s.inode == u64::from(id.inode) && ns.identify(id.inode, s.cookie) == id
        };
        match crate::snapshot::read_netns(&handle, context::nft::Why::Drops) {
            Some(mut snap) if same(&snap) => {
                snap.cookie = id.cookie;
                snap.name = ns.name(id).or(snap.name);
                snap.identity = snap.identity.or_else(|| ns.identity(id).cloned());
                crate::dispatch::Dispatch { diagnosis, sink }.netns_snapshot(at, snap)?;
            }
            _ => ns.mark_gone(id),
        }
        Ok(())
    }
}
