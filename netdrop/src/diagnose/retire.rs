//! For an agent that runs for days (`serve`): a namespace gone for longer
//! than [`Diagnosis::retain_s`] is forgotten, groups, reads and counters,
//! while every total stays as it was: what it contributed to the counter
//! rows and to the drops known only from the kernel's counters is kept as
//! retired sums. Pods that come and go then cost no memory for good.

use std::collections::{BTreeMap, BTreeSet};

use super::Diagnosis;
use crate::{netns_id::NetnsId, summary::KernelOnly};

/// What retired namespaces leave behind.
#[derive(Debug, Default)]
pub struct Retired {
    pub kernel_only: KernelOnly,
    /// Since when each namespace with state has been seen gone (seconds
    /// since the start).
    gone_since: BTreeMap<NetnsId, f64>,
    /// Namespaces forgotten so far.
    pub namespaces: u64,
}

impl Diagnosis {
    /// Every namespace the diagnosis holds anything of.
    fn held(&self) -> BTreeSet<NetnsId> {
        let mut ids: BTreeSet<NetnsId> = self.accept.keys().map(|(ns, _)| *ns).collect();
        ids.extend(self.accept_seen.keys());
        ids.extend(self.other_seen.keys());
        ids.extend(self.tcp_rcv_unreasoned.keys());
        ids.extend(self.neigh_queue.keys().map(|(ns, ..)| *ns));
        ids.extend(self.rp.keys().map(|(ns, _)| *ns));
        ids.extend(self.latest_ns.keys());
        ids.extend(self.counters.ns.keys());
        ids.extend(self.declared.groups.keys().map(|(_, ns, _)| *ns));
        ids.remove(&NetnsId::default());
        ids
    }

    /// After a full snapshot: notes which namespaces are gone, and forgets
    /// those gone for `retain_s` (nothing without it: a report of a bounded
    /// observation keeps every group).
    pub(super) fn retire_gone(&mut self) {
        let Some(retain) = self.retain_s else {
            return;
        };
        let now = self.now_s;
        let held = self.held();
        let gone: Vec<NetnsId> = held.iter().copied().filter(|id| self.gone(*id)).collect();
        let since = &mut self.retired.gone_since;
        since.retain(|id, _| held.contains(id));
        for id in held.iter().filter(|id| !gone.contains(id)) {
            since.remove(id);
        }
        for id in &gone {
            since.entry(*id).or_insert(now);
        }
        let due: Vec<NetnsId> = since
            .iter()
            .filter(|(_, t)| now - **t >= retain)
            .map(|(id, _)| *id)
            .collect();
        if due.is_empty() {
            return;
        }
        let before = self.kernel_only_live();
        for id in &due {
            self.forget_ns(*id);
            self.retired.gone_since.remove(id);
        }
        let lost = KernelOnly::lost_between(&before, &self.kernel_only_live());
        self.retired.kernel_only.add(&lost);
        self.retired.namespaces += due.len() as u64;
    }

    fn forget_ns(&mut self, id: NetnsId) {
        self.accept.retain(|(ns, _), _| *ns != id);
        self.accept_seen.remove(&id);
        self.other_seen.remove(&id);
        self.tcp_rcv_unreasoned.remove(&id);
        self.neigh_queue.retain(|(ns, ..), _| *ns != id);
        self.rp.retain(|(ns, _), _| *ns != id);
        self.latest_ns.remove(&id);
        self.peak_listener.retain(|(ns, _), _| *ns != id);
        self.counters.retire(id);
        self.declared.retire(id);
    }
}
