//! `netdrop serve` scraped by a real Prometheus server while real drops are
//! reproduced: the counts Prometheus stores equal the kernel's counters, the
//! neighbour table's fill gauge crosses 90 % before the first overflow drop,
//! the page is valid for promtool, and namespace churn leaves bounded series.

use std::{
    net::SocketAddrV4,
    process::Command,
    time::{Duration, Instant},
};

use netdrop_tests::{
    accept::AcceptOverflow,
    churn::{self, ChurnOptions},
    counters::{arp_cache, delta},
    lock,
    neigh::{NeighTableOverflow, PORT},
    netdrop::Netdrop,
    prom::{self, Prometheus, free_addr, http_get, samples},
    require_root,
    rpfilter::RpFilter,
    settle, skip_loudly,
    sysctl::SysctlGuard,
    traffic::udp_send_each,
};

fn start_serve(extra: &[&str]) -> (Netdrop, std::net::SocketAddr) {
    let addr = free_addr().expect("a free port");
    let listen = addr.to_string();
    let args = [
        &[
            "serve",
            "--listen",
            &listen,
            "--snapshot-interval",
            "0.5",
            "--interval",
            "0.5",
        ],
        extra,
    ]
    .concat();
    let nd = Netdrop::start_command(&args).expect("starting netdrop serve");
    (nd, addr)
}

fn page(addr: std::net::SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics").expect("scraping /metrics");
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn prometheus_sees_the_drops_and_the_table_filling_before_them() {
    let _serial = lock();
    if !can_run_prometheus("prometheus_sees_the_drops_and_the_table_filling_before_them") {
        return;
    }
    let table = NeighTableOverflow::setup().expect("table setup");
    let rp = RpFilter::setup().expect("rp_filter setup");
    // The entries stay INCOMPLETE (held by their timer, out of the forced
    // GC's reach) for 10 s instead of 3: the table stays at 90 % while
    // Prometheus scrapes it.
    table
        .a
        .sysctl(
            &format!("net.ipv4.neigh.{}.mcast_solicit", NeighTableOverflow::DEV_A),
            "10",
        )
        .expect("mcast_solicit");
    let (nd, addr) = start_serve(&[]);
    let (status, body) = http_get(addr, "/healthz").expect("/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    let (p, _rules) = scraping(addr);
    let rp_before = rp.b.netstat().expect("netstat")["TcpExt:IPReversePathFilter"];

    // The table fills to 90 % of gc_thresh3 first, then overflows.
    let before = arp_cache().expect("arp_cache");
    let thresh3 = before["entries"] + 20;
    let guards: Vec<SysctlGuard> = NeighTableOverflow::THRESH
        .iter()
        .map(|k| SysctlGuard::set(k, &thresh3.to_string()).expect("gc_thresh"))
        .collect();
    let dsts: Vec<SocketAddrV4> = table
        .targets
        .iter()
        .map(|t| SocketAddrV4::new(*t, PORT))
        .collect();
    udp_send_each(&table.a, Some(NeighTableOverflow::SRC), &dsts[..18]).expect("first 18");
    let fill = "netdrop_neigh_table_fill_ratio{family=\"ipv4\"}";
    let seen = p.wait_for(fill, Duration::from_secs(6), |v| v >= 0.9);
    // The saturation alert fires while the table is at 90 %, before any drop.
    let near_full = p.wait_for(
        &firing("NetdropNeighTableNearFull"),
        Duration::from_secs(8),
        |v| v >= 1.0,
    );
    let drops_then = p
        .value("sum(netdrop_drops_total{cause=\"neigh_table_overflow\"})")
        .expect("query");
    udp_send_each(&table.a, Some(NeighTableOverflow::SRC), &dsts[18..]).expect("the rest");
    for g in guards.into_iter().rev() {
        g.restore().expect("restoring gc_thresh");
    }
    let after = arp_cache().expect("arp_cache");
    let sent = rp.generate().expect("rp_filter traffic");
    settle();
    let fulls = delta(&before, &after, "table_fulls");
    let rp_drops = rp.b.netstat().expect("netstat")["TcpExt:IPReversePathFilter"] - rp_before;
    assert!(fulls > 0, "no table overflow provoked");
    assert_eq!(rp_drops, sent as u64, "IPReversePathFilter in B");
    seen.unwrap_or_else(|e| panic!("the fill gauge never reached 0.9 before the overflow: {e}"));
    near_full.unwrap_or_else(|e| {
        panic!(
            "NetdropNeighTableNearFull did not fire at 90 %: {e}\n{}",
            p.log()
        )
    });
    assert_eq!(
        drops_then.unwrap_or(0.0),
        0.0,
        "drops before the table was full"
    );

    // Prometheus holds the kernel's counts.
    let wait = |expr: &str, want: u64| {
        p.wait_for(expr, Duration::from_secs(15), |v| v == want as f64)
            .unwrap_or_else(|e| panic!("{e}\npage:\n{}", page(addr)))
    };
    wait(
        "sum(netdrop_drops_total{cause=\"neigh_table_overflow\"})",
        fulls,
    );
    wait(
        "netdrop_cause_drops_total{cause=\"neigh_table_overflow\"}",
        fulls,
    );
    wait("netdrop_cause_drops_total{cause=\"rp_filter\"}", rp_drops);
    let b = rp.b.inode().to_string();
    wait(
        &format!(
            "netdrop_netns_drops_total{{cause=\"rp_filter\",netns=\"{b}\",netns_name=\"{}\"}}",
            rp.b.name()
        ),
        rp_drops,
    );
    wait(
        &format!(
            "netdrop_group_drops_total{{cause=\"rp_filter\",kind=\"device\",netns=\"{b}\",group=\"{}\"}}",
            RpFilter::DEV_B
        ),
        rp_drops,
    );
    wait(
        "sum(netdrop_kernel_drops_total{cause=\"rp_filter\"})",
        rp_drops,
    );
    wait(
        "sum(netdrop_kernel_drops_total{cause=\"neigh_table_overflow\"})",
        fulls,
    );
    // The advice, with the values in force at the drops.
    // Values as now (restored after the burst).
    let now3 = netdrop_tests::sysctl::read(NeighTableOverflow::THRESH[2]).expect("gc_thresh3");
    wait(
        &format!(
            "count(netdrop_advice_info{{cause=\"neigh_table_overflow\",knob=\"net.ipv4.neigh.default.gc_thresh3\",current=\"{}\"}})",
            now3.trim()
        ),
        1,
    );
    wait(
        &format!(
            "count(netdrop_advice_info{{cause=\"rp_filter\",knob=\"net.ipv4.conf.{}.rp_filter\",current=\"1\"}})",
            RpFilter::DEV_B
        ),
        1,
    );
    wait(
        &format!(
            "netdrop_rp_filter_effective{{netns=\"{b}\",device=\"{}\"}}",
            RpFilter::DEV_B
        ),
        1,
    );

    // The gauge was at 90 % or more in a scrape before the first drop.
    let fills = p.raw_samples(fill, "5m").expect("fill samples");
    let drops = p
        .raw_samples(
            "netdrop_cause_drops_total{cause=\"neigh_table_overflow\"}",
            "5m",
        )
        .expect("drop samples");
    let first_drop = drops
        .iter()
        .find(|(_, v)| *v > 0.0)
        .map(|(t, _)| *t)
        .expect("a scrape with the drops");
    let warned = fills
        .iter()
        .filter(|(t, v)| *t < first_drop && *v >= 0.9)
        .count();
    assert!(
        warned >= 1,
        "no scrape saw the table at 90 % before the first drop (at {first_drop}): {fills:?}"
    );
    eprintln!(
        "table: gc_thresh3 {thresh3}, {fulls} refused; {warned} scrape(s) at >= 90 % before the first drop; rp_filter {rp_drops}"
    );

    // The drop alerts fire too.
    for alert in ["NetdropNeighTableOverflowDrops", "NetdropRpFilterDrops"] {
        p.wait_for(&firing(alert), Duration::from_secs(15), |v| v >= 1.0)
            .unwrap_or_else(|e| panic!("{alert} did not fire: {e}"));
    }

    let last = page(addr);
    check_page_with_promtool(&last);
    check_families_are_the_readme_table(&last);
    drop(p);
    stop_serve(nd);
}

/// No Prometheus needed (the kernel matrix runs it in every guest): the
/// page's counts equal the kernel's for rp_filter drops and a full accept
/// queue, whatever hooks this kernel has.
#[test]
fn serve_counts_equal_the_kernels() {
    let _serial = lock();
    if !require_root("serve_counts_equal_the_kernels") {
        return;
    }
    let rp = RpFilter::setup().expect("rp_filter setup");
    let aq = AcceptOverflow::setup().expect("accept setup");
    let (nd, addr) = start_serve(&[]);
    let rp_before = rp.b.netstat().expect("netstat")["TcpExt:IPReversePathFilter"];
    let aq_before = aq.s.netstat().expect("netstat")["TcpExt:ListenOverflows"];
    let sent = rp.generate().expect("rp_filter traffic");
    let listener = aq.syn_burst(1, 16).expect("accept traffic");
    settle();
    let rp_kernel = rp.b.netstat().expect("netstat")["TcpExt:IPReversePathFilter"] - rp_before;
    let aq_kernel = aq.s.netstat().expect("netstat")["TcpExt:ListenOverflows"] - aq_before;
    assert_eq!(rp_kernel, sent as u64, "IPReversePathFilter");
    assert!(aq_kernel > 0, "no accept queue overflow");
    let want = [("rp_filter", rp_kernel), ("accept_queue_full", aq_kernel)];
    let deadline = Instant::now() + Duration::from_secs(15);
    let last = loop {
        let p = page(addr);
        let got: Vec<f64> = want
            .iter()
            .map(|(c, _)| {
                samples(&p, "netdrop_cause_drops_total")
                    .iter()
                    .find(|(l, _)| l.contains(&format!("cause=\"{c}\"")))
                    .map_or(0.0, |s| s.1)
            })
            .collect();
        if got.iter().zip(&want).all(|(g, (_, w))| *g == *w as f64) {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "netdrop_cause_drops_total {got:?}, the kernel {want:?}:\n{p}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let per_ns = samples(&last, "netdrop_netns_drops_total");
    let b = format!("netns=\"{}\"", rp.b.inode());
    assert!(
        per_ns.iter().any(|(l, v)| l.contains(&b)
            && l.contains("cause=\"rp_filter\"")
            && *v == rp_kernel as f64),
        "rp_filter drops of {b}: {per_ns:?}"
    );
    eprintln!("serve: rp_filter {rp_kernel}, accept_queue_full {aq_kernel}, as the kernel counted");
    drop(listener);
    stop_serve(nd);
}

/// The seed incident's accept queue: a listener with backlog 1 that never
/// accepts, 16 connects at once. Prometheus sees the queue's fill at 1, the
/// alert fire, and the drops equal to ListenOverflows (known from the counter
/// alone where tcp_conn_request cannot be hooked).
#[test]
fn prometheus_sees_a_full_accept_queue() {
    let _serial = lock();
    if !can_run_prometheus("prometheus_sees_a_full_accept_queue") {
        return;
    }
    let sc = AcceptOverflow::setup().expect("setup");
    let (nd, addr) = start_serve(&[]);
    let (p, _rules) = scraping(addr);
    let before = sc.s.netstat().expect("netstat")["TcpExt:ListenOverflows"];
    let listener = sc.syn_burst(1, 16).expect("traffic");
    settle();
    let overflows = sc.s.netstat().expect("netstat")["TcpExt:ListenOverflows"] - before;
    assert!(overflows > 0, "no overflow provoked");
    let s = sc.s.inode();
    let l = format!(
        "netns=\"{s}\",listener=\"{}:{}\"",
        AcceptOverflow::SERVER,
        AcceptOverflow::PORT
    );
    let wait = |expr: &str, ok: &dyn Fn(f64) -> bool| {
        p.wait_for(expr, Duration::from_secs(15), ok)
            .unwrap_or_else(|e| panic!("{e}\npage:\n{}", page(addr)))
    };
    // The listener stays full while it is held: the gauge and the alert.
    wait(&format!("netdrop_listen_queue_fill_ratio{{{l}}}"), &|v| {
        v >= 1.0
    });
    wait(&format!("netdrop_listen_queue_limit{{{l}}}"), &|v| v == 1.0);
    wait(&firing("NetdropAcceptQueueFull"), &|v| v >= 1.0);
    let want = overflows as f64;
    wait(
        "netdrop_cause_drops_total{cause=\"accept_queue_full\"}",
        &|v| v == want,
    );
    wait(
        "sum(netdrop_kernel_drops_total{cause=\"accept_queue_full\"})",
        &|v| v == want,
    );
    wait(
        &format!(
            "sum(netdrop_group_drops_total{{cause=\"accept_queue_full\",kind=\"listener\",netns=\"{s}\"}})"
        ),
        &|v| v == want,
    );
    wait(
        "count(netdrop_advice_info{cause=\"accept_queue_full\"})",
        &|v| v >= 1.0,
    );
    wait(&firing("NetdropAcceptQueueDrops"), &|v| v >= 1.0);
    eprintln!("accept queue: {overflows} ListenOverflows, all in Prometheus");
    drop(listener);
    drop(p);
    stop_serve(nd);
}

/// Root and Prometheus, or a loud skip.
fn can_run_prometheus(test: &str) -> bool {
    if !require_root(test) {
        return false;
    }
    if prom::prometheus_bin().is_none() {
        skip_loudly(&format!(
            "{test}: prometheus is not installed: run scripts/setup.sh"
        ));
        return false;
    }
    true
}

/// A Prometheus scraping the exporter at `addr` every second with the
/// quick rules, once it has scraped it (the rules' directory lives as long
/// as the second value).
fn scraping(addr: std::net::SocketAddr) -> (Prometheus, netdrop_tests::cmd::TempDir) {
    let rules = quick_rules();
    let p = Prometheus::start(&[addr], Some(&rules.path().join("rules.yml")))
        .expect("starting prometheus");
    p.wait_for("up{job=\"netdrop\"}", Duration::from_secs(20), |v| v == 1.0)
        .unwrap_or_else(|e| panic!("{e}\n{}", p.log()));
    (p, rules)
}

/// SIGINT, and a clean exit.
fn stop_serve(nd: Netdrop) {
    let out = nd.stop().expect("stopping netdrop serve");
    assert_eq!(
        out.status.code(),
        Some(0),
        "serve exit; stderr:\n{}",
        out.stderr
    );
}

/// deploy/prometheus/rules.yml with every `for:` at 1 s (so a test sees the
/// alerts fire in seconds), in a temporary directory.
fn quick_rules() -> netdrop_tests::cmd::TempDir {
    let src =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/rules.yml");
    let text = std::fs::read_to_string(&src).expect("deploy/prometheus/rules.yml");
    let quick: String = text
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 1s\n", &l[..l.len() - l.trim_start().len()]),
            None => format!("{l}\n"),
        })
        .collect();
    assert_ne!(quick, text, "no `for:` in rules.yml");
    let dir = netdrop_tests::cmd::TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("rules.yml"), quick).expect("writing rules");
    dir
}

/// How many of `alert`'s alerts fire.
fn firing(alert: &str) -> String {
    format!("count(ALERTS{{alertname=\"{alert}\",alertstate=\"firing\"}})")
}

/// The metric families on the page are README's metrics table, no more, no less.
fn check_families_are_the_readme_table(page: &str) {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
    )
    .expect("README.md");
    let mut table = netdrop_tests::deploy::readme_metrics(&readme);
    table.remove("up");
    let served: std::collections::BTreeSet<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let undocumented: Vec<_> = served.difference(&table).collect();
    let missing: Vec<_> = table.difference(&served).collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "served but not in README's table: {undocumented:?}; in the table but not served: {missing:?}"
    );
}

/// `promtool check metrics` reads the page without an error.
fn check_page_with_promtool(page: &str) {
    let Some(promtool) = prom::promtool_bin() else {
        skip_loudly("promtool is not installed: run scripts/setup.sh");
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("writing to promtool");
    let out = child.wait_with_output().expect("promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Lint findings (e.g. a counter without _total) print but pass; a parse
    // error fails.
    assert!(
        out.status.success() || !text.contains("error"),
        "promtool check metrics:\n{text}"
    );
    assert!(
        !text.contains("error while linting"),
        "promtool check metrics:\n{text}"
    );
    if !text.trim().is_empty() {
        eprintln!("promtool check metrics says:\n{text}");
    }
}

#[test]
fn namespace_churn_leaves_bounded_series() {
    let _serial = lock();
    if !require_root("namespace_churn_leaves_bounded_series") {
        return;
    }
    const TOP: usize = 5;
    let (nd, addr) = start_serve(&["--top", &TOP.to_string(), "--retain", "3"]);
    let opts = ChurnOptions {
        namespaces: 120,
        sender_every: 2,
        datagrams: 3,
        linger: Duration::from_millis(300),
        workers: 4,
        time_limit: Duration::from_secs(45),
    };
    let run = churn::run(&opts).expect("namespace churn");
    let sent: u64 = run.senders().map(|n| n.sent as u64).sum();
    assert!(sent >= 100, "churn sent only {sent} datagrams");
    settle();
    std::thread::sleep(Duration::from_secs(1));
    let during = page(addr);
    let other: Vec<(String, f64)> = samples(&during, "netdrop_netns_drops_total")
        .into_iter()
        .filter(|(l, _)| l.contains("cause=\"other\""))
        .collect();
    assert!(
        other.len() <= TOP + 1,
        "{} series of netdrop_netns_drops_total for cause other, --top {TOP}: {other:?}",
        other.len()
    );
    let total: f64 = other.iter().map(|(_, v)| v).sum();
    assert!(
        total >= sent as f64,
        "the namespaces' series hold {total} drops, the churn made {sent}: {other:?}"
    );
    assert!(
        other.iter().any(|(l, _)| l.contains("netns=\"other\"")),
        "no netns=\"other\" series with {} dropping namespaces and --top {TOP}",
        run.senders().count()
    );
    let folded = samples(&during, "netdrop_series_folded_total");
    assert!(
        folded.iter().any(|(_, v)| *v > 0.0),
        "nothing folded: {folded:?}"
    );
    check_page_with_promtool(&during);

    // Gone for longer than --retain: their series and state go.
    let deadline = Instant::now() + Duration::from_secs(15);
    let churned: std::collections::BTreeSet<String> = run
        .namespaces
        .iter()
        .map(|n| format!("netns=\"{}\"", n.inode))
        .collect();
    loop {
        let now = page(addr);
        let left: Vec<String> = samples(&now, "netdrop_netns_drops_total")
            .into_iter()
            .map(|(l, _)| l)
            .filter(|l| churned.iter().any(|c| l.contains(c.as_str())))
            .filter(|l| !l.contains("netns=\"other\""))
            .collect();
        let tracked = samples(&now, "netdrop_namespaces_tracked")
            .first()
            .map_or(f64::NAN, |s| s.1);
        if left.is_empty() && tracked < 20.0 {
            eprintln!("after the churn: {tracked} namespaces tracked, no churned series left");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "15 s after the churn, with --retain 3: {tracked} namespaces tracked, series left: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    stop_serve(nd);
}

/// A port already taken is refused at once with one line, before anything
/// is loaded (root or not).
#[test]
fn a_taken_port_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("binding");
    let addr = taken.local_addr().unwrap().to_string();
    let out =
        netdrop_tests::netdrop::run_netdrop(&["serve", "--listen", &addr], Duration::from_secs(20))
            .expect("running netdrop serve");
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].starts_with("netdrop: error: listening on ") && lines[0].contains("in use"),
        "{}",
        lines[0]
    );
}
