//! The exposition: [`State`] (and a few reads made at the scrape itself: the
//! neighbour tables, the agent's own memory and CPU) as metric families,
//! encoded by prometheus-client in the format the scraper asked for.

use std::sync::{Arc, Mutex};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use super::state::{ListenerGauge, NsLabels, State};
use crate::{context, text};

type Labels = Vec<(&'static str, String)>;

/// A value of a series.
enum V {
    U(u64),
    F(f64),
}

/// Writes one family with its series.
fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    ty: MetricType,
    series: impl IntoIterator<Item = (Labels, V)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, ty)?;
    for (labels, v) in series {
        // Names from processes, namespaces and containers are untrusted:
        // no control character reaches whoever reads the page on a terminal.
        let labels: Labels = labels
            .into_iter()
            .map(|(k, v)| (k, text::safe(&v).into_owned()))
            .collect();
        let e = m.encode_family(&labels)?;
        match (ty, v) {
            (MetricType::Counter, V::U(v)) => ConstCounter::new(v).encode(e)?,
            (MetricType::Counter, V::F(v)) => ConstCounter::new(v).encode(e)?,
            (_, V::U(v)) => ConstGauge::new(v as i64).encode(e)?,
            (_, V::F(v)) => ConstGauge::new(v).encode(e)?,
        }
    }
    Ok(())
}

fn ns_labels(l: &NsLabels) -> Labels {
    vec![
        ("netns", l.netns.clone()),
        ("netns_cookie", l.netns_cookie.clone()),
        ("netns_name", l.netns_name.clone()),
        ("pod", l.pod.clone()),
        ("pod_namespace", l.pod_namespace.clone()),
        ("container", l.container.clone()),
    ]
}

fn with(mut l: Labels, more: &[(&'static str, &str)]) -> Labels {
    l.extend(more.iter().map(|(k, v)| (*k, v.to_string())));
    l
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// The registry's only collector: everything is read at the scrape.
#[derive(Debug)]
pub struct Exposition(pub Arc<Mutex<State>>);

impl Collector for Exposition {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        drops(&s, &mut enc)?;
        saturation(&s, &mut enc)?;
        neigh_tables(&mut enc)?;
        health(&s, &mut enc)?;
        Ok(())
    }
}

fn drops(s: &State, enc: &mut DescriptorEncoder) -> std::fmt::Result {
    use crate::classify::cause_of;
    let mut by_reason: Vec<(Labels, V)> = s
        .summary
        .reasons
        .iter()
        .map(|(r, n)| {
            (
                vec![
                    ("cause", cause_of(r).as_str().into()),
                    ("reason", r.clone()),
                ],
                V::U(*n),
            )
        })
        .collect();
    if s.summary.accept_syn_drops > 0 {
        by_reason.push((
            vec![
                ("cause", "accept_queue_full".into()),
                ("reason", "SYN_REFUSED".into()),
            ],
            V::U(s.summary.accept_syn_drops),
        ));
    }
    family(
        enc,
        "netdrop_drops",
        "Drops the hooks counted in the kernel, exactly, by cause and kernel reason (all namespaces)",
        MetricType::Counter,
        by_reason,
    )?;
    family(
        enc,
        "netdrop_cause_drops",
        "Drops by cause as the diagnosis counts them: the hooks' plus those only the kernel's counters show",
        MetricType::Counter,
        s.summary
            .causes
            .iter()
            .map(|(c, n)| (vec![("cause", c.to_string())], V::U(*n))),
    )?;
    let mut per_ns = Vec::new();
    for (cause, b) in &s.netns_drops {
        for (id, (n, _)) in &b.keys {
            per_ns.push((
                with(ns_labels(&s.ns_labels(*id)), &[("cause", cause)]),
                V::U(*n),
            ));
        }
        if b.other > 0 {
            per_ns.push((
                with(ns_labels(&NsLabels::other_row()), &[("cause", cause)]),
                V::U(b.other),
            ));
        }
    }
    family(
        enc,
        "netdrop_netns_drops",
        "Drops by cause per network namespace, from the detail events (the top namespaces per cause; the rest netns=\"other\")",
        MetricType::Counter,
        per_ns,
    )?;
    let mut per_group = Vec::new();
    for (cause, b) in &s.group_drops {
        for ((kind, id, group), (n, _)) in &b.keys {
            let (netns, cookie) = if id.inode == 0 {
                ("all".to_string(), String::new())
            } else {
                (id.inode.to_string(), id.cookie.to_string())
            };
            per_group.push((
                vec![
                    ("cause", cause.to_string()),
                    ("kind", kind.clone()),
                    ("netns", netns),
                    ("netns_cookie", cookie),
                    ("group", group.clone()),
                ],
                V::U(*n),
            ));
        }
        let rest = s.group_rest.get(cause).copied().unwrap_or(0);
        if rest > 0 {
            per_group.push((
                vec![
                    ("cause", cause.to_string()),
                    ("kind", "other".into()),
                    ("netns", "other".into()),
                    ("netns_cookie", String::new()),
                    ("group", "other".into()),
                ],
                V::U(rest),
            ));
        }
    }
    family(
        enc,
        "netdrop_group_drops",
        "Drops by the listener, neighbour, table, device, socket or peer they hit (the top groups per cause; the rest group=\"other\")",
        MetricType::Counter,
        per_group,
    )?;
    family(
        enc,
        "netdrop_kernel_drops",
        "The kernel's own counter of a cause, its increase since netdrop started, summed over the namespaces",
        MetricType::Counter,
        s.kernel_counters.iter().map(|((c, n), v)| {
            (
                vec![("cause", c.to_string()), ("counter", n.clone())],
                V::U(*v),
            )
        }),
    )
}

fn saturation(s: &State, enc: &mut DescriptorEncoder) -> std::fmt::Result {
    // The fullest listeners first: the top ones are exported.
    let mut listeners: Vec<_> = s.listeners.iter().collect();
    listeners.sort_by(|a, b| {
        let f = |g: &ListenerGauge| ratio(g.peak as f64, g.limit as f64);
        f(b.1).total_cmp(&f(a.1))
    });
    listeners.truncate(s.top);
    let l = |(k, g): &(&(crate::netns_id::NetnsId, String), &ListenerGauge)| {
        with(ns_labels(&g.labels), &[("listener", &k.1)])
    };
    type Field = fn(&ListenerGauge) -> V;
    let fields: [(&str, &str, Field); 4] = [
        (
            "netdrop_listen_queue_length",
            "Connections waiting in the listener's accept queue, as last read",
            |g| V::U(g.queue.into()),
        ),
        (
            "netdrop_listen_queue_peak",
            "The accept queue's largest length since the previous scrape",
            |g| V::U(g.peak.into()),
        ),
        (
            "netdrop_listen_queue_limit",
            "The accept queue's limit: min(listen() backlog, net.core.somaxconn)",
            |g| V::U(g.limit.into()),
        ),
        (
            "netdrop_listen_queue_fill_ratio",
            "Peak / limit: at 1 and above, SYNs and final ACKs are dropped",
            |g| V::F(ratio(g.peak as f64, g.limit as f64)),
        ),
    ];
    for (name, help, field) in fields {
        let series = listeners.iter().map(|e| (l(e), field(e.1)));
        family(enc, name, help, MetricType::Gauge, series)?;
    }
    let mut conntrack: Vec<_> =
        s.ns.values()
            .filter_map(|g| Some((g, g.conntrack?)))
            .collect();
    conntrack.sort_by(|a, b| {
        ratio(b.1.0 as f64, b.1.1 as f64).total_cmp(&ratio(a.1.0 as f64, a.1.1 as f64))
    });
    conntrack.truncate(s.top);
    let nsl = |l: &NsLabels| {
        vec![
            ("netns", l.netns.clone()),
            ("netns_cookie", l.netns_cookie.clone()),
            ("netns_name", l.netns_name.clone()),
        ]
    };
    type Fill = fn(i64, i64) -> V;
    let fields: [(&str, &str, Fill); 3] = [
        (
            "netdrop_conntrack_entries",
            "Connections tracked in the namespace (net.netfilter.nf_conntrack_count)",
            |n, _| V::U(n.max(0) as u64),
        ),
        (
            "netdrop_conntrack_max",
            "net.netfilter.nf_conntrack_max in force there",
            |_, max| V::U(max.max(0) as u64),
        ),
        (
            "netdrop_conntrack_fill_ratio",
            "Entries / max: at 1, new connections are dropped",
            |n, max| V::F(ratio(n as f64, max as f64)),
        ),
    ];
    for (name, help, field) in fields {
        let series = conntrack
            .iter()
            .map(|(g, (n, max))| (nsl(&g.labels), field(*n, *max)));
        family(enc, name, help, MetricType::Gauge, series)?;
    }
    let mut rp: Vec<(Labels, V)> =
        s.ns.values()
            .flat_map(|g| {
                g.rp_filter
                    .iter()
                    .map(|(d, v)| (with(nsl(&g.labels), &[("device", d)]), V::U(*v as u64)))
            })
            .collect();
    // Strict mode (1) first: it is the one that drops asymmetric traffic.
    rp.sort_by_key(|(_, v)| match v {
        V::U(1) => 0,
        _ => 1,
    });
    rp.truncate(s.top * 4);
    family(
        enc,
        "netdrop_rp_filter_effective",
        "Effective reverse-path filter of a device, max(conf.all, conf.DEV): 1 strict, 2 loose (devices with 0 are not listed)",
        MetricType::Gauge,
        rp,
    )?;
    family(
        enc,
        "netdrop_neigh_unres_qlen_bytes",
        "Bytes a neighbour being resolved may queue on the device, where its queue dropped (the queue's use is not readable)",
        MetricType::Gauge,
        s.unres_qlen_bytes.iter().map(|((id, d), v)| {
            (
                with(nsl(&s.ns_labels(*id)), &[("device", d)]),
                V::U((*v).max(0) as u64),
            )
        }),
    )?;
    family(
        enc,
        "netdrop_advice_info",
        "The current advice: the knob to change, its value in force and the suggested one (always 1)",
        MetricType::Gauge,
        s.advice.iter().map(|[c, k, cur, sug, subj]| {
            (
                vec![
                    ("cause", c.clone()),
                    ("knob", k.clone()),
                    ("current", cur.clone()),
                    ("suggested", sug.clone()),
                    ("subject", subj.clone()),
                ],
                V::U(1),
            )
        }),
    )
}

/// The neighbour tables are global and cheap to read: read at the scrape, so
/// the fill ratio is as fresh as the scrape.
fn neigh_tables(enc: &mut DescriptorEncoder) -> std::fmt::Result {
    let mut entries = Vec::new();
    let mut thresh = Vec::new();
    let mut fill = Vec::new();
    for (family_name, read, v) in [
        (
            "ipv4",
            context::read_arp_cache as fn() -> std::io::Result<Option<context::ArpCacheStats>>,
            "ipv4",
        ),
        ("ipv6", context::read_ndisc_cache, "ipv6"),
    ] {
        let fam = || vec![("family", family_name.to_string())];
        let Some(stats) = read().ok().flatten() else {
            continue;
        };
        entries.push((fam(), V::U(stats.entries)));
        let mut t3 = None;
        for level in 1..=3 {
            let path = format!("net/{v}/neigh/default/gc_thresh{level}");
            if let Ok(t) = context::read_sysctl_int(&path) {
                thresh.push((
                    with(fam(), &[("level", &level.to_string())]),
                    V::U(t.max(0) as u64),
                ));
                if level == 3 {
                    t3 = Some(t.max(0) as f64);
                }
            }
        }
        if let Some(t3) = t3 {
            fill.push((fam(), V::F(ratio(stats.entries as f64, t3))));
        }
    }
    family(
        enc,
        "netdrop_neigh_table_entries",
        "Entries in the neighbour table (global: every namespace's)",
        MetricType::Gauge,
        entries,
    )?;
    family(
        enc,
        "netdrop_neigh_gc_thresh",
        "The neighbour table's gc_thresh1..3 (net.ipv4/ipv6.neigh.default)",
        MetricType::Gauge,
        thresh,
    )?;
    family(
        enc,
        "netdrop_neigh_table_fill_ratio",
        "Entries / gc_thresh3: at 1, new neighbours are refused and their packets dropped",
        MetricType::Gauge,
        fill,
    )
}

fn health(s: &State, enc: &mut DescriptorEncoder) -> std::fmt::Result {
    let one = |v: V| [(Labels::new(), v)];
    family(
        enc,
        "netdrop_events_lost",
        "Detail events the ring buffer could not take (the counts stay exact)",
        MetricType::Counter,
        one(V::U(s.summary.lost_events)),
    )?;
    family(
        enc,
        "netdrop_events_held_back",
        "Detail events held back by --events-per-sec (the counts stay exact)",
        MetricType::Counter,
        one(V::U(s.summary.sampled_events)),
    )?;
    family(
        enc,
        "netdrop_events_undecodable",
        "Ring buffer records that could not be decoded",
        MetricType::Counter,
        one(V::U(s.session.undecodable)),
    )?;
    family(
        enc,
        "netdrop_snapshot_errors",
        "Reads of the kernel's view (a namespace, a table) that failed",
        MetricType::Counter,
        one(V::U(s.snapshot_errors)),
    )?;
    let folded: u64 = s.netns_drops.values().map(|b| b.folded).sum();
    family(
        enc,
        "netdrop_series_folded",
        "Drops counted in an \"other\" series because a cause had --top series already",
        MetricType::Counter,
        [(
            vec![("metric", "netdrop_netns_drops".to_string())],
            V::U(folded),
        )],
    )?;
    let age = s.last_snapshot.map_or(-1.0, |t| t.elapsed().as_secs_f64());
    family(
        enc,
        "netdrop_snapshot_age_seconds",
        "Seconds since the last full read of the kernel's view (-1: none yet)",
        MetricType::Gauge,
        one(V::F(age)),
    )?;
    family(
        enc,
        "netdrop_namespaces_tracked",
        "Network namespaces the exporter holds series or gauges for",
        MetricType::Gauge,
        one(V::U(s.labels.len() as u64)),
    )?;
    family(
        enc,
        "netdrop_build_info",
        "netdrop's version and the running kernel (always 1)",
        MetricType::Gauge,
        [(
            vec![("version", s.version.clone()), ("kernel", s.kernel.clone())],
            V::U(1),
        )],
    )?;
    family(
        enc,
        "netdrop_hook_attached",
        "Hooks attached (1 each)",
        MetricType::Gauge,
        s.hooks_attached
            .iter()
            .map(|h| (vec![("hook", h.clone())], V::U(1))),
    )?;
    family(
        enc,
        "netdrop_hook_missing",
        "Hook slots with no hook on this kernel (1 each); their drops come from the kernel's counters",
        MetricType::Gauge,
        s.hooks_missing
            .iter()
            .map(|h| (vec![("slot", h.clone())], V::U(1))),
    )?;
    let (rss, cpu) = own_usage();
    family(
        enc,
        "process_resident_memory_bytes",
        "Resident memory of netdrop",
        MetricType::Gauge,
        one(V::U(rss)),
    )?;
    family(
        enc,
        "process_cpu_seconds",
        "User and system CPU time of netdrop",
        MetricType::Counter,
        one(V::F(cpu)),
    )?;
    family(
        enc,
        "process_start_time_seconds",
        "When netdrop started, unix seconds",
        MetricType::Gauge,
        one(V::F(start_unix(s))),
    )
}

fn start_unix(s: &State) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    now - s.started.elapsed().as_secs_f64()
}

/// Resident bytes and CPU seconds of this process (/proc/self).
fn own_usage() -> (u64, f64) {
    // SAFETY: sysconf has no preconditions.
    let (page, hz) = unsafe {
        (
            libc::sysconf(libc::_SC_PAGESIZE),
            libc::sysconf(libc::_SC_CLK_TCK),
        )
    };
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |p| p * page.max(1) as u64);
    // Fields after the command (which may hold spaces) start after ')'.
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15: 12 and 13 after ')'.
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .map_or(0.0, |t| t / hz.max(1) as f64);
    (rss, cpu)
}
