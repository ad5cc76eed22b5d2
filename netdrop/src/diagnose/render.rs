//! The diagnosis report as text for a terminal.

use std::fmt::Write as _;

use super::report::{CounterRow, Group, Report, ns_label};

impl Report {
    /// The report for a terminal.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "netdrop diagnosis: {:.1}s on kernel {}, hooks: {}",
            self.duration_s,
            self.kernel,
            self.hooks.attached.join(", ")
        );
        for u in &self.hooks.unavailable {
            let _ = writeln!(o, "  (no {u})");
        }
        if self.causes.is_empty() {
            let _ = writeln!(
                o,
                "\nNo drops of the four causes (neighbour table, neighbour queue, accept queue, rp_filter): nothing to change."
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
            for g in &c.groups {
                let _ = writeln!(o, "   • {}", group_line(g));
            }
            for a in &c.advice {
                let _ = writeln!(o, "   → {}", a.action);
                let _ = writeln!(o, "     why: {}", a.reason);
            }
        }
        if !self.other_reasons.is_empty() {
            let list: Vec<String> = self
                .other_reasons
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
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
                let k = r.kernel.map_or("n/a".into(), |k| k.to_string());
                let _ = writeln!(
                    o,
                    "   {:<44} kernel {:>8}   netdrop {:>8}  ({})",
                    r.counter,
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

fn group_line(g: &Group) -> String {
    match g {
        Group::Listener {
            netns,
            netns_name,
            listener,
            queue,
            limit,
            peak_queue,
            somaxconn,
            drops,
            ..
        } => format!(
            "listener {listener} netns {}: accept queue {}/{} (peak {}), net.core.somaxconn {}, {drops} drops",
            ns_label(*netns, netns_name),
            opt(queue),
            opt(limit),
            opt(peak_queue),
            opt(somaxconn)
        ),
        Group::Neighbour {
            netns,
            netns_name,
            netns_cookie: _,
            neighbour,
            dev,
            state,
            unres_qlen_bytes,
            unres_qlen,
            drops,
        } => format!(
            "neighbour {neighbour} dev {dev} netns {}: state {}, unres_qlen_bytes {} (unres_qlen {}), {drops} drops",
            ns_label(*netns, netns_name),
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
        } => format!(
            "{family} table: {} entries now, peak {peak}; gc_thresh1/2/3 {}/{}/{}; {incomplete} INCOMPLETE, {failed} FAILED; {drops} drops, {refused_creates} creates refused",
            opt(entries),
            opt(&gc_thresh[0]),
            opt(&gc_thresh[1]),
            opt(&gc_thresh[2])
        ),
        Group::Device {
            netns,
            netns_name,
            netns_cookie: _,
            dev,
            rp_filter_all,
            rp_filter_dev,
            effective,
            drops,
            sources,
        } => format!(
            "dev {dev} netns {}: rp_filter all {} / {dev} {} → effective {}, {drops} drops, from {}",
            ns_label(*netns, netns_name),
            opt(rp_filter_all),
            opt(rp_filter_dev),
            opt(effective),
            sources
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
