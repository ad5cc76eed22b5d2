//! Draws the live screen from [`App`]: a status line, the causes ranked
//! (drops/s, exact total, the last minute, the advice), the selected cause's
//! groups (or one group), `other` by reason and location, the latest drop
//! lines, and the health line. Every string drawn is escaped already (drop
//! lines, groups, advice) or here ([`safe`]): nothing shown can drive the
//! terminal. Fits 80×24; a larger screen shows more rows.

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph, Wrap},
};

use super::{
    app::{App, Pane},
    model::{CauseRow, Data, Sort},
};
use crate::{classify::Cause, text::safe};

/// Bars of the sparkline, lowest to highest.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Styles: with colours, or (`--color never`, `NO_COLOR`) with bold and
/// reverse only.
#[derive(Debug, Clone, Copy)]
struct Theme {
    color: bool,
}

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }
    fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    fn title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }
}

/// The last `width` samples of `series` as bars scaled to their maximum (a
/// quiet second is blank).
pub fn spark(series: &std::collections::VecDeque<u64>, width: usize) -> String {
    let skip = series.len().saturating_sub(width);
    let max = series.iter().skip(skip).copied().max().unwrap_or(0).max(1);
    series
        .iter()
        .skip(skip)
        .map(|&v| match v {
            0 => ' ',
            v => BARS[((v * 8).div_ceil(max) as usize).clamp(1, 8) - 1],
        })
        .collect()
}

pub fn draw(f: &mut Frame, app: &App, color: bool) {
    let t = Theme { color };
    let d = app.shown();
    let area = f.area();
    let ranked = d.ranked(app.sort);
    let cause = app.cause();
    let groups = cause.map(|c| d.groups(c, &app.filter)).unwrap_or_default();
    let other = d.other_filtered.as_ref().unwrap_or(&d.other).ranked();
    let causes_h = (1 + 2 * ranked.len().max(1)).min(9) as u16;
    let groups_h = match app.pane {
        Pane::Group => 7,
        _ => (1 + groups.len().max(1)).min(5) as u16,
    };
    let other_h = if other.is_empty() {
        0
    } else {
        (1 + other.len()).min(5) as u16
    };
    let [status, causes_a, groups_a, other_a, recent_a, health_a] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(causes_h),
        Constraint::Length(groups_h),
        Constraint::Length(other_h),
        Constraint::Min(2),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(status_line(app, d, t)), status);
    draw_causes(f, causes_a, app, d, &ranked, cause, t);
    if let Some(c) = cause {
        draw_groups(f, groups_a, app, c, &groups, t);
    }
    if other_h > 0 {
        let rows = other
            .iter()
            .map(|(reason, location, row)| {
                Line::from(format!(
                    "  {:<22} {:<32} {:>7.1}/s {:>8}",
                    safe(reason),
                    safe(location),
                    row.rate(),
                    row.count
                ))
            })
            .collect::<Vec<_>>();
        let title = if d.other_filtered.is_some() {
            " other · by reason and location (matching the filter, since it was set) "
        } else {
            " other · by reason and location "
        };
        f.render_widget(Paragraph::new(rows).block(pane(title, t)), other_a);
    }
    if let Some(c) = cause {
        let netns = match app.pane {
            Pane::Group => groups.get(app.group).and_then(|g| g.netns),
            _ => None,
        };
        let n = recent_a.height.saturating_sub(1) as usize;
        let lines: Vec<Line> = d
            .recent(c, netns, &app.filter, n)
            .into_iter()
            .map(|l| Line::from(l.text.clone()))
            .collect();
        let title = match netns {
            Some(ns) => format!(" latest drops of {} in netns {ns} ", c.as_str()),
            None => format!(" latest drops of {} ", c.as_str()),
        };
        f.render_widget(Paragraph::new(lines).block(pane(&title, t)), recent_a);
    }
    f.render_widget(Paragraph::new(health_line(d)).style(t.dim()), health_a);
    if app.help {
        draw_help(f, area, t);
    }
}

fn pane(title: &str, t: Theme) -> Block<'_> {
    Block::new()
        .borders(Borders::TOP)
        .title(Span::styled(title, t.title()))
}

fn status_line(app: &App, d: &Data, t: Theme) -> Line<'static> {
    let mut parts = vec![Span::styled("netdrop", t.title())];
    let what = match app.replay {
        Some(r) if r.done => format!(" replay · {:.1}s · end of recording", d.at_s),
        Some(r) if r.realtime => format!(" replay ▶ {:.1}s", d.at_s),
        Some(_) => format!(" replay · {:.1}s", d.at_s),
        None => format!(" watch · {:.0}s", d.at_s),
    };
    parts.push(Span::raw(what));
    parts.push(Span::raw(format!(
        " · {} drops · sort {}",
        d.summary
            .total_drops
            .max(d.causes.values().map(|r| r.total).sum()),
        match app.sort {
            Sort::Rate => "drops/s",
            Sort::Total => "total",
        }
    )));
    if app.paused() {
        parts.push(Span::styled(
            " · PAUSED",
            t.fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    if let Some(r) = &app.recording {
        parts.push(Span::styled(format!(" · REC {r}"), t.fg(Color::Red)));
    }
    if let Some(input) = &app.input {
        parts.push(Span::raw(format!(" · filter: {}▏", safe(input))));
    } else if !app.filter.is_empty() {
        parts.push(Span::raw(format!(
            " · filter: {}",
            safe(&app.filter.source)
        )));
    }
    if let Some(m) = &app.message {
        parts.push(Span::styled(format!(" · {m}"), t.fg(Color::Yellow)));
    }
    parts.push(Span::styled("  ? help · q quit", t.dim()));
    Line::from(parts)
}

fn draw_causes(
    f: &mut Frame,
    area: Rect,
    app: &App,
    d: &Data,
    ranked: &[&CauseRow],
    cause: Option<Cause>,
    t: Theme,
) {
    let mut lines = Vec::new();
    if ranked.is_empty() {
        lines.push(Line::from("  no drops yet"));
    }
    let width = area.width as usize;
    for r in ranked {
        let head = format!(
            "{:<22}{:>9.1}/s {:>10}  ",
            r.cause.as_str(),
            r.rate(),
            r.total
        );
        let spark_w = width
            .saturating_sub(head.chars().count() + 2)
            .min(super::model::SPARK_SECONDS);
        let mark = if Some(r.cause) == cause { "▶ " } else { "  " };
        let style = if Some(r.cause) == cause && app.pane == Pane::Causes {
            t.selected()
        } else {
            Style::new()
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{mark}{head}"), style),
            Span::styled(spark(&r.series, spark_w), t.fg(Color::Magenta)),
        ]));
        let advice = d.advice(r.cause);
        let below = match advice.first() {
            Some(a) if advice.len() > 1 => format!("    → {a} (+{} more)", advice.len() - 1),
            Some(a) => format!("    → {a}"),
            None if r.cause == Cause::Other => "    no advice: see the rows by reason below".into(),
            None => format!("    {}", r.cause.meaning()),
        };
        lines.push(Line::styled(below, t.fg(Color::Green)));
    }
    let title = " causes · drops/s · total · last minute ";
    f.render_widget(Paragraph::new(lines).block(pane(title, t)), area);
}

fn draw_groups(
    f: &mut Frame,
    area: Rect,
    app: &App,
    cause: Cause,
    groups: &[super::model::GroupRow],
    t: Theme,
) {
    let d = app.shown();
    let mut lines = Vec::new();
    if app.pane == Pane::Group
        && let Some(g) = groups.get(app.group)
    {
        lines.push(Line::styled(format!("  {}", g.text), t.selected()));
        if let Some(o) = &g.owner {
            lines.push(Line::from(format!("  latest owner: {o}")));
        }
        for a in d.advice(cause) {
            lines.push(Line::styled(format!("  → {a}"), t.fg(Color::Green)));
        }
        let title = format!(
            " {} · group {}/{} (Esc: back) ",
            cause.as_str(),
            app.group + 1,
            groups.len()
        );
        f.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(pane(&title, t)),
            area,
        );
        return;
    }
    if groups.is_empty() {
        lines.push(Line::from(match d.report {
            None => "  (the diagnosis comes with the next interval)",
            Some(_) => "  no groups (matching the filter)",
        }));
    }
    // Keep the selected group in view.
    let rows = area.height.saturating_sub(1) as usize;
    let first = app.group.saturating_sub(rows.saturating_sub(1));
    for (i, g) in groups.iter().enumerate().skip(first).take(rows) {
        let owner = g
            .owner
            .as_ref()
            .map(|o| format!("  [{o}]"))
            .unwrap_or_default();
        let style = if app.pane == Pane::Groups && i == app.group {
            t.selected()
        } else {
            Style::new()
        };
        lines.push(Line::styled(format!("  • {}{owner}", g.text), style));
    }
    let hint = if app.pane == Pane::Causes {
        "Enter: open"
    } else {
        "Enter: open · Esc: back"
    };
    let title = format!(" groups of {} ({}) · {hint} ", cause.as_str(), groups.len());
    f.render_widget(Paragraph::new(lines).block(pane(&title, t)), area);
}

/// Hooks attached and missing, events held back and lost, the kernel's
/// counters beside netdrop's.
fn health_line(d: &Data) -> String {
    let mut parts = vec![format!("hooks {}", safe(&d.hooks.attached.join(", ")))];
    let missing: Vec<&str> = d
        .hooks
        .unavailable
        .iter()
        .filter_map(|u| u.split(" hook").next())
        .collect();
    if !missing.is_empty() {
        parts.push(format!("missing {}", safe(&missing.join(", "))));
    }
    parts.push(format!(
        "held back {} · lost {}",
        d.summary.sampled_events, d.summary.lost_events
    ));
    if let Some(r) = &d.report {
        for row in r
            .kernel_counters
            .iter()
            .filter(|r| r.kernel.unwrap_or(0) > 0 || r.netdrop_seen > 0)
            .take(2)
        {
            let k = row.kernel.map_or("n/a".into(), |k| k.to_string());
            parts.push(format!(
                "{} {k} (netdrop {})",
                safe(&row.counter),
                row.netdrop_seen
            ));
        }
    }
    parts.join(" · ")
}

const HELP: &[(&str, &str)] = &[
    ("↑ ↓ j k", "select a cause, or a group"),
    ("Enter → l", "open the cause's groups, then one group"),
    ("Esc ← h", "back"),
    (
        "/",
        "filter: proc:NAME|PID netns:NAME|INODE dev:NAME port:N words",
    ),
    ("p, space", "pause (freeze the screen; a replay stops)"),
    ("s", "sort causes by drops/s or by total"),
    ("r", "start or stop a recording (netdrop-<time>.ndr)"),
    ("?", "this help"),
    (
        "q, Ctrl-C",
        "quit: the summary and diagnosis on the normal screen",
    ),
];

fn draw_help(f: &mut Frame, area: Rect, t: Theme) {
    let w = area.width.min(76);
    let h = (HELP.len() as u16 + 2).min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| Line::from(format!(" {k:<11}{what}")))
        .collect();
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(Span::styled(" keys (any key closes) ", t.title()))),
        r,
    );
}
