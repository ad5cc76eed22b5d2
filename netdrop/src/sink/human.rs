//! The live view for a terminal: a line per drop (rate-limited per cause, so a
//! storm of one cause cannot hide another), a per-cause summary every interval,
//! and the exact totals at the end.

use std::{
    collections::BTreeMap,
    io::{self, Write},
};

use super::{Session, Sink};
use crate::{
    classify::Cause,
    decode::{ListenRecord, NeighRecord},
    event::DropView,
    style::Style,
    summary::Summary,
    text::{Safe, safe},
};

/// A token bucket: `rate` lines per second, bursts of up to `burst`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    /// Event time (seconds) of the last decision: the events' own clock, so a
    /// replay prints the lines the live view printed.
    last: Option<f64>,
}

impl RateLimit {
    pub fn new(rate: f64) -> Self {
        let burst = (rate * 2.0).max(1.0);
        RateLimit {
            rate,
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// May a line be printed for an event at `now` (seconds)? Events from
    /// different CPUs arrive slightly out of order: time never runs backwards here.
    pub fn allow(&mut self, now: f64) -> bool {
        let now = self.last.map_or(now, |last| now.max(last));
        if let Some(last) = self.last {
            self.tokens = (self.tokens + (now - last) * self.rate).min(self.burst);
        }
        self.last = Some(now);
        // Unix seconds near 1.8e9 leave f64 ~1e-7 s of precision: a token
        // earned exactly on time must not fall short by rounding.
        if self.tokens >= 1.0 - 1e-6 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub struct HumanSink<W: Write> {
    out: W,
    per_cause_rate: f64,
    limits: BTreeMap<Cause, RateLimit>,
    suppressed: BTreeMap<Cause, u64>,
    last: Summary,
    style: Style,
}

impl<W: Write> HumanSink<W> {
    pub fn new(out: W, lines_per_sec: f64) -> Self {
        HumanSink {
            out,
            per_cause_rate: lines_per_sec,
            limits: BTreeMap::new(),
            suppressed: BTreeMap::new(),
            last: Summary::default(),
            style: Style::plain(),
        }
    }

    /// Colour: cause names, non-zero counts, what was lost or refused.
    pub fn with_style(mut self, style: Style) -> Self {
        self.style = style;
        self
    }

    fn allow(&mut self, cause: Cause, ts: f64) -> bool {
        let rate = self.per_cause_rate;
        let ok = self
            .limits
            .entry(cause)
            .or_insert_with(|| RateLimit::new(rate))
            .allow(ts);
        if !ok {
            *self.suppressed.entry(cause).or_default() += 1;
        }
        ok
    }

    fn table(&mut self, title: &str, s: &Summary, since: Option<&Summary>) -> io::Result<()> {
        writeln!(self.out, "── {title} ──")?;
        let mut any = false;
        for cause in Cause::ALL {
            let total = s.cause(cause);
            let delta = total - since.map_or(0, |p| p.cause(cause));
            if total == 0 {
                continue;
            }
            any = true;
            let mut reasons: Vec<String> = s
                .reasons
                .iter()
                .filter(|(name, _)| crate::classify::cause_of(name) == cause)
                .map(|(name, n)| format!("{} {n}", safe(name)))
                .take(4)
                .collect();
            let only = s.kernel_only(cause);
            if only > 0 {
                reasons.push(format!("counted by the kernel only {only}"));
            }
            let st = self.style;
            let recent = match since {
                Some(_) => {
                    let field = format!("{:<10}", format!(" (+{delta})"));
                    if delta > 0 {
                        st.number(&field).into_owned()
                    } else {
                        field
                    }
                }
                None => String::new(),
            };
            writeln!(
                self.out,
                "  {}{}{recent} {}",
                st.cause(&format!("{:<22}", cause.as_str())),
                st.number(&format!("{total:>10}")),
                reasons.join(", ")
            )?;
            if cause != Cause::Other {
                writeln!(self.out, "  {:<22}{}", "", cause.meaning())?;
            }
        }
        if !any {
            writeln!(self.out, "  no drops")?;
        }
        if s.neigh_create_failures > 0 {
            writeln!(
                self.out,
                "  {} {}",
                self.style
                    .warning("neighbour creates refused (table full):"),
                self.style.number(&s.neigh_create_failures.to_string())
            )?;
        }
        let suppressed: u64 = self.suppressed.values().sum();
        if s.lost_events > 0 || suppressed > 0 || s.sampled_events > 0 {
            writeln!(
                self.out,
                "  {} {} events held back by the kernel's limit (--events-per-sec), {} lost in the ring buffer, {} lines rate-limited",
                self.style
                    .warning("detail not shown (counts above are exact):"),
                s.sampled_events,
                s.lost_events,
                suppressed
            )?;
            for (cause, n) in &s.sampled_by_cause {
                let lost = s.lost_by_cause.get(cause).copied().unwrap_or(0);
                writeln!(self.out, "    {cause:<22}held back {n}, lost {lost}")?;
            }
            for (cause, n) in &s.lost_by_cause {
                if !s.sampled_by_cause.contains_key(cause) {
                    writeln!(self.out, "    {cause:<22}held back 0, lost {n}")?;
                }
            }
        }
        Ok(())
    }
}

impl<W: Write> Sink for HumanSink<W> {
    fn on_drop(&mut self, ev: &DropView<'_>) -> io::Result<()> {
        if !self.allow(ev.cause, ev.ts) {
            return Ok(());
        }
        writeln!(self.out, "{}", drop_line(ev, self.style))
    }

    fn on_neigh_fail(&mut self, rec: &NeighRecord, ts: f64) -> io::Result<()> {
        if !self.allow(Cause::NeighTableOverflow, ts) {
            return Ok(());
        }
        writeln!(self.out, "{}", neigh_fail_line(rec, ts, self.style))
    }

    fn on_listen_drop(
        &mut self,
        rec: &ListenRecord,
        _owner: Option<&crate::owner::Owner>,
        ts: f64,
    ) -> io::Result<()> {
        if !self.allow(Cause::AcceptQueueFull, ts) {
            return Ok(());
        }
        writeln!(self.out, "{}", listen_line(rec, ts, self.style))
    }

    fn tick(&mut self, s: &Summary, session: &Session) -> io::Result<()> {
        if s.total_drops != self.last.total_drops
            || s.neigh_create_failures != self.last.neigh_create_failures
        {
            let title = format!(
                "{:.0}s: drops since start (+ in the last interval)",
                session.duration_s
            );
            let last = std::mem::take(&mut self.last);
            self.table(&title, s, Some(&last))?;
            self.last = s.clone();
        }
        self.out.flush()
    }

    fn wants_live_report(&self) -> bool {
        true
    }

    fn on_report(&mut self, report: &crate::diagnose::Report) -> io::Result<()> {
        if !report.causes.is_empty() {
            writeln!(self.out)?;
            self.out.write_all(report.render().as_bytes())?;
            writeln!(self.out)?;
        }
        Ok(())
    }

    fn finish(&mut self, s: &Summary, session: &Session) -> io::Result<()> {
        let title = format!(
            "netdrop summary: {} drops in {:.1}s",
            s.total_drops, session.duration_s
        );
        self.table(&title, s, None)?;
        self.out.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Who a drop is: the socket's owner (and its container or pod when it is
/// not the namespace's), else the task that happened to run. Escaped.
pub fn who(ev: &DropView<'_>) -> String {
    match &ev.owner {
        Some(o) => match o.identity() {
            Some(i) if ev.netns_identity.as_ref() != Some(i) => {
                format!("owner {} {}, {}", o.pid, Safe(&o.comm), i.human())
            }
            _ => format!("owner {} {}", o.pid, Safe(&o.comm)),
        },
        None => format!("task {} {}", ev.rec.pid, Safe(&ev.rec.comm)),
    }
}

/// A drop's line: time, cause, reason, location, then [`drop_detail`].
pub fn drop_line(ev: &DropView<'_>, style: Style) -> String {
    format!(
        "{} {} {:<20} {}  {}",
        clock_time(ev.ts),
        style.cause(&format!("{:<20}", ev.cause.as_str())),
        Safe(&ev.reason),
        Safe(&ev.location),
        drop_detail(ev)
    )
}

/// What a drop hit: namespace (and its container or pod), device, flow,
/// owner. Every name in it comes from the kernel or other processes (a comm,
/// a device or namespace name): escaped, so none can forge a line or drive
/// the terminal.
pub fn drop_detail(ev: &DropView<'_>) -> String {
    let r = ev.rec;
    let mut flow = String::new();
    if let Some(p) = &r.packet {
        let port = |a: &std::net::IpAddr, port: Option<u16>| match port {
            Some(n) => format!("{a}:{n}"),
            None => a.to_string(),
        };
        flow = format!(
            " {} {} → {}",
            p.l4_name().unwrap_or("ip"),
            port(&p.saddr, p.sport),
            port(&p.daddr, p.dport)
        );
    }
    let dev = if r.dev.is_empty() {
        String::new()
    } else {
        format!(" dev {}", Safe(&r.dev))
    };
    let mut netns = match &ev.netns_name {
        Some(n) => safe(n).into_owned(),
        None => r.netns.to_string(),
    };
    // The container or pod living in the namespace, and the owner's when
    // it is another (a host-network pod, a socket passed along).
    if let Some(i) = &ev.netns_identity {
        netns += &format!(" ({})", i.human());
    }
    format!("netns {netns}{dev}{flow}  [{}]", who(ev))
}

/// A neighbour entry the full table refused (escaped).
pub fn neigh_fail_line(rec: &NeighRecord, ts: f64, style: Style) -> String {
    let addr = rec.addr.map(|a| a.to_string()).unwrap_or_default();
    format!(
        "{} {} {:<20} table has {} entries, no room for {addr} dev {}  [task {} {}]",
        clock_time(ts),
        style.cause(&format!("{:<20}", Cause::NeighTableOverflow.as_str())),
        "neigh_create refused",
        rec.entries,
        Safe(&rec.dev),
        rec.pid,
        Safe(&rec.comm)
    )
}

/// A SYN refused by a full accept queue.
pub fn listen_line(rec: &ListenRecord, ts: f64, style: Style) -> String {
    format!(
        "{} {} {:<20} listener {}:{} accept queue {}/{}  netns {}",
        clock_time(ts),
        style.cause(&format!("{:<20}", Cause::AcceptQueueFull.as_str())),
        "LISTEN_OVERFLOW_SYN",
        rec.addr,
        rec.port,
        rec.ack_backlog,
        rec.max_ack_backlog,
        rec.netns
    )
}

/// `HH:MM:SS.micro` (UTC) of a unix timestamp.
pub fn clock_time(ts: f64) -> String {
    let secs = ts.max(0.0) as u64;
    let micros = ((ts.max(0.0) - secs as f64) * 1e6) as u64;
    format!(
        "{:02}:{:02}:{:02}.{micros:06}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_bursts_then_the_rate() {
        let mut rl = RateLimit::new(10.0);
        let t0 = 1_700_000_000.0;
        let first: usize = (0..100).filter(|_| rl.allow(t0)).count();
        assert_eq!(first, 20, "burst is twice the rate");
        assert!(!rl.allow(t0));
        assert!(rl.allow(t0 + 0.1), "one token after 100 ms at 10/s");
        assert!(!rl.allow(t0 + 0.1));
        assert!(!rl.allow(t0 + 0.05), "an earlier timestamp adds no tokens");
    }

    #[test]
    fn clock_time_formats() {
        assert_eq!(clock_time(3661.5), "01:01:01.500000");
    }

    /// What a terminal would act on: a control character (C0, DEL, C1) or a
    /// bidi control. Only `\n` may end a line.
    fn assert_inert(text: &str) {
        for line in text.lines() {
            assert!(
                !line
                    .chars()
                    .any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
                "raw control character in {line:?}"
            );
        }
    }

    const HOSTILE: &str = "ev\"il\n\x1b[31mRED";
    const SHOWN: &str = "ev\"il\\n\\x1b[31mRED";

    #[test]
    fn hostile_names_are_escaped_in_drop_lines() {
        let mut rec = crate::decode::tests_support::drop_record();
        rec.comm = HOSTILE.into();
        rec.pid = 4242;
        rec.dev = "eth\x1b]8;;http://x/\x07".into();
        let view = DropView {
            rec: &rec,
            cause: Cause::Other,
            reason: "NO_SOCKET\r\x1b[2J".into(),
            location: "sym\u{9b}31m+0x1".into(),
            ts: 1.0,
            owner: None,
            netns_name: Some("web\u{202e}bad".into()),
            netns_identity: None,
        };
        let mut sink = HumanSink::new(Vec::new(), 10.0);
        sink.on_drop(&view).unwrap();
        let pod = crate::container::Identity {
            runtime: crate::container::Runtime::Containerd,
            container_id: "ab".repeat(32),
            container_name: Some("app".into()),
            pod_name: Some(HOSTILE.into()),
            pod_namespace: Some("prod".into()),
            pod_uid: None,
        };
        let owned = DropView {
            owner: Some(crate::owner::Owner {
                pid: 7,
                comm: "own\x08\x08er".into(),
                container: None,
                identity: Some(pod.clone()),
            }),
            netns_identity: Some(crate::container::Identity {
                container_name: Some("t\x1b[1m".into()),
                pod_name: None,
                ..pod
            }),
            ..view
        };
        sink.on_drop(&owned).unwrap();
        let neigh = NeighRecord {
            ts_ns: 0,
            family: 2,
            entries: 5,
            dev: "d\tv".into(),
            addr: None,
            pid: 1,
            comm: HOSTILE.into(),
        };
        sink.on_neigh_fail(&neigh, 2.0).unwrap();
        let mut s = Summary::default();
        s.causes.insert("other", 1);
        s.reasons.insert("BAD\x1b[5mREASON".into(), 1);
        s.total_drops = 1;
        sink.finish(&s, &Session::default()).unwrap();
        let text = String::from_utf8(sink.out).unwrap();
        assert_inert(&text);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].ends_with(&format!("[task 4242 {SHOWN}]")),
            "{}",
            lines[0]
        );
        for want in [
            "NO_SOCKET\\r\\x1b[2J",
            "sym\\u{9b}31m+0x1",
            "netns web\\u{202e}bad",
            "dev eth\\x1b]8;;http://x/\\x07",
        ] {
            assert!(lines[0].contains(want), "{want} in {}", lines[0]);
        }
        assert!(
            lines[1].contains("netns web\\u{202e}bad (container t\\x1b[1m) dev")
                && lines[1].ends_with(&format!(
                    "[owner 7 own\\x08\\x08er, pod prod/{SHOWN} (container app)]"
                )),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("dev d\\tv") && lines[2].ends_with(&format!("[task 1 {SHOWN}]")),
            "{}",
            lines[2]
        );
        assert!(text.contains("BAD\\x1b[5mREASON 1"), "{text}");
    }

    #[test]
    fn summary_table_shows_causes_and_suppression() {
        let mut sink = HumanSink::new(Vec::new(), 1.0);
        sink.suppressed.insert(Cause::NeighQueueFull, 3);
        let mut s = Summary::default();
        s.causes.insert("neigh_queue_full", 15);
        s.reasons.insert("NEIGH_QUEUEFULL".into(), 15);
        s.total_drops = 15;
        sink.finish(&s, &Session::default()).unwrap();
        let text = String::from_utf8(sink.out).unwrap();
        assert!(
            text.contains("neigh_queue_full") && text.contains("NEIGH_QUEUEFULL 15"),
            "{text}"
        );
        assert!(text.contains("3 lines rate-limited"), "{text}");
    }

    #[test]
    fn colour_marks_causes_and_counts_and_never_a_name() {
        let mut rec = crate::decode::tests_support::drop_record();
        rec.comm = HOSTILE.into();
        let view = DropView {
            rec: &rec,
            cause: Cause::RpFilter,
            reason: "IP_RPFILTER".into(),
            location: "ip_rcv_finish".into(),
            ts: 1.0,
            owner: None,
            netns_name: Some(HOSTILE.into()),
            netns_identity: None,
        };
        let mut s = Summary::default();
        s.causes.insert("rp_filter", 3);
        s.reasons.insert("IP_RPFILTER".into(), 3);
        s.total_drops = 3;
        s.neigh_create_failures = 2;
        let run = |style: Style| {
            let mut sink = HumanSink::new(Vec::new(), 10.0).with_style(style);
            sink.on_drop(&view).unwrap();
            sink.tick(&s, &Session::default()).unwrap();
            String::from_utf8(sink.out).unwrap()
        };
        let plain = run(Style::plain());
        assert!(!plain.contains('\x1b'), "{plain}");
        let coloured = run(Style::new(true));
        for want in [
            "\x1b[1;36mrp_filter\x1b[0m",
            "\x1b[1m3\x1b[0m",
            "\x1b[1m(+3)\x1b[0m",
            "\x1b[33mneighbour creates refused (table full):\x1b[0m \x1b[1m2\x1b[0m",
        ] {
            assert!(coloured.contains(want), "{want:?} in {coloured:?}");
        }
        // Without netdrop's own sequences it is the plain text: the columns
        // line up the same, and the hostile names are still escaped.
        let stripped = ["\x1b[1;36m", "\x1b[1m", "\x1b[33m", "\x1b[0m"]
            .iter()
            .fold(coloured, |t, sgr| t.replace(sgr, ""));
        assert_eq!(stripped, plain);
        assert_inert(&stripped);
    }
}
