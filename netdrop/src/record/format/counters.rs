//! The counter records: sparse in the file, dense in memory.

use super::{CountersEntry, SessionEntry};
use crate::summary::{Counts, Session};

impl CountersEntry {
    pub fn new(at_s: f64, counts: &Counts, session: &Session) -> CountersEntry {
        let sparse = |v: &[u64]| {
            v.iter()
                .enumerate()
                .filter(|(_, c)| **c != 0)
                .map(|(i, c)| (i as u32, *c))
                .collect()
        };
        CountersEntry {
            at_s,
            drops: sparse(&counts.drops),
            lost: sparse(&counts.lost),
            stats: counts.stats.clone(),
            session: SessionEntry::from(session),
            sent: Some(sparse(&counts.sent)),
        }
    }

    /// Back to dense counters (slots past `MAX_REASONS` are kept in the last slot).
    pub fn counts(&self) -> Counts {
        let n = netdrop_common::MAX_REASONS as usize;
        let dense = |v: &[(u32, u64)]| {
            let mut d = vec![0u64; n];
            for &(i, c) in v {
                let slot = (i as usize).min(n - 1);
                d[slot] = d[slot].saturating_add(c);
            }
            d
        };
        let mut stats = self.stats.clone();
        stats.resize(netdrop_common::stat::COUNT as usize, 0);
        let drops = dense(&self.drops);
        let lost = dense(&self.lost);
        let sent = match &self.sent {
            Some(sent) => dense(sent),
            // Before the event limit every drop not lost was sent.
            None => {
                use netdrop_common::stat::*;
                for (total, lost, sent) in [
                    (
                        NEIGH_CREATE_FAIL,
                        NEIGH_CREATE_FAIL_LOST,
                        NEIGH_CREATE_FAIL_SENT,
                    ),
                    (ACCEPT_SYN_DROP, ACCEPT_SYN_DROP_LOST, ACCEPT_SYN_DROP_SENT),
                ] {
                    stats[sent as usize] =
                        stats[total as usize].saturating_sub(stats[lost as usize]);
                }
                drops
                    .iter()
                    .zip(&lost)
                    .map(|(d, l)| d.saturating_sub(*l))
                    .collect()
            }
        };
        Counts {
            drops,
            lost,
            sent,
            stats,
        }
    }
}

impl From<&Session> for SessionEntry {
    fn from(s: &Session) -> Self {
        SessionEntry {
            duration_s: s.duration_s,
            events_read: s.events_read,
            undecodable: s.undecodable,
        }
    }
}

impl From<SessionEntry> for Session {
    fn from(s: SessionEntry) -> Self {
        Session {
            duration_s: s.duration_s,
            events_read: s.events_read,
            undecodable: s.undecodable,
        }
    }
}
