//! The container image as deploy/kubernetes/daemonset.yaml runs it.
//!
//! `cargo xtask image`, then `podman run` of it: `--version`, `--help`, nft;
//! `watch` and then the DaemonSet's own `serve` arguments (its `--listen`
//! moved to a free loopback port) under the pod's settings read from the
//! manifest: its capabilities and nothing else, a read-only root, the host's
//! PID and network namespaces, its mounts (those this host has; /run/netns
//! with HostToContainer propagation). The probe's path answers `ok`, the
//! page has the build and the attached hooks, and rp_filter drops made in
//! namespaces created after the container started are counted, named, on
//! the page; `podman stop` within the grace period ends netdrop cleanly.
//! Needs root, podman and runc. `daemonset_probes_reach_serve` needs neither.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use netdrop_tests::{
    cmd,
    daemonset::{DaemonSet, Source},
    lock, netdrop_bin,
    prom::{free_addr, http_get, samples},
    require_root,
    rpfilter::RpFilter,
};

use super::{assert_ok, deploy, read, run, text, tool, workspace};

fn daemonset() -> DaemonSet {
    DaemonSet::parse(&read(&deploy("kubernetes/daemonset.yaml")))
}

#[test]
fn daemonset_probes_reach_serve() {
    let ds = daemonset();
    let args = ds.args();
    assert_eq!(args[0], "serve", "the DaemonSet runs {args:?}");
    let listen: SocketAddr = ds.listen().parse().expect("--listen ADDR:PORT");
    // Every node address: the probes come from the kubelet at the node IP.
    assert!(listen.ip().is_unspecified(), "--listen {listen}");
    for which in ["readinessProbe", "livenessProbe"] {
        let p = ds.probe(which);
        // What netdrop serve answers with `ok` (container_image_runs asks it).
        assert_eq!(p.path, "/healthz", "{which}");
        assert_eq!(p.port, listen.port(), "{which} is not the --listen port");
    }
    let scrape = ds.annotation("prometheus.io/port");
    assert_eq!(scrape, listen.port().to_string(), "prometheus.io/port");
    assert_eq!(ds.annotation("prometheus.io/path"), "/metrics");
    let service = &ds.doc("Service")["spec"]["ports"][0];
    assert_eq!(ds.port(&service["targetPort"]), listen.port(), "Service");
}

/// Removes the test's image however the test ends.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rmi", "-f", &self.0]).output();
    }
}

/// podman as CONTAINERS.md says it works on hybrid cgroups.
fn podman(podman: &Path) -> Command {
    let mut c = Command::new(podman);
    c.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    c
}

/// `podman run MODE EXTRA IMAGE ARGS` with the test's limits.
fn podman_run(bin: &Path, mode: &[&str], extra: &[String], image: &str, args: &[&str]) -> Command {
    let mut c = podman(bin);
    c.arg("run")
        .args(mode)
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args(extra)
        .arg(image)
        .args(args);
    c
}

fn output(mut c: Command) -> Output {
    c.output().expect("podman run")
}

/// podman's flags for the DaemonSet's pod: its namespaces, security context
/// and mounts. The settings it cannot mirror are asserted to be as it assumes.
fn pod_flags(ds: &DaemonSet) -> Vec<String> {
    let pod = ds.pod();
    assert_eq!(
        (&pod["hostPID"], &pod["hostNetwork"]),
        (&"true".into(), &"true".into())
    );
    for (key, want) in [
        ("privileged", "false"),
        // No no-new-privileges (podman's default as well).
        ("allowPrivilegeEscalation", "true"),
        ("readOnlyRootFilesystem", "true"),
        ("runAsUser", "0"),
        ("runAsGroup", "0"),
        ("seccompProfile", "Unconfined"),
        ("appArmorProfile", "Unconfined"),
    ] {
        assert_eq!(
            ds.security(key),
            want,
            "securityContext.{key}: update this test"
        );
    }
    assert_eq!(
        ds.container()["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    let caps: Vec<String> = ds.caps().iter().map(|c| c.to_lowercase()).collect();
    let mut flags: Vec<String> = [
        "--pid",
        "host",
        "--network",
        "host",
        "--user",
        "0:0",
        // Writable only where the DaemonSet mounts something.
        "--read-only",
        "--read-only-tmpfs=false",
        "--cap-drop",
        "all",
        "--cap-add",
        &caps.join(","),
        "--security-opt",
        "seccomp=unconfined",
        "--security-opt",
        "apparmor=unconfined",
    ]
    .map(String::from)
    .into();
    for m in ds.mounts() {
        match m.source {
            Source::Host { path, .. } if Path::new(&path).exists() => {
                let mut opts = vec![if m.read_only { "ro" } else { "rw" }];
                if m.host_to_container {
                    opts.push("rslave");
                }
                flags.extend([
                    "-v".into(),
                    format!("{path}:{}:{}", m.target, opts.join(",")),
                ]);
            }
            Source::Host { path, kind } => {
                eprintln!(
                    "note: volume {} ({path}, {kind}) is not on this host: not mounted",
                    m.name
                )
            }
            Source::Memory { size } => {
                let size = size.strip_suffix("Mi").expect("sizeLimit in Mi");
                flags.extend(["--tmpfs".into(), format!("{}:rw,size={size}m", m.target)]);
            }
        }
    }
    flags
}

#[test]
fn container_image_runs() {
    if !require_root("container_image_runs") {
        return;
    }
    let (Some(podman_bin), Some(_)) = (
        tool("container_image", "podman", &[]),
        tool("container_image", "runc", &["/usr/sbin/runc"]),
    ) else {
        return;
    };
    let tag = format!("localhost/netdrop-test:{}", std::process::id());
    let image = Image(tag.clone());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let bin = netdrop_bin();
    let o = Command::new(cargo)
        .current_dir(workspace())
        .args([
            "run", "-q", "-p", "xtask", "--", "image", "--tag", &tag, "--binary",
        ])
        .arg(&bin)
        .output()
        .expect("cargo xtask image");
    assert_ok("cargo xtask image", &o);

    let none = ["--network".to_string(), "none".to_string()];
    let o = output(podman_run(
        &podman_bin,
        &["--rm"],
        &none,
        &image.0,
        &["--version"],
    ));
    assert_ok("podman run IMAGE --version", &o);
    let own = run(&bin, &["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&own.stdout)
    );
    let o = output(podman_run(
        &podman_bin,
        &["--rm"],
        &none,
        &image.0,
        &["--help"],
    ));
    assert_ok("podman run IMAGE --help", &o);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("watch"),
        "{}",
        text(&o)
    );
    let nft = [&none[..], &["--entrypoint".into(), "/usr/sbin/nft".into()]].concat();
    let o = output(podman_run(
        &podman_bin,
        &["--rm"],
        &nft,
        &image.0,
        &["--version"],
    ));
    assert_ok("nft in the image", &o);

    // The DaemonSet's capabilities and nothing else are enough to attach.
    let ds = daemonset();
    let flags = pod_flags(&ds);
    let _serial = lock();
    let o = output(podman_run(
        &podman_bin,
        &["--rm"],
        &flags,
        &image.0,
        &["watch", "--duration", "1"],
    ));
    assert_ok("podman run IMAGE watch (the DaemonSet's pod)", &o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("netdrop: watching ("), "{err}");
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
    if kallsyms.contains(" nf_hook_slow") {
        assert!(
            !err.contains("no nf_hook_slow in /proc/kallsyms"),
            "CAP_SYSLOG: {err}"
        );
    }

    serves_as_the_daemonset_runs_it(&podman_bin, &image.0, &ds, &flags);
}

/// How long the page may take to show what the test waits for.
const WAIT: Duration = Duration::from_secs(30);

/// A detached container, stopped and removed on Drop (its log printed when
/// the test failed).
struct Container {
    podman: PathBuf,
    name: String,
}

impl Container {
    fn podman(&self, args: &[&str]) -> cmd::CmdOutput {
        cmd::output(podman(&self.podman).args(args), Duration::from_secs(40))
            .unwrap_or_else(|e| panic!("podman {args:?}: {e:#}"))
    }

    /// Its log (never panics: Drop prints it).
    fn logs(&self) -> String {
        let mut c = podman(&self.podman);
        c.args(["logs", &self.name]);
        match cmd::output(&mut c, Duration::from_secs(40)) {
            Ok(o) => format!("{}{}", o.stdout, o.stderr),
            Err(e) => format!("(podman logs: {e:#})"),
        }
    }

    fn running(&self) -> bool {
        let o = self.podman(&["inspect", "-f", "{{.State.Running}}", &self.name]);
        o.stdout.trim() == "true"
    }

    /// GET `path` until `ok` accepts the body (status 200); panics naming
    /// `what` if the container stops or time runs out.
    fn wait_for(
        &self,
        addr: SocketAddr,
        path: &str,
        what: &str,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let last = match http_get(addr, path) {
                Ok((200, body)) if ok(&body) => return body,
                Ok((status, body)) => format!("HTTP {status}: {body}"),
                Err(e) => format!("{e:#}"),
            };
            // Drop prints the container's log.
            assert!(self.running(), "the container stopped");
            assert!(
                Instant::now() < deadline,
                "{path}: no {what} within {WAIT:?}; last {last}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- podman logs {} ---\n{}", self.name, self.logs());
        }
        for args in [&["stop", "-t", "5"][..], &["rm", "-f", "-t", "0"]] {
            let mut c = podman(&self.podman);
            c.args(args).arg(&self.name);
            if let Err(e) = cmd::output(&mut c, Duration::from_secs(40)) {
                eprintln!("warning: podman {args:?} {}: {e:#}", self.name);
            }
        }
    }
}

/// The sum of `metric`'s series whose labels hold every one of `labels`.
fn sum(page: &str, metric: &str, labels: &[String]) -> f64 {
    samples(page, metric)
        .iter()
        .filter(|(l, _)| labels.iter().all(|want| l.contains(want.as_str())))
        .map(|(_, v)| v)
        .sum()
}

/// The DaemonSet's `serve` arguments in its pod: probe, page, drops, stop.
fn serves_as_the_daemonset_runs_it(bin: &Path, image: &str, ds: &DaemonSet, flags: &[String]) {
    let addr = free_addr().expect("a free port");
    let listen = ds.listen();
    let args: Vec<String> = ds
        .args()
        .into_iter()
        .map(|a| if a == listen { addr.to_string() } else { a })
        .collect();
    let name = format!("netdrop-test-{}", std::process::id());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Removed however the test ends, even if `podman run` itself hangs.
    let container = Container {
        podman: bin.to_path_buf(),
        name,
    };
    // Detached, and kept after it exits (for its exit code and log).
    let mut run_cmd = podman_run(bin, &["-d", "--name", &container.name], flags, image, &args);
    let o = cmd::output(&mut run_cmd, Duration::from_secs(60)).expect("podman run -d");
    assert!(o.status.success(), "podman run -d serve: {}", o.stderr);

    for which in ["readinessProbe", "livenessProbe"] {
        let probe = ds.probe(which);
        let body = container.wait_for(addr, &probe.path, "ok", |b| b.trim() == "ok");
        assert_eq!(body, "ok\n", "{which}");
    }
    // The probes answer once the port is bound; the hooks attach after.
    let page = container.wait_for(addr, "/metrics", "netdrop_hook_attached", |p| {
        !samples(p, "netdrop_hook_attached").is_empty()
    });
    let hooks = samples(&page, "netdrop_hook_attached");
    assert!(hooks.iter().all(|(_, v)| *v == 1.0), "{hooks:?}");
    let build = samples(&page, "netdrop_build_info");
    let kernel = read(Path::new("/proc/sys/kernel/osrelease"));
    let want = format!(
        "version=\"{}\",kernel=\"{}\"",
        env!("CARGO_PKG_VERSION"),
        kernel.trim()
    );
    assert!(
        build.len() == 1 && build[0].0.contains(&want),
        "netdrop_build_info {build:?}, want {want}"
    );

    // Namespaces made after netdrop started: their names reach it through
    // /run/netns (HostToContainer), their drops through the hooks.
    let ns = RpFilter::setup().expect("rp_filter namespaces");
    // netdrop's count, and the kernel's counter as netdrop reads it in the
    // namespaces (setns: SYS_ADMIN), over all namespaces.
    let rp = |p: &str| {
        let cause = ["cause=\"rp_filter\"".to_string()];
        let counter = [
            cause[0].clone(),
            "counter=\"TcpExt:IPReversePathFilter\"".into(),
        ];
        (
            sum(p, "netdrop_cause_drops_total", &cause),
            sum(p, "netdrop_kernel_drops_total", &counter),
        )
    };
    let before_page = http_get(addr, "/metrics").expect("/metrics").1;
    let kernel_before = ns.b.netstat().expect("netstat")["TcpExt:IPReversePathFilter"];
    let sent = ns.generate().expect("rp_filter traffic") as f64;
    let kernel_drops =
        (ns.b.netstat().expect("netstat")["TcpExt:IPReversePathFilter"] - kernel_before) as f64;
    assert_eq!(kernel_drops, sent, "IPReversePathFilter in B");
    let in_b = [
        format!("netns=\"{}\"", ns.b.inode()),
        format!("netns_name=\"{}\"", ns.b.name()),
        "cause=\"rp_filter\"".to_string(),
    ];
    let base = rp(&before_page);
    let what = format!("{sent} rp_filter drops in {}", ns.b.name());
    let page = container.wait_for(addr, "/metrics", &what, |p| {
        let (total, kernel) = rp(p);
        sum(p, "netdrop_netns_drops_total", &in_b) == sent
            && total - base.0 >= sent
            && kernel - base.1 >= sent
    });
    eprintln!(
        "container: {} hooks, {sent} rp_filter drops counted in {} ({:?} in all, by netdrop and by the kernel)",
        hooks.len(),
        ns.b.name(),
        rp(&page)
    );

    // The kubelet's stop: SIGTERM, SIGKILL after the grace period.
    let grace = ds.pod()["terminationGracePeriodSeconds"]
        .as_str()
        .expect("terminationGracePeriodSeconds");
    let o = container.podman(&["stop", "-t", grace, &container.name]);
    assert!(o.status.success(), "podman stop: {}", o.stderr);
    let code = container.podman(&["inspect", "-f", "{{.State.ExitCode}}", &container.name]);
    let logs = container.logs();
    assert_eq!(code.stdout.trim(), "0", "exit after SIGTERM:\n{logs}");
    assert!(logs.contains("netdrop: stopped after"), "{logs}");
}
