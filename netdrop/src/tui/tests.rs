//! The live screen without a terminal: the model fed as the session feeds
//! it, keys, and what ratatui's `TestBackend` shows at 80×24.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::{Terminal, backend::TestBackend};

use super::{
    TuiOptions,
    app::{Action, App, Pane},
    model::{Data, LINES_PER_CAUSE, MORE, OTHER_ROWS, SPARK_SECONDS, Sort},
    render,
    sink::Screen,
};
use crate::{
    advice::Advice,
    classify::Cause,
    container::Labels,
    decode::tests_support::drop_record,
    diagnose::{
        Report,
        model::{CauseReport, Group},
        report::Hooks,
    },
    event::DropView,
    sink::Sink,
    summary::{Session, Summary},
};

fn summary(causes: &[(Cause, u64)]) -> Summary {
    let mut s = Summary::default();
    for &(c, n) in causes {
        s.causes.insert(c.as_str(), n);
        s.total_drops += n;
    }
    s
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

const HOSTILE: &str = "ev\"il\n\x1b[31mRED";

fn report() -> Report {
    Report {
        duration_s: 12.0,
        kernel: "6.1".into(),
        hooks: Hooks::default(),
        causes: vec![CauseReport {
            cause: Cause::RpFilter,
            meaning: "strict reverse-path filtering",
            drops: 40,
            seen_by_hooks: 40,
            counted_by_kernel_only: 0,
            maybe_among_other: 0,
            kernel_counter: None,
            groups: vec![Group::Device {
                netns: 4026532811,
                netns_cookie: 9,
                netns_name: Some("ndt-3".into()),
                labels: Labels {
                    pod: Some(HOSTILE.into()),
                    pod_namespace: Some("prod".into()),
                    ..Labels::default()
                },
                dev: "rpb0".into(),
                rp_filter_all: Some(1),
                rp_filter_dev: Some(1),
                effective: Some(1),
                drops: 40,
                drops_seen: 40,
                drops_counted_only: 0,
                maybe_among_other: 0,
                sources: vec![],
                changes: vec![],
                gone: false,
            }],
            advice: vec![Advice {
                cause: Cause::RpFilter,
                subject: "rpb0".into(),
                knobs: vec![],
                action: "set net.ipv4.conf.all.rp_filter = 2 (now 1)".into(),
                reason: "asymmetric routes".into(),
                stopped_by: None,
            }],
        }],
        other_reasons: vec![],
        kernel_counters: vec![],
        totals: Summary::default(),
    }
}

/// Two seconds of counters: rp_filter 40/s, other 10/s, neigh_queue_full 3 in all.
fn fed() -> Screen {
    let mut s = Screen::detached(TuiOptions::default());
    let d = &mut s.app.data;
    d.on_counts(1.0, &summary(&[(Cause::NeighQueueFull, 3)]));
    d.on_counts(
        2.0,
        &summary(&[
            (Cause::NeighQueueFull, 3),
            (Cause::RpFilter, 40),
            (Cause::Other, 10),
        ]),
    );
    s.on_report(&report()).unwrap();
    let mut rec = drop_record();
    rec.netns = 4026532811;
    rec.dev = "rpb0".into();
    rec.pid = 4242;
    rec.comm = HOSTILE.into();
    for (cause, reason, location) in [
        (Cause::RpFilter, "IP_RPFILTER", "ip_rcv_finish_core+0x2f5"),
        (
            Cause::Other,
            "NOT_SPECIFIED",
            "virtio_transport_recv_pkt+0x1a",
        ),
        (
            Cause::Other,
            "NOT_SPECIFIED",
            "virtio_transport_recv_pkt+0x1a",
        ),
        (Cause::Other, "NO_SOCKET", "__udp4_lib_rcv+0x9a"),
    ] {
        let view = DropView {
            rec: &rec,
            cause,
            reason: reason.into(),
            location: location.into(),
            ts: 1_795_000_000.5,
            owner: None,
            netns_name: Some("ndt-3".into()),
            netns_identity: None,
        };
        s.on_drop(&view).unwrap();
    }
    s
}

fn screen(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| render::draw(f, app, true)).unwrap();
    let buf = t.backend().buffer();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                + "\n"
        })
        .collect()
}

/// The causes in the order the screen ranks them.
fn causes(d: &Data, sort: Sort) -> Vec<Cause> {
    d.ranked(sort).iter().map(|r| r.cause).collect()
}

#[test]
fn causes_are_ranked_by_rate_or_total() {
    let s = fed();
    assert_eq!(
        causes(&s.app.data, Sort::Rate),
        [Cause::RpFilter, Cause::Other, Cause::NeighQueueFull]
    );
    let rp = &s.app.data.causes[&Cause::RpFilter];
    assert_eq!((rp.total, rp.rate()), (40, 40.0));
    assert_eq!(
        causes(&s.app.data, Sort::Total),
        [Cause::RpFilter, Cause::Other, Cause::NeighQueueFull]
    );
    // A quiet minute: rates fall to 0, totals stay, the sparkline keeps a minute.
    let mut d = s.app.data.clone();
    for t in 3..100 {
        d.on_counts(
            t as f64,
            &summary(&[
                (Cause::NeighQueueFull, 3 + t),
                (Cause::RpFilter, 40),
                (Cause::Other, 10),
            ]),
        );
    }
    assert_eq!(d.causes[&Cause::RpFilter].rate(), 0.0);
    assert_eq!(d.causes[&Cause::RpFilter].total, 40);
    assert_eq!(d.causes[&Cause::RpFilter].series.len(), SPARK_SECONDS);
    assert_eq!(causes(&d, Sort::Rate)[0], Cause::NeighQueueFull);
    assert_eq!(
        causes(&d, Sort::Total)[0],
        Cause::NeighQueueFull,
        "102 drops"
    );
}

#[test]
fn other_drops_add_up_by_reason_and_location_bounded() {
    let mut s = fed();
    let rows = s.app.data.other.ranked();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].0, rows[0].1, rows[0].2.count),
        ("NOT_SPECIFIED", "virtio_transport_recv_pkt+0x1a", 2)
    );
    s.app.data.on_counts(3.0, &summary(&[]));
    assert_eq!(s.app.data.other.ranked()[0].2.rate(), 2.0);
    for i in 0..1000 {
        s.app.data.other.add("NO_SOCKET", &format!("f{i}+0x1"));
    }
    let rows = s.app.data.other.ranked();
    assert_eq!(rows.len(), OTHER_ROWS);
    let more = rows.iter().find(|r| r.0 == MORE).unwrap();
    assert_eq!(more.2.count, 1000 - (OTHER_ROWS as u64 - 3));
    assert_eq!(rows.iter().map(|r| r.2.count).sum::<u64>(), 1003);
    // Lines are kept per cause, bounded.
    let rec = drop_record();
    for _ in 0..1000 {
        let view = DropView {
            rec: &rec,
            cause: Cause::Other,
            reason: "X".into(),
            location: "y".into(),
            ts: 0.0,
            owner: None,
            netns_name: None,
            netns_identity: None,
        };
        s.on_drop(&view).unwrap();
    }
    assert_eq!(s.app.data.lines[&Cause::Other].len(), LINES_PER_CAUSE);
    assert_eq!(s.app.data.lines[&Cause::RpFilter].len(), 1);
}

#[test]
fn keys_select_open_filter_pause_sort_and_quit() {
    let mut s = fed();
    let app = &mut s.app;
    assert_eq!(app.cause(), Some(Cause::RpFilter));
    assert_eq!(app.key(key('j')), Action::Redraw);
    assert_eq!(app.cause(), Some(Cause::Other));
    app.key(code(KeyCode::Down));
    app.key(code(KeyCode::Down));
    assert_eq!(
        app.cause(),
        Some(Cause::NeighQueueFull),
        "stays at the last"
    );
    app.key(key('k'));
    app.key(code(KeyCode::Up));
    assert_eq!(app.cause(), Some(Cause::RpFilter));
    app.key(code(KeyCode::Enter));
    assert_eq!(app.pane, Pane::Groups);
    app.key(code(KeyCode::Enter));
    assert_eq!(app.pane, Pane::Group);
    app.key(code(KeyCode::Esc));
    app.key(code(KeyCode::Esc));
    assert_eq!(app.pane, Pane::Causes);
    // Filter: typed after `/`, applied with Enter; a bad one is said, not applied.
    app.key(key('/'));
    for c in "dev:rpb0".chars() {
        app.key(key(c));
    }
    app.key(code(KeyCode::Enter));
    assert_eq!(app.filter.source, "dev:rpb0");
    assert!(app.data.other_filtered.is_some());
    assert_eq!(app.shown().groups(Cause::RpFilter, &app.filter).len(), 1);
    assert_eq!(
        app.shown()
            .recent(Cause::RpFilter, None, &app.filter, 10)
            .len(),
        1
    );
    app.key(key('/'));
    app.key(code(KeyCode::Backspace));
    app.key(key('9'));
    app.key(code(KeyCode::Enter));
    assert_eq!(
        app.shown().groups(Cause::RpFilter, &app.filter).len(),
        0,
        "dev:rpb9"
    );
    app.key(key('/'));
    for c in " port:http".chars() {
        app.key(key(c));
    }
    app.key(code(KeyCode::Enter));
    assert!(app.message.as_deref().unwrap().contains("port number"));
    assert_eq!(
        app.filter.source, "dev:rpb9",
        "the bad filter is not applied"
    );
    app.key(key('/'));
    app.key(code(KeyCode::Esc));
    assert!(app.input.is_none());
    // Pause: the screen keeps what it showed.
    app.key(key('p'));
    app.data
        .on_counts(3.0, &summary(&[(Cause::FirewallRule, 500)]));
    assert!(app.paused() && !app.shown().causes.contains_key(&Cause::FirewallRule));
    app.key(key(' '));
    assert_eq!(app.cause(), Some(Cause::RpFilter));
    assert_eq!(app.shown().ranked(Sort::Rate)[0].cause, Cause::FirewallRule);
    app.key(key('s'));
    assert_eq!(app.sort, Sort::Total);
    app.key(key('?'));
    assert!(app.help);
    assert_eq!(app.key(key('x')), Action::Redraw);
    assert!(!app.help);
    assert_eq!(app.key(key('r')), Action::Record);
    assert_eq!(app.key(key('q')), Action::Quit);
    assert_eq!(
        app.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Action::Quit
    );
}

#[test]
fn the_screen_at_80x24() {
    let s = fed();
    let text = screen(&s.app, 80, 24);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("netdrop watch"), "{text}");
    let rp = lines
        .iter()
        .position(|l| l.starts_with("▶ rp_filter"))
        .expect(&text);
    assert!(
        lines[rp].contains("40.0/s") && lines[rp].contains(" 40 "),
        "{text}"
    );
    assert!(
        lines[rp + 1].contains("→ set net.ipv4.conf.all.rp_filter = 2 (now 1)"),
        "{text}"
    );
    let other = lines
        .iter()
        .position(|l| l.starts_with("  other"))
        .expect(&text);
    assert!(other > rp, "ranked below rp_filter: {text}");
    assert!(text.contains("groups of rp_filter (1)"), "{text}");
    assert!(
        text.contains("device rpb0") || text.contains("dev rpb0"),
        "{text}"
    );
    assert!(
        text.contains("NOT_SPECIFIED          virtio_transport_recv_pkt+0x1a"),
        "the aggregated other row: {text}"
    );
    assert!(text.contains("latest drops of rp_filter"), "{text}");
    assert!(
        text.contains("IP_RPFILTER ip_rcv_finish_core+0x2f5"),
        "{text}"
    );
    assert!(lines[23].starts_with("hooks"), "{text}");
    // Names from other processes are escaped: no control character on screen.
    assert!(text.contains("ev\"il\\n\\x1b[31mRED"), "{text}");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );
}

#[test]
fn open_group_help_and_small_or_large_screens() {
    let mut s = fed();
    s.app.key(code(KeyCode::Enter));
    s.app.key(code(KeyCode::Enter));
    let text = screen(&s.app, 80, 24);
    assert!(text.contains("rp_filter · group 1/1"), "{text}");
    assert!(
        text.contains("latest drops of rp_filter in netns 4026532811"),
        "{text}"
    );
    s.app.key(key('?'));
    let text = screen(&s.app, 80, 24);
    assert!(
        text.contains("keys (any key closes)") && text.contains("pause"),
        "{text}"
    );
    // Resizing: any size draws (nothing panics), a larger one shows more.
    for (w, h) in [(20, 5), (1, 1), (200, 60), (80, 24)] {
        screen(&s.app, w, h);
    }
    let empty = Screen::detached(TuiOptions::default());
    assert!(screen(&empty.app, 80, 24).contains("no drops yet"));
}

#[test]
fn without_colour_only_modifiers() {
    let s = fed();
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    t.draw(|f| render::draw(f, &s.app, false)).unwrap();
    let buf = t.backend().buffer();
    for cell in buf.content() {
        assert_eq!(cell.fg, ratatui::style::Color::Reset, "{cell:?}");
    }
}

#[test]
fn spark_scales_to_the_window() {
    let v: std::collections::VecDeque<u64> = [0, 1, 2, 4, 8].into_iter().collect();
    assert_eq!(render::spark(&v, 10), " ▁▂▄█");
    assert_eq!(render::spark(&v, 2), "▄█");
    assert_eq!(render::spark(&Default::default(), 5), "");
    let _ = Session::default();
}
