//! The fleet files in `deploy/`, checked with the tools that consume them.
//!
//! - Prometheus: `promtool check rules`, `promtool test rules` (each alert fires
//!   on its series and not on healthy ones), `promtool check config` of both
//!   example configurations; every alert has a summary, a description and a
//!   runbook.
//! - Grafana: the dashboard parses, has its variables, and every panel's
//!   expression is valid PromQL (checked by promtool as a recording rule).
//! - Every metric name a rule or a panel uses is in README.md's Fleet metrics
//!   table (the exporter's contract).
//! - systemd: `systemd-analyze verify` of the unit (pointing at the built
//!   binary), its capability set, and its exposure as README.md states it.
//! - Kubernetes: `kubernetes-validate --strict` of the manifests.
//! - The container image (deploy/image.rs): `cargo xtask image`, then
//!   `podman run` of it (`--version`, `--help`, `watch`, and `serve` scraped
//!   during real drops) as the DaemonSet runs it, read from its manifest;
//!   the probes ask what serve answers. **Needs root and podman**; the rest
//!   needs neither.
//!
//! A missing tool is a loud SKIP naming scripts/setup.sh, which installs them all.
//!
//!     cargo test -p netdrop-tests --test deploy -- --test-threads=1

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use netdrop_tests::cmd::TempDir;
use netdrop_tests::daemonset::DaemonSet;
use netdrop_tests::deploy::{Alert, alerts, fill_variables, metric_names, readme_metrics};
use netdrop_tests::{netdrop_bin, skip_loudly};

#[path = "deploy/image.rs"]
mod image;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deploy(file: &str) -> PathBuf {
    workspace().join("deploy").join(file)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `name` on $PATH or at one of `also`; else a loud SKIP for `test`.
fn tool(test: &str, name: &str, also: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|d| d.join(name))
        .chain(also.iter().map(PathBuf::from))
        .find(|p| p.is_file());
    if found.is_none() {
        skip_loudly(&format!(
            "{test}: {name} not found: run scripts/setup.sh (it installs it)"
        ));
    }
    found
}

fn run(prog: &Path, args: &[&str]) -> Output {
    Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", prog.display()))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_ok(what: &str, o: &Output) {
    assert!(o.status.success(), "{what} failed:\n{}", text(o));
}

fn rules() -> Vec<Alert> {
    alerts(&read(&deploy("prometheus/rules.yml")))
}

#[test]
fn prometheus_rules_check_and_unit_tests() {
    let Some(promtool) = tool("prometheus_rules", "promtool", &[]) else {
        return;
    };
    let file = deploy("prometheus/rules.yml");
    assert_ok(
        "promtool check rules",
        &run(&promtool, &["check", "rules", file.to_str().unwrap()]),
    );
    let tests = deploy("prometheus/rules.test.yml");
    let o = run(&promtool, &["test", "rules", tests.to_str().unwrap()]);
    assert_ok("promtool test rules", &o);
    // Every alert is exercised by the unit tests.
    let tested = read(&tests);
    for a in rules() {
        assert!(
            tested.contains(&format!("alertname=\"{}\"", a.name)),
            "{} is not in rules.test.yml",
            a.name
        );
    }
}

#[test]
fn every_alert_has_a_runbook() {
    let alerts = rules();
    let names: BTreeSet<&str> = alerts.iter().map(|a| a.name.as_str()).collect();
    for want in [
        "NetdropNeighTableNearFull",
        "NetdropNeighTableOverflowDrops",
        "NetdropAcceptQueueFull",
        "NetdropConntrackTableNearFull",
        "NetdropDrops",
        "NetdropRpFilterDrops",
        "NetdropEventsLost",
        "NetdropAgentDown",
    ] {
        assert!(names.contains(want), "no alert {want} in {names:?}");
    }
    for a in &alerts {
        let get = |k: &str| {
            a.annotations
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{}: no {k} annotation", a.name))
        };
        assert!(get("summary").len() > 20, "{}: summary", a.name);
        assert!(get("description").len() > 40, "{}: description", a.name);
        let runbook = get("runbook");
        for part in ["Meaning:", "Confirm:", "Fix"] {
            assert!(runbook.contains(part), "{}: runbook lacks {part}", a.name);
        }
        assert!(
            runbook.contains("netdrop") || runbook.contains("nstat"),
            "{}: the runbook names no command to confirm with",
            a.name
        );
        assert!(
            runbook.lines().count() >= 5,
            "{}: runbook too short",
            a.name
        );
    }
}

/// Writes `config` into a fresh directory beside a copy of rules.yml and runs
/// `promtool check config` on it.
fn check_config(promtool: &Path, config: &str) -> Output {
    let dir = TempDir::new().unwrap();
    std::fs::copy(deploy("prometheus/rules.yml"), dir.path().join("rules.yml")).unwrap();
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, config).unwrap();
    run(promtool, &["check", "config", path.to_str().unwrap()])
}

#[test]
fn prometheus_configs_check() {
    let Some(promtool) = tool("prometheus_configs", "promtool", &[]) else {
        return;
    };
    let plain = read(&deploy("prometheus/prometheus.yml"));
    assert!(plain.contains("job_name: netdrop") && plain.contains(":9617"));
    assert_ok(
        "promtool check config prometheus.yml",
        &check_config(&promtool, &plain),
    );

    let k8s = read(&deploy("prometheus/prometheus-kubernetes.yml"));
    let o = check_config(&promtool, &k8s);
    if text(&o).contains("field kubernetes_sd_configs not found") {
        // Debian's promtool is built without Kubernetes discovery: check the
        // rest (relabelling, rule files) with the discovery block replaced.
        skip_loudly(
            "prometheus_configs: this promtool has no kubernetes_sd_configs (Debian's build): \
             checking prometheus-kubernetes.yml with static targets in its place",
        );
        let mut out = String::new();
        let mut in_sd = false;
        for line in k8s.lines() {
            if line.trim() == "kubernetes_sd_configs:" {
                in_sd = true;
                out.push_str("    static_configs:\n      - targets: ['198.18.0.1:9617']\n");
                continue;
            }
            if in_sd && line.starts_with("      ") {
                continue;
            }
            in_sd = false;
            out.push_str(line);
            out.push('\n');
        }
        assert!(out.contains("relabel_configs:") && !out.contains("role: pod"));
        assert_ok(
            "promtool check config prometheus-kubernetes.yml (static in place of kubernetes_sd)",
            &check_config(&promtool, &out),
        );
    } else {
        assert_ok("promtool check config prometheus-kubernetes.yml", &o);
    }
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read(&deploy("grafana/netdrop.json"))).expect("netdrop.json is JSON")
}

/// (panel title, expression) of every target of every panel.
fn panel_exprs(d: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().unwrap().to_string();
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: targets"));
        assert!(!targets.is_empty(), "{title}: no query");
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "{title}: datasource"
        );
        for t in targets {
            let e = t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{title}: expr"));
            out.push((title.clone(), e.to_string()));
        }
    }
    out
}

/// `promtool check rules` of `exprs` as recording rules.
fn check_exprs(promtool: &Path, exprs: &[String]) -> Output {
    let dir = TempDir::new().unwrap();
    let mut y = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        // A JSON string is a YAML double-quoted scalar.
        y.push_str(&format!(
            "      - record: dashboard:panel_{i}\n        expr: {}\n",
            serde_json::Value::String(e.clone())
        ));
    }
    let path = dir.path().join("dashboard.rules.yml");
    std::fs::write(&path, y).unwrap();
    run(promtool, &["check", "rules", path.to_str().unwrap()])
}

#[test]
fn dashboard_panels_are_valid_promql() {
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36, "schemaVersion");
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(
        vars.contains(&"datasource") && vars.contains(&"instance"),
        "{vars:?}"
    );
    let exprs = panel_exprs(&d);
    let titles: BTreeSet<&str> = exprs.iter().map(|(t, _)| t.as_str()).collect();
    assert!(titles.len() >= 10, "{titles:?}");
    for (title, e) in &exprs {
        assert!(
            e.contains("$instance") || e.contains("$__range"),
            "{title}: not filtered by node: {e}"
        );
    }
    let Some(promtool) = tool("dashboard_panels", "promtool", &[]) else {
        return;
    };
    let filled: Vec<String> = exprs.iter().map(|(_, e)| fill_variables(e)).collect();
    assert_ok(
        "promtool check rules (the panels' expressions)",
        &check_exprs(&promtool, &filled),
    );
    // The check bites: a broken expression is refused.
    let broken = check_exprs(&promtool, &["sum by (cause (rate(x[5m]))".to_string()]);
    assert!(
        !broken.status.success(),
        "promtool accepted a broken expression"
    );
}

#[test]
fn metric_names_are_the_exporters() {
    let known = readme_metrics(&read(&workspace().join("README.md")));
    assert!(known.len() >= 25, "{known:?}");
    let mut used = BTreeSet::new();
    for a in rules() {
        used.extend(metric_names(&a.expr));
    }
    let d = dashboard();
    for (_, e) in panel_exprs(&d) {
        used.extend(metric_names(&fill_variables(&e)));
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            let inner = q.trim_start_matches("label_values(").trim_end_matches(')');
            used.insert(inner.split(',').next().unwrap().trim().to_string());
        }
    }
    let unknown: Vec<&String> = used.difference(&known).collect();
    assert!(unknown.is_empty(), "not exporter metrics: {unknown:?}");
    for want in [
        "netdrop_advice_info",
        "netdrop_neigh_table_fill_ratio",
        "netdrop_listen_queue_fill_ratio",
        "netdrop_conntrack_fill_ratio",
        "netdrop_kernel_drops_total",
        "netdrop_netns_drops_total",
        "netdrop_cause_drops_total",
        "netdrop_events_lost_total",
    ] {
        assert!(used.contains(want), "{want} is used by no panel or rule");
    }
}

/// The capabilities netdrop needs (README "Privileges", plus nft's NET_ADMIN
/// and kallsyms's SYSLOG), as CAP_ names.
const CAPS: [&str; 8] = [
    "BPF",
    "PERFMON",
    "NET_ADMIN",
    "SYS_ADMIN",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "DAC_READ_SEARCH",
    "SYSLOG",
];

#[test]
fn systemd_unit_verifies() {
    let unit = read(&deploy("systemd/netdrop.service"));
    let caps = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet");
    let caps: BTreeSet<&str> = caps.split_whitespace().collect();
    let want: BTreeSet<String> = CAPS.iter().map(|c| format!("CAP_{c}")).collect();
    assert_eq!(caps, want.iter().map(String::as_str).collect());
    for bad in [
        "ProtectProc=",
        "ProcSubset=",
        "PrivateNetwork=yes",
        "PrivateUsers=yes",
        "ProtectKernelTunables=yes",
    ] {
        assert!(
            !unit.lines().any(|l| l.starts_with(bad)),
            "{bad} hides what netdrop reads"
        );
    }
    assert!(unit.contains("\nExecStart=/usr/local/bin/netdrop serve --listen 127.0.0.1:9617\n"));
    let Some(analyze) = tool("systemd_unit", "systemd-analyze", &[]) else {
        return;
    };
    let bin = netdrop_bin();
    assert!(bin.is_file(), "build netdrop first: {}", bin.display());
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("netdrop.service");
    let local = unit.replace(
        "ExecStart=/usr/local/bin/netdrop",
        &format!("ExecStart={}", bin.canonicalize().unwrap().display()),
    );
    std::fs::write(&path, local).unwrap();
    let p = path.to_str().unwrap();
    let o = run(&analyze, &["verify", p]);
    assert_ok("systemd-analyze verify", &o);
    // verify only warns about a bad value: any output is a failure.
    assert!(
        text(&o).trim().is_empty(),
        "systemd-analyze verify:\n{}",
        text(&o)
    );

    let o = run(&analyze, &["security", "--offline=true", p]);
    if !o.status.success() {
        skip_loudly(&format!(
            "systemd_unit: no offline security analysis here: {}",
            text(&o)
        ));
        return;
    }
    let out = text(&o);
    let level = out
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for netdrop.service: ")
                .nth(1)
        })
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    let readme = read(&workspace().join("README.md"));
    assert!(
        readme.contains(&format!("rates it **{level} ")),
        "README.md's Fleet section should state the exposure {level}"
    );
    assert!(level.parse::<f64>().unwrap() <= 4.5, "exposure {level}");
}

#[test]
fn kubernetes_manifests_validate() {
    let manifest = deploy("kubernetes/daemonset.yaml");
    let yaml = read(&manifest);
    for want in [
        "kind: DaemonSet",
        "kind: ServiceAccount",
        "kind: Service\n",
        "clusterIP: None",
        "hostPID: true",
        "hostNetwork: true",
        "privileged: false",
        "path: /healthz",
        "mountPropagation: HostToContainer",
        "prometheus.io/scrape: \"true\"",
        "- operator: Exists",
    ] {
        assert!(yaml.contains(want), "daemonset.yaml lacks {want:?}");
    }
    let add = DaemonSet::parse(&yaml).caps();
    assert_eq!(add, CAPS.map(String::from).into());
    let Some(validate) = tool(
        "kubernetes_manifests",
        "kubernetes-validate",
        &["/var/lib/netdrop-setup/venv/bin/kubernetes-validate"],
    ) else {
        return;
    };
    let o = run(&validate, &["--strict", manifest.to_str().unwrap()]);
    assert_ok("kubernetes-validate --strict", &o);
    assert_eq!(
        text(&o).matches(" passed for resource ").count(),
        4,
        "{}",
        text(&o)
    );
    // Strict: a field the schema does not have is refused.
    let dir = TempDir::new().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        yaml.replace("hostPID: true", "hostPID: true\n      hostPIDs: true"),
    )
    .unwrap();
    let o = run(&validate, &["--strict", bad.to_str().unwrap()]);
    assert!(
        !o.status.success(),
        "an unknown field passed:\n{}",
        text(&o)
    );
}
