//! Which container and pod a process belongs to: its runtime and container id
//! from `/proc/PID/cgroup` ([`cgroup`]), its names from what the kubelet and
//! podman leave on the node ([`names`]).
//!
//! Names are looked up in indexes read whole and kept; a container whose names
//! are not in them makes the indexes be read again, at most every
//! [`REFRESH_EVERY`] (a storm of drops must not become a storm of directory
//! listings). Everything is bounded ([`names::MAX_ENTRIES`], [`MAX_CACHED`]),
//! whatever the node runs. Every name here comes from other people: escape it
//! before a terminal ([`crate::text`]).

pub mod cgroup;
pub mod names;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    fs,
    path::PathBuf,
    sync::{LazyLock, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// The container runtime a cgroup path names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Runtime {
    Podman,
    Docker,
    Containerd,
    CriO,
    /// A Kubernetes container under the cgroupfs driver (any CRI runtime).
    Cri,
    /// A 64-hex cgroup segment no runtime prefix names.
    Unknown,
}

impl Runtime {
    pub fn as_str(&self) -> &'static str {
        match self {
            Runtime::Podman => "podman",
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Cri => "cri",
            Runtime::Unknown => "unknown",
        }
    }
}

// As a string in recordings: a runtime a newer netdrop knows reads as Unknown.
impl From<String> for Runtime {
    fn from(s: String) -> Runtime {
        match s.as_str() {
            "podman" => Runtime::Podman,
            "docker" => Runtime::Docker,
            "containerd" => Runtime::Containerd,
            "cri-o" => Runtime::CriO,
            "cri" => Runtime::Cri,
            _ => Runtime::Unknown,
        }
    }
}

impl From<Runtime> for String {
    fn from(r: Runtime) -> String {
        r.as_str().to_string()
    }
}

/// A process's container, and its pod under Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub runtime: Runtime,
    /// 64 hex digits.
    pub container_id: String,
    /// podman's `--name`, or the Kubernetes container's name.
    pub container_name: Option<String>,
    pub pod_name: Option<String>,
    pub pod_namespace: Option<String>,
    /// With dashes, as the API server has it.
    pub pod_uid: Option<String>,
}

impl Identity {
    /// The 12-digit id `docker ps` / `podman ps` / `crictl ps` show.
    pub fn short_id(&self) -> &str {
        &self.container_id[..12.min(self.container_id.len())]
    }

    /// `pod default/web-1 (container app)`, `pod default/web-1`,
    /// `container t1` or `container 0123456789ab`, escaped for a terminal.
    pub fn human(&self) -> String {
        self.labels().human().unwrap_or_default()
    }

    /// The fields JSON output carries.
    pub fn labels(&self) -> Labels {
        Labels {
            pod: self.pod_name.clone(),
            pod_namespace: self.pod_namespace.clone(),
            container: Some(self.short_id().to_string()),
            container_name: self.container_name.clone(),
        }
    }

    /// Whether the names that matter were found: a pod's name (its sandbox
    /// never has a container name), else the container's.
    fn complete(&self) -> bool {
        match self.pod_uid {
            Some(_) => self.pod_name.is_some(),
            None => self.container_name.is_some(),
        }
    }
}

/// An identity as JSON fields (`pod`, `pod_namespace`, `container`: the
/// 12-digit id, `container_name`); all null without one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Labels {
    pub pod: Option<String>,
    pub pod_namespace: Option<String>,
    pub container: Option<String>,
    pub container_name: Option<String>,
}

impl Labels {
    pub fn of(identity: Option<&Identity>) -> Labels {
        identity.map(Identity::labels).unwrap_or_default()
    }

    /// As [`Identity::human`]; `None` without a container.
    pub fn human(&self) -> Option<String> {
        self.text().map(|t| crate::text::safe(&t).into_owned())
    }

    /// [`Labels::human`] not escaped: only for a line escaped whole.
    pub fn text(&self) -> Option<String> {
        let ns = self.pod_namespace.as_deref().unwrap_or("?");
        Some(match (&self.pod, &self.container_name) {
            (Some(pod), Some(c)) => format!("pod {ns}/{pod} (container {c})"),
            (Some(pod), None) => format!("pod {ns}/{pod}"),
            (None, Some(c)) => format!("container {c}"),
            (None, None) => format!("container {}", self.container.as_deref()?),
        })
    }
}

/// Where names are read. Tests point these at fixtures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// Holds the kubelet's `pods/` and `containers/` (`/var/log`).
    pub kubelet_log_dir: PathBuf,
    /// containers/storage roots (podman, CRI-O).
    pub storage: Vec<PathBuf>,
}

/// Overrides [`Roots::kubelet_log_dir`] (a node whose kubelet logs elsewhere; tests).
pub const KUBELET_LOG_DIR_ENV: &str = "NETDROP_KUBELET_LOG_DIR";

impl Roots {
    /// The node's: `/var/log` (or `$NETDROP_KUBELET_LOG_DIR`),
    /// `/var/lib/containers/storage`, `/run/containers/storage`.
    pub fn system() -> Roots {
        Roots {
            kubelet_log_dir: std::env::var_os(KUBELET_LOG_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from("/var/log"), PathBuf::from),
            storage: vec![
                PathBuf::from("/var/lib/containers/storage"),
                PathBuf::from("/run/containers/storage"),
            ],
        }
    }
}

/// Names are read again after a miss at most this often.
pub const REFRESH_EVERY: Duration = Duration::from_millis(500);
/// Identities kept; past it the cache starts over.
pub const MAX_CACHED: usize = 16384;

/// cgroup text → identity, with the name indexes and a cache.
#[derive(Debug)]
pub struct Resolver {
    roots: Roots,
    kubelet: names::KubeletIndex,
    storage: HashMap<String, String>,
    loaded: Option<Instant>,
    cache: HashMap<String, Identity>,
}

impl Resolver {
    pub fn new(roots: Roots) -> Resolver {
        Resolver {
            roots,
            kubelet: names::KubeletIndex::default(),
            storage: HashMap::new(),
            loaded: None,
            cache: HashMap::new(),
        }
    }

    /// The identity of process `pid` (`None`: not in a container, or gone).
    pub fn of_pid(&mut self, pid: u32) -> Option<Identity> {
        self.of_cgroup(&fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?)
    }

    /// The identity a `/proc/PID/cgroup` text names.
    pub fn of_cgroup(&mut self, text: &str) -> Option<Identity> {
        let r = cgroup::parse(text)?;
        if let Some(known) = self.cache.get(&r.container_id)
            && (known.complete() || !self.reload_due())
        {
            return Some(known.clone());
        }
        let mut id = self.name(&r);
        if !id.complete() && self.reload_due() {
            self.reload();
            id = self.name(&r);
        }
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        self.cache.insert(r.container_id, id.clone());
        Some(id)
    }

    fn reload_due(&self) -> bool {
        self.loaded.is_none_or(|t| t.elapsed() >= REFRESH_EVERY)
    }

    fn reload(&mut self) {
        self.kubelet = names::KubeletIndex::load(&self.roots.kubelet_log_dir);
        self.storage = names::load_storage(&self.roots.storage);
        self.loaded = Some(Instant::now());
    }

    fn name(&self, r: &cgroup::CgroupRef) -> Identity {
        let pod = r
            .pod_uid
            .as_ref()
            .and_then(|uid| self.kubelet.pods.get(uid));
        let container_name = self
            .kubelet
            .containers
            .get(&r.container_id)
            .or_else(|| self.storage.get(&r.container_id))
            .cloned();
        Identity {
            runtime: r.runtime.clone(),
            container_id: r.container_id.clone(),
            container_name,
            pod_name: pod.map(|p| p.1.clone()),
            pod_namespace: pod.map(|p| p.0.clone()),
            pod_uid: r.pod_uid.clone(),
        }
    }
}

/// The node's resolver, shared by the socket owners and the namespaces.
static NODE: LazyLock<Mutex<Resolver>> =
    LazyLock::new(|| Mutex::new(Resolver::new(Roots::system())));

/// The identity of process `pid` on this node.
pub fn of_pid(pid: u32) -> Option<Identity> {
    NODE.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .of_pid(pid)
}
