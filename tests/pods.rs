//! Pods and containers named on drops (netdrop/src/container/).
//!
//! - `podman_container`: a real podman container (`--network none`, a busybox
//!   image imported from a tarball: no registry here); a veth joins its
//!   namespace to one the test made. A process joined to the container (its
//!   namespace and cgroup, as `podman exec` joins) holds a UDP socket there
//!   that never reads: datagrams to it are dropped (socket_rcvbuf) with that
//!   process as owner; datagrams to a closed port are dropped in the
//!   container's namespace (NO_SOCKET). The drops, the owner, the namespace
//!   and the diagnosis group name the container (`--name`, 12-digit id).
//! - `kubernetes_pod`: a process in a namespace the test made, moved into the
//!   cgroups a kubelet with the systemd driver and containerd make
//!   (`kubepods.slice/…-pod<uid>.slice/cri-containerd-<id>.scope`), with a
//!   kubelet log directory (`$NETDROP_KUBELET_LOG_DIR`) naming its pod with
//!   escape sequences in it: the drops and the diagnosis name the pod, its
//!   namespace and container; the recording replays them, escaped.
//!
//! Needs root; podman and runc (scripts/setup.sh) for the first, else it skips
//! loudly. Run one at a time:
//!
//!     cargo build -p netdrop
//!     cargo test -p netdrop-tests --test pods -- --test-threads=1

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use netdrop_tests::cmd::{self, TempDir, run, run_args};
use netdrop_tests::netdrop::run_netdrop;
use netdrop_tests::traffic::{setsockopt_int, udp_send, udp_socket};
use netdrop_tests::{Netdrop, NetdropOutput, Netns, lock, require_root, settle, skip_loudly};

const RCVBUF_SENDS: usize = 200;
const CLOSED_SENDS: usize = 20;
const CLOSED_PORT: u16 = 9;
const WAIT: Duration = Duration::from_secs(10);

/// Makes `sock` the command's fd 3 (inherited across exec).
fn pass_as_fd3(cmd: &mut Command, sock: &UdpSocket) {
    let fd = sock.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl).
    unsafe {
        cmd.pre_exec(move || {
            let ok = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(fd, 3) == 3
            };
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// A receiver that never reads, with the smallest buffer: most datagrams to
/// it are dropped (socket_rcvbuf).
fn full_receiver(ns: &Netns, addr: Option<Ipv4Addr>) -> (UdpSocket, u16) {
    let rx = udp_socket(ns, addr).expect("receiver");
    setsockopt_int(&rx, libc::SOL_SOCKET, libc::SO_RCVBUF, 1).expect("SO_RCVBUF");
    let port = rx.local_addr().unwrap().port();
    (rx, port)
}

fn with_dport(lines: Vec<&Value>, port: u16) -> Vec<&Value> {
    lines
        .into_iter()
        .filter(|l| l["dport"] == json!(port))
        .collect()
}

// ---------------------------------------------------------------- podman

fn podman(args: &[&str]) -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"])
        .args(args);
    c
}

fn have(prog: &str) -> bool {
    Command::new(prog)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// An image and a container, removed on Drop.
struct Podman {
    image: String,
    container: String,
}

impl Drop for Podman {
    fn drop(&mut self) {
        for args in [
            vec!["rm", "-f", "-t", "0", &self.container],
            vec!["rmi", "-f", &self.image],
        ] {
            if let Err(e) = cmd::output(&mut podman(&args), WAIT) {
                eprintln!("warning: podman {}: {e:#}", args.join(" "));
            }
        }
    }
}

/// `localhost/<name>`: busybox alone, imported from a tarball.
fn busybox_image(dir: &Path, name: &str) -> anyhow::Result<()> {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin"))?;
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))?;
    for applet in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    let tar = dir.join("bb.tar");
    run_args(
        "tar",
        &[
            "-C",
            root.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    )?;
    run(&mut podman(&["import", tar.to_str().unwrap(), name]))?;
    Ok(())
}

#[test]
fn podman_container() {
    let _serial = lock();
    if !require_root("podman_container") {
        return;
    }
    if !have("podman") || !have("runc") {
        skip_loudly("podman_container: podman or runc missing (scripts/setup.sh installs them)");
        return;
    }
    let me = std::process::id();
    let name = format!("nd-test-{me}");
    let tmp = TempDir::new().unwrap();
    let mut guard = Podman {
        image: format!("localhost/netdrop-test-bb:{me}"),
        container: String::new(),
    };
    busybox_image(tmp.path(), &guard.image).expect("importing a busybox image");

    let mut run_cmd = podman(&[
        "run",
        "-d",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--name",
        &name,
        "--network",
        "none",
        &guard.image,
        "/bin/sleep",
        "60",
    ]);
    guard.container = name.clone();
    let id = run(&mut run_cmd).expect("podman run").trim().to_string();
    assert_eq!(id.len(), 64, "container id {id:?}");
    let pid = run(&mut podman(&["inspect", "-f", "{{.State.Pid}}", &name]))
        .expect("podman inspect")
        .trim()
        .to_string();
    let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let inode = std::fs::metadata(&netns)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("the container's namespace");

    // A veth from a namespace of the test's into the container's.
    let host = Netns::new().expect("namespace");
    run_args(
        "ip",
        &[
            "link",
            "add",
            "ndpa",
            "netns",
            host.name(),
            "type",
            "veth",
            "peer",
            "name",
            "ndpb",
            "netns",
            &pid,
        ],
    )
    .expect("veth into the container");
    host.ip(&["addr", "add", "198.18.93.1/24", "dev", "ndpa"])
        .unwrap();
    host.ip(&["link", "set", "ndpa", "up"]).unwrap();
    for args in [
        vec!["addr", "add", "198.18.93.2/24", "dev", "ndpb"],
        vec!["link", "set", "ndpb", "up"],
        vec!["link", "set", "lo", "up"],
    ] {
        let mut c = Command::new("nsenter");
        c.args(["-t", &pid, "-n", "ip"]).args(&args);
        run(&mut c).expect("configuring the container's end");
    }

    // A receiver in the container's namespace that never reads, held by a
    // process joined to the container as `podman exec` joins one (its
    // namespace and cgroup). Its own busybox has no UDP listener, and a
    // socket passed with --preserve-fds stays open in conmon too.
    let rx = in_netns_file(&netns, || {
        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::new(198, 18, 93, 2), 0))
    })
    .expect("joining the container's namespace")
    .expect("bind in the container's namespace");
    setsockopt_int(&rx, libc::SOL_SOCKET, libc::SO_RCVBUF, 1).expect("SO_RCVBUF");
    let port = rx.local_addr().unwrap().port();
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &pid, "-n", "sleep", "30"]);
    pass_as_fd3(&mut cmd, &rx);
    let joined = Sleeper(cmd.spawn().expect("a process in the container"));
    wait_for_comm(joined.0.id(), "sleep");
    let cgroup = container_cgroup(&pid).expect("the container's cgroup");
    std::fs::write(cgroup.join("cgroup.procs"), joined.0.id().to_string())
        .expect("into the container's cgroup");
    drop(rx);

    let nd = Netdrop::start(&[]).expect("starting netdrop");
    let to_rx = SocketAddrV4::new(Ipv4Addr::new(198, 18, 93, 2), port);
    let closed = SocketAddrV4::new(Ipv4Addr::new(198, 18, 93, 2), CLOSED_PORT);
    udp_send(&host, None, to_rx, RCVBUF_SENDS).expect("sending to the receiver");
    udp_send(&host, None, closed, CLOSED_SENDS).expect("sending into the container");
    settle();
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();

    let short = &id[..12];
    // The socket's drops: a process of the container owns it.
    let owned = with_dport(out.drops_with_cause("socket_rcvbuf"), port);
    assert!(
        !owned.is_empty(),
        "no socket_rcvbuf drop; {}",
        out.summary()
    );
    for l in &owned {
        let o = &l["owner"];
        assert_eq!(o["pid"], json!(joined.0.id()), "owner: {l}");
        assert_eq!(l["netns_identity"]["container_name"], json!(name), "{l}");
        assert_eq!(o["container_name"], json!(name), "{l}");
        assert_eq!(o["container"], json!(short), "{l}");
        assert_eq!(o["pod"], Value::Null, "{l}");
        assert_eq!(l["container_name"], json!(name), "{l}");
        assert_eq!(l["container"], json!(short), "{l}");
    }
    // The drops in its namespace: the namespace's identity.
    let inside: Vec<&Value> = out
        .drops()
        .into_iter()
        .filter(|l| l["netns"] == json!(inode) && l["dport"] == json!(CLOSED_PORT))
        .collect();
    assert!(
        !inside.is_empty(),
        "no drop in the container's namespace {inode}"
    );
    for l in &inside {
        assert_eq!(l["netns_identity"]["container_name"], json!(name), "{l}");
        assert_eq!(l["netns_identity"]["container"], json!(short), "{l}");
        assert_eq!(l["container_name"], json!(name), "{l}");
    }
    let group = diagnosis_group(&out, port);
    assert_eq!(group["container_name"], json!(name), "{group}");
    assert_eq!(group["container"], json!(short), "{group}");
    assert_eq!(group["pod"], Value::Null, "{group}");
    drop(joined);
}

/// The container's directory in the v1 `pids` hierarchy (or cgroup v2's).
fn container_cgroup(pid: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
        let base = match ctrl {
            "pids" => "/sys/fs/cgroup/pids",
            "" if Path::new("/sys/fs/cgroup/cgroup.procs").exists() => "/sys/fs/cgroup",
            _ => return None,
        };
        Some(PathBuf::from(base).join(path.trim_start_matches('/')))
    })
}

/// Runs `f` on a thread that first joins the network namespace of `ns` (an
/// nsfs file): sockets it makes live there.
fn in_netns_file<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let file = std::fs::File::open(ns)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: file is an open nsfs file; only this thread moves.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .expect("thread in the namespace")
    })
}

// ------------------------------------------------------------ kubernetes

/// A pod name a hostile tenant might choose (no kubelet would allow it; a
/// log directory can hold it).
const POD: &str = "web\x1b[31m-1";
const POD_SHOWN: &str = "web\\x1b[31m-1";
const POD_NS: &str = "prod";
const CONTAINER: &str = "app";

/// cgroup directories made for the test, removed (innermost first) on Drop.
struct Cgroups(Vec<PathBuf>);

impl Drop for Cgroups {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            if let Err(e) = std::fs::remove_dir(d) {
                eprintln!("warning: rmdir {}: {e}", d.display());
            }
        }
    }
}

/// The hierarchy to make them in: cgroup v2's root, else v1's `pids`.
fn cgroup_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/pids"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.procs").exists())
}

/// A child killed and reaped on Drop.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_comm(pid: u32, comm: &str) {
    let deadline = Instant::now() + WAIT;
    while std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        != comm
    {
        assert!(Instant::now() < deadline, "pid {pid} never became {comm}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn assert_names_the_pod(v: &Value, short: &str) {
    assert_eq!(v["pod"], json!(POD), "{v}");
    assert_eq!(v["pod_namespace"], json!(POD_NS), "{v}");
    assert_eq!(v["container_name"], json!(CONTAINER), "{v}");
    assert_eq!(v["container"], json!(short), "{v}");
}

#[test]
fn kubernetes_pod() {
    let _serial = lock();
    if !require_root("kubernetes_pod") {
        return;
    }
    let Some(root) = cgroup_root() else {
        skip_loudly("kubernetes_pod: no writable cgroup hierarchy (v2 root or v1 pids)");
        return;
    };
    if root.join("kubepods.slice").exists() {
        skip_loudly("kubernetes_pod: this machine has a kubepods.slice of its own");
        return;
    }
    let me = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let uid = format!("{me:08x}-0d1a-4a2b-9c3d-{nanos:012x}");
    let id = format!("{me:08x}{nanos:08x}{}", "c0ffee".repeat(8));
    let short = &id[..12];

    // The kubelet's log directory for the pod and its container.
    let tmp = TempDir::new().unwrap();
    let log = tmp.path().join("log");
    let pod_dir = log.join("pods").join(format!("{POD_NS}_{POD}_{uid}"));
    std::fs::create_dir_all(pod_dir.join(CONTAINER)).unwrap();
    std::fs::write(pod_dir.join(CONTAINER).join("0.log"), "").unwrap();
    std::fs::create_dir_all(log.join("containers")).unwrap();
    std::os::unix::fs::symlink(
        pod_dir.join(CONTAINER).join("0.log"),
        log.join("containers")
            .join(format!("{POD}_{POD_NS}_{CONTAINER}-{id}.log")),
    )
    .unwrap();

    // The pod's process: in its own namespace, holding a receiver that never reads.
    let ns = Netns::new().expect("namespace");
    let addr = Ipv4Addr::new(198, 18, 94, 1);
    ns.ip(&["addr", "add", "198.18.94.1/32", "dev", "lo"])
        .unwrap();
    let (rx, port) = full_receiver(&ns, Some(addr));
    let slices = [
        "kubepods.slice".to_string(),
        "kubepods-besteffort.slice".to_string(),
        format!("kubepods-besteffort-pod{}.slice", uid.replace('-', "_")),
        format!("cri-containerd-{id}.scope"),
    ];
    let mut cgroups = Cgroups(Vec::new());
    let mut dir = root.clone();
    for s in &slices {
        dir.push(s);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        cgroups.0.push(dir.clone());
    }
    let mut cmd = ns.exec_cmd(&["sleep", "30"]);
    pass_as_fd3(&mut cmd, &rx);
    let sleeper = Sleeper(cmd.spawn().expect("the pod's process"));
    let pid = sleeper.0.id();
    wait_for_comm(pid, "sleep");
    std::fs::write(dir.join("cgroup.procs"), pid.to_string()).expect("into the pod's cgroup");
    drop(rx);

    let rec = tmp.path().join("pod.ndr");
    let log_dir = log.to_str().unwrap();
    let nd = Netdrop::start_command_env(
        &[
            "watch",
            "--output",
            "json",
            "--record",
            rec.to_str().unwrap(),
        ],
        &[("NETDROP_KUBELET_LOG_DIR", log_dir)],
    )
    .expect("starting netdrop");
    // The exporter too: its per-namespace series carry the pod's labels.
    let metrics = netdrop_tests::prom::free_addr().expect("a free port");
    let serve = Netdrop::start_command_env(
        &[
            "serve",
            "--listen",
            &metrics.to_string(),
            "--snapshot-interval",
            "0.5",
        ],
        &[("NETDROP_KUBELET_LOG_DIR", log_dir)],
    )
    .expect("starting netdrop serve");
    udp_send(&ns, Some(addr), SocketAddrV4::new(addr, port), RCVBUF_SENDS).expect("sending");
    settle();
    let out = nd.stop().expect("stopping netdrop");
    out.assert_clean_exit();
    assert_series_name_the_pod(metrics, ns.inode());
    let served = serve.stop().expect("stopping netdrop serve");
    assert_eq!(served.status.code(), Some(0), "{}", served.stderr);
    drop(sleeper);

    let lines = with_dport(out.drops_with_cause("socket_rcvbuf"), port);
    assert!(
        !lines.is_empty(),
        "no socket_rcvbuf drop; {}",
        out.summary()
    );
    for l in &lines {
        assert_eq!(l["owner"]["pid"], json!(pid), "{l}");
        assert_names_the_pod(&l["owner"], short);
        assert_names_the_pod(l, short);
        assert_names_the_pod(&l["netns_identity"], short);
    }
    let group = diagnosis_group(&out, port);
    assert_names_the_pod(group, short);

    // The recording replays them, escaped for a terminal.
    let replay = run_netdrop(&["replay", rec.to_str().unwrap()], WAIT).expect("replay");
    assert!(replay.status.success(), "replay: {}", replay.stderr);
    let shown = format!("pod {POD_NS}/{POD_SHOWN} (container {CONTAINER})");
    let drop_lines: Vec<&str> = replay
        .stdout
        .lines()
        .filter(|l| l.contains("socket_rcvbuf") && l.contains(&format!(":{port}")))
        .collect();
    assert!(!drop_lines.is_empty(), "{}", replay.stdout);
    assert!(
        drop_lines.iter().any(|l| l.contains(&shown)),
        "{shown} in\n{}",
        replay.stdout
    );
    assert!(
        !replay.stdout.contains('\x1b'),
        "a raw ESC reached the terminal:\n{}",
        replay.stdout
    );
}

/// `netdrop serve`'s socket_rcvbuf series of the pod's namespace carry its
/// pod, namespace and container, escaped; no raw ESC on the page.
fn assert_series_name_the_pod(metrics: std::net::SocketAddr, inode: u32) {
    use netdrop_tests::prom::{http_get, samples};
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, page) = http_get(metrics, "/metrics").expect("scraping");
        assert_eq!(status, 200);
        let ours: Vec<(String, f64)> = samples(&page, "netdrop_netns_drops_total")
            .into_iter()
            .filter(|(l, _)| l.contains(&format!("netns=\"{inode}\"")))
            .filter(|(l, _)| l.contains("cause=\"socket_rcvbuf\""))
            .collect();
        if let Some((labels, n)) = ours.first() {
            assert!(*n > 0.0, "{labels}");
            for want in [
                format!("pod_namespace=\"{POD_NS}\""),
                format!("container=\"{CONTAINER}\""),
            ] {
                assert!(labels.contains(&want), "{want} in {labels}");
            }
            assert!(labels.contains("pod=\"web"), "the pod's name in {labels}");
            assert!(!page.contains('\x1b'), "a raw ESC on the metrics page");
            eprintln!("serve: {labels} {n}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no socket_rcvbuf series for netns {inode}:\n{page}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The diagnosis group of the receiver's socket.
fn diagnosis_group(out: &NetdropOutput, port: u16) -> &Value {
    let cause = out
        .diagnosed("socket_rcvbuf")
        .unwrap_or_else(|| panic!("no socket_rcvbuf in the diagnosis: {}", out.diagnosis()));
    cause["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["port"] == json!(port)))
        .unwrap_or_else(|| panic!("no group of port {port}: {cause}"))
}
