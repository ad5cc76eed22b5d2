//! The diagnosis report as text for a terminal.

use std::fmt::Write as _;

use super::model::{ChangeReport, CounterRow, Group, Report, ns_label};
use crate::{
    advice::{clock, short_knob},
    container::Labels,
    text::{Safe, safe},
};

impl Report {
    /// The report for a terminal. Every name in it (kernel release, hooks,
    /// namespaces, devices, knobs, reasons; a replayed recording's are another
    /// machine's) is escaped with [`safe`]: nothing in it can drive the terminal.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "netdrop diagnosis: {:.1}s on kernel {}, hooks: {}",
            self.duration_s,
            Safe(&self.kernel),
            safe(&self.hooks.attached.join(", "))
        );
        for u in &self.hooks.unavailable {
            let _ = writeln!(o, "  (no {})", Safe(u));
        }
        if self.causes.is_empty() {
            let _ = writeln!(
                o,
                "\nNo drops of a cause netdrop knows (see --cause in --help): nothing to change."
            );
        }
        for (i, c) in self.causes.iter().enumerate() {
            let _ = write!(o, "\n{}. {} — {} drops", i + 1, c.cause.as_str(), c.drops);
            if c.counted_by_kernel_only > 0 {
                let _ = write!(
                    o,
                    " ({} seen by hooks, {} counted by the kernel only)",
                    c.seen_by_hooks, c.counted_by_kernel_only
                );
            }
            let _ = writeln!(o, "\n   {}", c.meaning);
            if c.maybe_among_other > 0 {
                let _ = writeln!(
                    o,
                    "   the kernel counted {} more than netdrop classified as {}; they may be among the `other` drops, so no total includes them",
                    c.maybe_among_other,
                    c.cause.as_str()
                );
            }
            if let Some(k) = &c.kernel_counter {
                let _ = writeln!(
                    o,
                    "   kernel: {} +{} during the observation, netdrop {} (the kernel's count is not added to any total)",
                    Safe(&k.name),
                    k.delta,
                    k.netdrop
                );
            }
            // A group's line holds names (namespace, device, knob): each line is
            // escaped whole, so no field of it can be left out.
            for g in &c.groups {
                let _ = writeln!(o, "   • {}", safe(&group_line(g)));
                for ch in changes(g) {
                    let _ = writeln!(o, "     {}", safe(&change_line(ch)));
                }
            }
            for a in &c.advice {
                let _ = writeln!(o, "   → {}", safe(&a.action));
                let _ = writeln!(o, "     why: {}", safe(&a.reason));
            }
        }
        if !self.other_reasons.is_empty() {
            let list: Vec<String> = self
                .other_reasons
                .iter()
                .map(|(r, n)| format!("{} {n}", safe(r)))
                .collect();
            let _ = writeln!(o, "\nother drops (no advice): {}", list.join(", "));
        }
        let rows: Vec<&CounterRow> = self
            .kernel_counters
            .iter()
            .filter(|r| r.kernel.unwrap_or(0) > 0 || r.netdrop_seen > 0)
            .collect();
        if !rows.is_empty() {
            let _ = writeln!(o, "\nkernel counters beside netdrop:");
            for r in rows {
                // A count that may be short is a lower bound.
                let k = match r.kernel {
                    None => "n/a".into(),
                    Some(k) if r.incomplete => format!("≥ {k}"),
                    Some(k) => k.to_string(),
                };
                let _ = writeln!(
                    o,
                    "   {:<44} kernel {:>8}   netdrop {:>8}  ({})",
                    Safe(&r.counter),
                    k,
                    r.netdrop_seen,
                    r.cause.as_str()
                );
            }
        }
        if self.totals.lost_events > 0 || self.totals.sampled_events > 0 {
            let _ = writeln!(
                o,
                "\n{} detail events were held back by the kernel's limit (--events-per-sec) and {} lost in the ring buffer (counts above are exact)",
                self.totals.sampled_events, self.totals.lost_events
            );
        }
        o
    }
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or("?".into(), |v| v.to_string())
}

fn changes(g: &Group) -> &[ChangeReport] {
    match g {
        Group::Listener { changes, .. }
        | Group::Neighbour { changes, .. }
        | Group::Table { changes, .. }
        | Group::Device { changes, .. } => changes,
        Group::Declared { .. } => &[],
    }
}

/// `gc_thresh3 64 → 1024 at 19:31:02; 196 drops before, 0 after: the change stopped the drops`
fn change_line(c: &ChangeReport) -> String {
    let outcome = if c.stopped {
        ": the change stopped the drops"
    } else if c.drops_before > 0 && c.drops_after == 0 {
        ": none since"
    } else {
        ""
    };
    format!(
        "{} {} → {} at {}; {} drops before, {} after{outcome}",
        short_knob(&c.knob),
        c.from,
        c.to,
        clock(c.at),
        c.drops_before,
        c.drops_after
    )
}

/// `netns lb (4026532177)`, the container or pod living in it, and whether
/// it is gone (not escaped: its line is, whole).
fn netns_part(netns: u64, name: &Option<String>, labels: &Labels, gone: bool) -> String {
    format!(
        "netns {}{}{}",
        ns_label(netns, name),
        labels.text().map(|t| format!(" {t}")).unwrap_or_default(),
        if gone { " (gone)" } else { "" }
    )
}

pub(crate) fn group_line(g: &Group) -> String {
    match g {
        Group::Listener {
            netns,
            netns_name,
            labels,
            listener,
            queue,
            limit,
            peak_queue,
            somaxconn,
            drops,
            closed,
            gone,
            ..
        } => {
            // Now only while it exists; once closed, the values at its drops;
            // a group of no listener (counted, none full) has neither.
            let queue = match (queue, closed) {
                (Some(q), false) => {
                    format!(
                        "accept queue {q}/{} (peak {}), ",
                        opt(limit),
                        opt(peak_queue)
                    )
                }
                (_, true) => format!(
                    "closed; accept queue limit {} at the drops (peak {}), ",
                    opt(limit),
                    opt(peak_queue)
                ),
                (None, false) => String::new(),
            };
            format!(
                "listener {listener} {}: {queue}net.core.somaxconn {}, {drops} drops",
                netns_part(*netns, netns_name, labels, *gone),
                opt(somaxconn)
            )
        }
        Group::Neighbour {
            netns,
            netns_name,
            labels,
            neighbour,
            dev,
            state,
            unres_qlen_bytes,
            unres_qlen,
            drops,
            gone,
            ..
        } => format!(
            "neighbour {neighbour} dev {dev} {}: state {}, unres_qlen_bytes {} (unres_qlen {}), {drops} drops",
            netns_part(*netns, netns_name, labels, *gone),
            opt(state),
            opt(unres_qlen_bytes),
            opt(unres_qlen)
        ),
        Group::Table {
            family,
            entries,
            peak,
            gc_thresh,
            incomplete,
            failed,
            drops,
            refused_creates,
            ..
        } => format!(
            "{family} table: {} entries now, peak {peak}; gc_thresh1/2/3 {}/{}/{} in force at the drops; {incomplete} INCOMPLETE, {failed} FAILED; {drops} drops, {refused_creates} creates refused",
            opt(entries),
            opt(&gc_thresh[0]),
            opt(&gc_thresh[1]),
            opt(&gc_thresh[2])
        ),
        Group::Device {
            netns,
            netns_name,
            labels,
            dev,
            rp_filter_all,
            rp_filter_dev,
            effective,
            drops,
            drops_counted_only,
            maybe_among_other,
            sources,
            gone,
            ..
        } => {
            let mut line = format!(
                "dev {dev} {}: rp_filter all {} / {dev} {} → effective {}, {drops} drops",
                netns_part(*netns, netns_name, labels, *gone),
                opt(rp_filter_all),
                opt(rp_filter_dev),
                opt(effective),
            );
            if *drops_counted_only > 0 {
                let _ = write!(line, " ({drops_counted_only} counted by the kernel only)");
            }
            if *maybe_among_other > 0 {
                let _ = write!(
                    line,
                    ", {maybe_among_other} more counted by the kernel that may be among the `other` drops there"
                );
            }
            if !sources.is_empty() {
                let list: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
                let _ = write!(line, ", from {}", list.join(", "));
            }
            line
        }
        Group::Declared {
            netns,
            netns_name,
            labels,
            key,
            drops,
            counter,
            values,
            details,
            gone,
            ..
        } => {
            let ns = netns_part(*netns, netns_name, labels, *gone);
            let mut line = match key {
                crate::causes::GroupKey::Netns => format!("{ns}: {drops} drops"),
                key => format!("{key} {ns}: {drops} drops"),
            };
            if let Some(c) = counter {
                let _ = write!(line, " (kernel counter +{c})");
            }
            let vals: Vec<String> = values
                .iter()
                .map(|(k, v)| format!("{} {v}", short_knob(k)))
                .chain(details.iter().map(|(k, v)| format!("{k} {v}")))
                .collect();
            if !vals.is_empty() {
                let _ = write!(line, "; {}", vals.join(", "));
            }
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        advice::Advice,
        classify::Cause,
        diagnose::report::{CauseReport, Hooks},
        summary::Summary,
    };

    /// A report whose every name is hostile: as a replayed recording from a
    /// machine where anyone may name a namespace, a device or a process.
    fn hostile_report() -> Report {
        let ns = Some("ns\n\x1b[31mRED".to_string());
        let change = ChangeReport {
            knob: "net.ipv4.conf.ev\x1b[2J.rp_filter".into(),
            from: 0,
            to: 1,
            at: 0.0,
            drops_before: 0,
            drops_after: 3,
            stopped: false,
        };
        let device = Group::Device {
            netns: 4026532177,
            netns_cookie: 9,
            netns_name: ns.clone(),
            labels: Labels {
                pod: Some("web\x1b[2J".into()),
                pod_namespace: Some("prod".into()),
                container: Some("0123456789ab".into()),
                container_name: Some("a\npp".into()),
            },
            dev: "ev\x1b[2J".into(),
            rp_filter_all: Some(1),
            rp_filter_dev: Some(1),
            effective: Some(1),
            drops: 3,
            drops_seen: 3,
            drops_counted_only: 0,
            maybe_among_other: 0,
            sources: vec!["198.18.0.1".parse().unwrap()],
            changes: vec![change],
            gone: false,
        };
        let neighbour = Group::Neighbour {
            netns: 4026532177,
            netns_cookie: 9,
            netns_name: ns,
            labels: Labels::default(),
            neighbour: "198.18.0.2".parse().unwrap(),
            dev: "d\u{202e}v".into(),
            state: Some("INCOMPLETE\u{9b}".into()),
            unres_qlen_bytes: Some(1),
            unres_qlen: None,
            drops: 1,
            changes: Vec::new(),
            gone: true,
        };
        Report {
            duration_s: 1.0,
            kernel: "6.18\r\x1b]0;owned\x07".into(),
            hooks: Hooks {
                attached: vec!["skb:kfree_skb\x08".into()],
                unavailable: vec!["tcp_conn_request\n hook".into()],
            },
            causes: vec![CauseReport {
                cause: Cause::RpFilter,
                meaning: Cause::RpFilter.meaning(),
                drops: 4,
                seen_by_hooks: 4,
                counted_by_kernel_only: 0,
                maybe_among_other: 0,
                kernel_counter: None,
                groups: vec![device, neighbour],
                advice: vec![Advice {
                    cause: Cause::RpFilter,
                    subject: "dev ev\x1b[2J".into(),
                    knobs: Vec::new(),
                    action: "set net.ipv4.conf.ev\x1b[2J.rp_filter to 2".into(),
                    reason: "strict\nforged line".into(),
                    stopped_by: None,
                }],
            }],
            other_reasons: vec![("REASON\x1b[5m".into(), 2)],
            kernel_counters: Vec::new(),
            totals: Summary::default(),
        }
    }

    #[test]
    fn hostile_names_are_escaped() {
        let text = hostile_report().render();
        for line in text.lines() {
            assert!(
                !line.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "raw control character in {line:?}"
            );
        }
        for want in [
            "on kernel 6.18\\r\\x1b]0;owned\\x07, hooks: skb:kfree_skb\\x08",
            "(no tcp_conn_request\\n hook)",
            "• dev ev\\x1b[2J netns ns\\n\\x1b[31mRED (4026532177) pod prod/web\\x1b[2J (container a\\npp): rp_filter all 1 / ev\\x1b[2J 1",
            "net.ipv4.conf.ev\\x1b[2J.rp_filter 0 → 1 at",
            "neighbour 198.18.0.2 dev d\\u{202e}v netns ns\\n\\x1b[31mRED (4026532177) (gone): state INCOMPLETE\\u{9b}",
            "→ set net.ipv4.conf.ev\\x1b[2J.rp_filter to 2",
            "why: strict\\nforged line",
            "other drops (no advice): REASON\\x1b[5m 2",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
    }
}
