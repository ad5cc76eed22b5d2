//! What the live screen shows, kept as the sink is fed: per-cause totals,
//! rates and a minute of drops per second from the kernel's exact counters;
//! the latest diagnosis (groups, advice); `other` drops counted by reason and
//! kernel location; the latest drop lines of each cause. Pure, and bounded
//! whatever the drop rate: a minute per cause, [`LINES_PER_CAUSE`] lines per
//! cause, [`OTHER_ROWS`] reason/location rows.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::filter::{Facts, Filter};
use crate::{
    classify::Cause,
    diagnose::{
        Report,
        model::{CauseReport, Group},
        report::Hooks,
    },
    summary::{Session, Summary},
    text::safe,
};

/// Samples (one a second) in a cause's sparkline.
pub const SPARK_SECONDS: usize = 60;
/// Samples a rate is the mean of.
pub const RATE_SECONDS: usize = 5;
/// Drop lines kept per cause.
pub const LINES_PER_CAUSE: usize = 64;
/// `other` rows kept; drops of further reason/location pairs add up in one row.
pub const OTHER_ROWS: usize = 256;
/// The row the pairs beyond [`OTHER_ROWS`] add up in.
pub const MORE: &str = "(more locations)";

/// One cause: its exact total and its drops per second over the last minute.
#[derive(Debug, Clone, PartialEq)]
pub struct CauseRow {
    pub cause: Cause,
    pub total: u64,
    /// Drops per second, oldest first, at most [`SPARK_SECONDS`].
    pub series: VecDeque<u64>,
}

impl CauseRow {
    /// Drops per second over the last [`RATE_SECONDS`] samples.
    pub fn rate(&self) -> f64 {
        let n = self.series.len().min(RATE_SECONDS);
        if n == 0 {
            return 0.0;
        }
        self.series.iter().rev().take(n).sum::<u64>() as f64 / n as f64
    }
}

/// A drop line as shown (escaped) and what the filter reads of it.
#[derive(Debug, Clone, PartialEq)]
pub struct DropLine {
    pub text: String,
    /// The owner (or task) as shown: `4242 nginx, pod prod/web-1` (escaped).
    pub who: String,
    pub facts: Facts,
}

/// `other` drops of one reason at one kernel location.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OtherRow {
    pub count: u64,
    /// Drops in each of the last seconds (newest last).
    window: VecDeque<u64>,
    /// `count` at the last sample.
    sampled: u64,
}

impl OtherRow {
    pub fn rate(&self) -> f64 {
        if self.window.is_empty() {
            return 0.0;
        }
        self.window.iter().sum::<u64>() as f64 / self.window.len() as f64
    }
}

/// `other` drops by (reason, location): a count per row, not a line per drop.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OtherAgg {
    rows: HashMap<(String, String), OtherRow>,
}

impl OtherAgg {
    pub fn add(&mut self, reason: &str, location: &str) {
        let mut key = (reason.to_string(), location.to_string());
        if !self.rows.contains_key(&key) && self.rows.len() >= OTHER_ROWS - 1 {
            key = (MORE.into(), String::new());
        }
        self.rows.entry(key).or_default().count += 1;
    }

    /// A second went by: each row's drops in it.
    pub fn sample(&mut self) {
        for row in self.rows.values_mut() {
            row.window.push_back(row.count - row.sampled);
            row.sampled = row.count;
            if row.window.len() > RATE_SECONDS {
                row.window.pop_front();
            }
        }
    }

    /// Rows, most drops per second first (then most drops, then by name).
    pub fn ranked(&self) -> Vec<(&str, &str, &OtherRow)> {
        let mut v: Vec<_> = self
            .rows
            .iter()
            .map(|((r, l), row)| (r.as_str(), l.as_str(), row))
            .collect();
        v.sort_by(|a, b| {
            b.2.rate()
                .total_cmp(&a.2.rate())
                .then(b.2.count.cmp(&a.2.count))
                .then((a.0, a.1).cmp(&(b.0, b.1)))
        });
        v
    }
}

/// Everything drawn from the data (what `p` freezes).
#[derive(Debug, Clone, Default)]
pub struct Data {
    pub causes: BTreeMap<Cause, CauseRow>,
    pub report: Option<Report>,
    /// Every `other` drop seen.
    pub other: OtherAgg,
    /// `other` drops matching the filter, since it was set.
    pub other_filtered: Option<OtherAgg>,
    pub lines: BTreeMap<Cause, VecDeque<DropLine>>,
    /// The latest totals (held back, lost).
    pub summary: Summary,
    pub session: Session,
    /// Seconds since the observation (or recording) started.
    pub at_s: f64,
    pub hooks: Hooks,
    /// Per-cause totals and time of the previous counters.
    last_counts: Option<(f64, BTreeMap<Cause, u64>)>,
}

/// How causes are ranked (`s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Rate,
    Total,
}

impl Data {
    /// The kernel's exact counters at `at_s` (every second): totals and the
    /// drops per second since the previous counters.
    pub fn on_counts(&mut self, at_s: f64, s: &Summary) {
        self.at_s = self.at_s.max(at_s);
        let totals: BTreeMap<Cause, u64> = Cause::ALL.iter().map(|&c| (c, s.cause(c))).collect();
        // The counters start at 0 with the observation (or recording).
        let (prev_at, prev) = self.last_counts.take().unwrap_or_default();
        {
            let dt = at_s - prev_at;
            if dt > 0.0 {
                for (&c, &n) in &totals {
                    let delta = n.saturating_sub(prev.get(&c).copied().unwrap_or(0));
                    if delta == 0 && !self.causes.contains_key(&c) {
                        continue;
                    }
                    let per_s = (delta as f64 / dt).round() as u64;
                    let row = self.row(c);
                    row.series.push_back(per_s);
                    if row.series.len() > SPARK_SECONDS {
                        row.series.pop_front();
                    }
                }
                self.other.sample();
                if let Some(f) = &mut self.other_filtered {
                    f.sample();
                }
            }
        }
        for (&c, &n) in &totals {
            if n > 0 {
                let row = self.row(c);
                row.total = row.total.max(n);
            }
        }
        self.last_counts = Some((at_s, totals));
    }

    /// The running totals (every interval): exact, with what only the
    /// kernel's own counters show.
    pub fn on_tick(&mut self, s: &Summary, session: &Session) {
        for c in Cause::ALL {
            let n = s.cause(c);
            if n > 0 {
                let row = self.row(c);
                row.total = row.total.max(n);
            }
        }
        self.summary = s.clone();
        self.session = *session;
        self.at_s = self.at_s.max(session.duration_s);
    }

    pub fn on_report(&mut self, r: &Report) {
        for c in &r.causes {
            let row = self.row(c.cause);
            row.total = row.total.max(c.drops);
        }
        self.report = Some(r.clone());
    }

    /// A drop line of `cause`; `other` drops also add to their reason/location row.
    pub fn on_line(
        &mut self,
        cause: Cause,
        line: DropLine,
        other: Option<(&str, &str)>,
        filter: &Filter,
    ) {
        if let Some((reason, location)) = other {
            self.other.add(reason, location);
            if let Some(f) = &mut self.other_filtered
                && filter.matches(&line.facts)
            {
                f.add(reason, location);
            }
        }
        let lines = self.lines.entry(cause).or_default();
        lines.push_back(line);
        if lines.len() > LINES_PER_CAUSE {
            lines.pop_front();
        }
    }

    fn row(&mut self, c: Cause) -> &mut CauseRow {
        self.causes.entry(c).or_insert_with(|| CauseRow {
            cause: c,
            total: 0,
            series: VecDeque::new(),
        })
    }

    /// Causes with drops, ranked.
    pub fn ranked(&self, sort: Sort) -> Vec<&CauseRow> {
        let mut v: Vec<&CauseRow> = self.causes.values().filter(|r| r.total > 0).collect();
        v.sort_by(|a, b| match sort {
            Sort::Rate => b
                .rate()
                .total_cmp(&a.rate())
                .then(b.total.cmp(&a.total))
                .then(a.cause.cmp(&b.cause)),
            Sort::Total => b.total.cmp(&a.total).then(a.cause.cmp(&b.cause)),
        });
        v
    }

    /// The diagnosis of `cause`: its advice lines (escaped).
    pub fn advice(&self, cause: Cause) -> Vec<String> {
        self.cause_report(cause)
            .map(|c| {
                c.advice
                    .iter()
                    .map(|a| safe(&a.action).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn cause_report(&self, cause: Cause) -> Option<&CauseReport> {
        self.report
            .as_ref()?
            .causes
            .iter()
            .find(|c| c.cause == cause)
    }

    /// The groups of `cause` that match the filter, with the latest owner
    /// seen in each one's namespace.
    pub fn groups(&self, cause: Cause, filter: &Filter) -> Vec<GroupRow> {
        let Some(c) = self.cause_report(cause) else {
            return Vec::new();
        };
        let lines = self.lines.get(&cause);
        c.groups
            .iter()
            .map(|g| {
                let mut facts = group_facts(g);
                let owner = lines.and_then(|ls| {
                    ls.iter()
                        .rev()
                        .find(|l| facts.netns.is_some() && l.facts.netns == facts.netns)
                });
                if let Some(o) = owner {
                    facts.pid = o.facts.pid;
                    facts.comm = o.facts.comm.clone();
                }
                GroupRow {
                    text: safe(&facts.text).into_owned(),
                    owner: owner.map(|o| o.who.clone()),
                    netns: facts.netns,
                    facts,
                }
            })
            .filter(|g| filter.matches(&g.facts))
            .collect()
    }

    /// The latest lines of `cause` (of the group's namespace when one is
    /// given) that match the filter, newest last, at most `n`.
    pub fn recent(
        &self,
        cause: Cause,
        netns: Option<u64>,
        filter: &Filter,
        n: usize,
    ) -> Vec<&DropLine> {
        let Some(lines) = self.lines.get(&cause) else {
            return Vec::new();
        };
        let mut v: Vec<&DropLine> = lines
            .iter()
            .rev()
            .filter(|l| netns.is_none() || l.facts.netns == netns)
            .filter(|l| filter.matches(&l.facts))
            .take(n)
            .collect();
        v.reverse();
        v
    }
}

/// A group of the selected cause as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    /// The diagnosis' line for it (escaped).
    pub text: String,
    /// The latest drop's owner in its namespace (escaped).
    pub owner: Option<String>,
    pub netns: Option<u64>,
    pub facts: Facts,
}

/// What the filter reads of a group (its line, unescaped).
fn group_facts(g: &Group) -> Facts {
    let text = crate::diagnose::render::group_line(g);
    let name = |n: &Option<String>, l: &crate::container::Labels| {
        let parts: Vec<String> = n.iter().cloned().chain(l.text()).collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    };
    let mut f = Facts {
        text,
        ..Facts::default()
    };
    match g {
        Group::Listener {
            netns,
            netns_name,
            labels,
            listener,
            ..
        } => {
            f.netns = Some(*netns);
            f.netns_name = name(netns_name, labels);
            f.ports = listener
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .into_iter()
                .collect();
        }
        Group::Neighbour {
            netns,
            netns_name,
            labels,
            dev,
            ..
        }
        | Group::Device {
            netns,
            netns_name,
            labels,
            dev,
            ..
        } => {
            f.netns = Some(*netns);
            f.netns_name = name(netns_name, labels);
            f.dev = Some(dev.clone());
        }
        Group::Declared {
            netns,
            netns_name,
            labels,
            key,
            ..
        } => {
            f.netns = Some(*netns);
            f.netns_name = name(netns_name, labels);
            f.dev = key.dev().map(str::to_string);
            if let crate::causes::GroupKey::Socket { port, .. } = key {
                f.ports = vec![*port];
            }
        }
        Group::Table { .. } => {}
    }
    f
}
