//! Which container a process is in, from its `/proc/PID/cgroup` text: pure
//! parsing, no file access.
//!
//! Each line is `hierarchy-ID:controllers:path` (cgroup v1 lines, the v2 line
//! `0::path`, or both on a hybrid machine). A path names its container by a
//! segment the runtime chose:
//!
//! | runtime, cgroup driver | path |
//! |---|---|
//! | podman, cgroupfs | `/libpod_parent/libpod-<id>` |
//! | podman, systemd | `/machine.slice/libpod-<id>.scope` |
//! | docker, systemd / cgroupfs | `/system.slice/docker-<id>.scope`, `/docker/<id>` |
//! | containerd (CRI), systemd | `…/kubepods-<qos>-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope` |
//! | CRI-O, systemd | `…/kubepods-pod<uid>.slice/crio-<id>.scope` |
//! | any CRI, cgroupfs | `/kubepods/<qos>/pod<uid>/<id>` |
//!
//! `<id>` is 64 hex digits. The runtimes' own monitors (`libpod-conmon-<id>`,
//! `crio-conmon-<id>`) are not containers.

use super::Runtime;

/// What a cgroup path says: the container and, under Kubernetes, its pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupRef {
    pub runtime: Runtime,
    /// 64 hex digits.
    pub container_id: String,
    /// The pod's uid with dashes (`6f4b5c1e-0d1a-…`), as the kubelet writes it.
    pub pod_uid: Option<String>,
}

/// The container of a `/proc/PID/cgroup` text: the first line whose path names
/// a pod's container, else the first that names a container.
pub fn parse(cgroup: &str) -> Option<CgroupRef> {
    let mut first = None;
    for line in cgroup.lines() {
        // The path may itself hold ':'.
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(_), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let Some(r) = parse_path(path) {
            if r.pod_uid.is_some() {
                return Some(r);
            }
            first.get_or_insert(r);
        }
    }
    first
}

/// The container of one cgroup path (its innermost container segment).
pub fn parse_path(path: &str) -> Option<CgroupRef> {
    let mut pod_uid = None;
    let mut found = None;
    let mut parent = "";
    for seg in path.split('/') {
        if let Some(uid) = pod_uid_of(seg) {
            pod_uid = Some(uid);
        } else if let Some(c) = container_of(seg, parent) {
            found = Some(c);
        }
        parent = seg;
    }
    let (mut runtime, id) = found?;
    if runtime == Runtime::Unknown && pod_uid.is_some() {
        runtime = Runtime::Cri;
    }
    Some(CgroupRef {
        runtime,
        container_id: id.to_string(),
        pod_uid,
    })
}

/// A segment naming a container, and the runtime it says.
fn container_of<'a>(seg: &'a str, parent: &str) -> Option<(Runtime, &'a str)> {
    let core = seg.strip_suffix(".scope").unwrap_or(seg);
    for (prefix, runtime) in [
        ("libpod-", Runtime::Podman),
        ("docker-", Runtime::Docker),
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::CriO),
    ] {
        if let Some(id) = core.strip_prefix(prefix) {
            // `libpod-conmon-<id>`, `crio-conmon-<id>`: the monitor, not the container.
            return is_container_id(id).then_some((runtime, id));
        }
    }
    is_container_id(core).then(|| {
        let runtime = match parent {
            "docker" => Runtime::Docker,
            "libpod_parent" => Runtime::Podman,
            _ => Runtime::Unknown,
        };
        (runtime, core)
    })
}

/// `kubepods-burstable-pod<uid_with_underscores>.slice` (systemd driver) or
/// `pod<uid>` (cgroupfs driver) → the uid with dashes.
fn pod_uid_of(seg: &str) -> Option<String> {
    let uid = match seg.strip_suffix(".slice") {
        Some(slice) if slice.starts_with("kubepods") => slice.rsplit_once("-pod")?.1,
        Some(_) => return None,
        None => seg.strip_prefix("pod")?,
    };
    let uid = uid.replace('_', "-");
    is_pod_uid(&uid).then_some(uid)
}

/// 64 hex digits.
pub fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A pod uid: a UUID, or a static pod's 32-hex config hash.
pub fn is_pod_uid(s: &str) -> bool {
    (32..=36).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_hexdigit())
}
