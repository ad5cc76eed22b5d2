//! A classified drop, ready for any sink: the record plus what the agent knows about it.

use crate::{
    classify::{Cause, classify},
    container::Identity,
    decode::DropRecord,
    kernel::kallsyms::Kallsyms,
    namespaces::Namespaces,
    owner::{Owner, Owners},
    summary::Naming,
};

/// Converts the kernel's CLOCK_MONOTONIC timestamps to wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// realtime - monotonic, in ns, measured at start.
    offset_ns: i128,
    /// CLOCK_MONOTONIC at start, ns.
    mono_ns: u64,
}

impl Clock {
    pub fn now() -> Clock {
        let read = |id| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: valid pointer to a timespec.
            unsafe { libc::clock_gettime(id, &mut ts) };
            i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
        };
        let mono = read(libc::CLOCK_MONOTONIC);
        let real = read(libc::CLOCK_REALTIME);
        Clock {
            offset_ns: real - mono,
            mono_ns: mono as u64,
        }
    }

    /// The clock of a recording: `offset_ns` as [`Clock::offset_ns`] gave it.
    pub fn recorded(offset_ns: i64, mono_ns: u64) -> Clock {
        Clock {
            offset_ns: offset_ns.into(),
            mono_ns,
        }
    }

    pub fn offset_ns(&self) -> i64 {
        self.offset_ns as i64
    }

    /// CLOCK_MONOTONIC when this clock was made, ns.
    pub fn mono_at_start(&self) -> u64 {
        self.mono_ns
    }

    /// Unix seconds of a kernel timestamp.
    pub fn wall(&self, ktime_ns: u64) -> f64 {
        (i128::from(ktime_ns) + self.offset_ns) as f64 / 1e9
    }
}

/// A drop as every sink sees it.
#[derive(Debug, Clone)]
pub struct DropView<'a> {
    pub rec: &'a DropRecord,
    pub cause: Cause,
    pub reason: String,
    pub location: String,
    pub ts: f64,
    /// The process owning the drop's socket, when it has one and it is still open.
    pub owner: Option<Owner>,
    /// The namespace's `ip netns` name or container, if it has one.
    pub netns_name: Option<String>,
    /// The container or pod whose processes live in the namespace.
    pub netns_identity: Option<Identity>,
}

impl DropView<'_> {
    /// Whose drop it is: the socket owner's container or pod, else the namespace's.
    pub fn identity(&self) -> Option<&Identity> {
        self.owner
            .as_ref()
            .and_then(Owner::identity)
            .or(self.netns_identity.as_ref())
    }
}

/// Turns decoded records into views: names the reason, classifies, resolves the location.
pub struct Classifier {
    pub naming: Naming,
    pub syms: Kallsyms,
    pub clock: Clock,
    pub owners: Owners,
    /// The namespaces seen: identity → name.
    pub namespaces: Namespaces,
}

impl Classifier {
    pub fn drop_view<'a>(&mut self, rec: &'a DropRecord) -> DropView<'a> {
        let location = self.syms.resolve(rec.location);
        let reason = self.naming.drop_reason_name(rec.reason, &location);
        DropView {
            cause: classify(&reason, rec.accept_queue),
            reason,
            location,
            ts: self.clock.wall(rec.ts_ns),
            owner: self.owners.lookup(rec.owner_ino, rec.owner_tgid),
            netns_name: self.namespaces.name(rec.netns_id()),
            netns_identity: self.namespaces.identity(rec.netns_id()).cloned(),
            rec,
        }
    }
}
