//! Where names come from: the kubelet's log directories and podman's
//! containers/storage. Each index is read whole, bounded in entries, and
//! replaced at a reload (never grown).
//!
//! - `<log>/pods/<namespace>_<pod>_<uid>/`: the kubelet makes one per pod
//!   (pod uid → namespace, name);
//! - `<log>/containers/<pod>_<namespace>_<container>-<id>.log`: its symlink
//!   per container (container id → name);
//! - `<storage>/<driver>-containers/containers.json` (and
//!   `volatile-containers.json`): containers/storage's list, `[{"id", "names"}]`
//!   (podman 4.3 writes it under `/var/lib/containers/storage/overlay-containers/`;
//!   `/run/containers/storage` holds only per-container directories, read too
//!   for a store configured there).

use std::{
    collections::HashMap,
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::cgroup::{is_container_id, is_pod_uid};

/// Entries kept per index, whatever the node holds.
pub const MAX_ENTRIES: usize = 16384;
/// Larger storage files are not read (a few thousand containers are ~2 MiB).
const MAX_STORAGE_FILE: u64 = 64 << 20;
/// containers/storage's graph drivers.
const DRIVERS: [&str; 5] = ["overlay", "vfs", "btrfs", "zfs", "aufs"];

/// Pod uid → (namespace, name), and container id → container name.
#[derive(Debug, Default)]
pub struct KubeletIndex {
    pub pods: HashMap<String, (String, String)>,
    pub containers: HashMap<String, String>,
}

impl KubeletIndex {
    /// Reads `<log>/pods` and `<log>/containers` (missing: empty).
    pub fn load(log_dir: &Path) -> KubeletIndex {
        let mut index = KubeletIndex::default();
        for name in dir_names(&log_dir.join("pods")) {
            if let Some((ns, pod, uid)) = parse_pod_dir(&name) {
                index.pods.insert(uid.into(), (ns.into(), pod.into()));
            }
        }
        for name in dir_names(&log_dir.join("containers")) {
            if let Some((_, _, container, id)) = parse_container_log(&name) {
                index.containers.insert(id.into(), container.into());
            }
        }
        index
    }
}

/// The first [`MAX_ENTRIES`] names in `dir` (not UTF-8: skipped).
fn dir_names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .take(MAX_ENTRIES)
        .collect()
}

/// `<namespace>_<pod>_<uid>` → its parts. Namespaces and uids hold no `_`, so
/// the pod name is whatever lies between.
pub fn parse_pod_dir(name: &str) -> Option<(&str, &str, &str)> {
    let (ns, rest) = name.split_once('_')?;
    let (pod, uid) = rest.rsplit_once('_')?;
    (!ns.is_empty() && !pod.is_empty() && is_pod_uid(uid)).then_some((ns, pod, uid))
}

/// `<pod>_<namespace>_<container>-<id>.log` → (pod, namespace, container, id).
pub fn parse_container_log(name: &str) -> Option<(&str, &str, &str, &str)> {
    let stem = name.strip_suffix(".log")?;
    let (rest, id) = stem.rsplit_once('-')?;
    if !is_container_id(id) {
        return None;
    }
    let (pod, rest) = rest.split_once('_')?;
    let (ns, container) = rest.split_once('_')?;
    (!pod.is_empty() && !ns.is_empty() && !container.is_empty()).then_some((pod, ns, container, id))
}

/// Container id → its first name, from containers/storage under `roots`.
pub fn load_storage(roots: &[PathBuf]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for root in roots {
        for driver in DRIVERS {
            for file in ["containers.json", "volatile-containers.json"] {
                let path = root.join(format!("{driver}-containers")).join(file);
                for (id, name) in read_storage(&path) {
                    if out.len() >= MAX_ENTRIES {
                        return out;
                    }
                    out.entry(id).or_insert(name);
                }
            }
        }
    }
    out
}

#[derive(Deserialize)]
struct StorageEntry {
    id: String,
    #[serde(default)]
    names: Vec<String>,
}

/// One `containers.json`: (id, first name) pairs; unreadable or damaged: none.
fn read_storage(path: &Path) -> Vec<(String, String)> {
    let mut text = Vec::new();
    let Ok(file) = fs::File::open(path) else {
        return Vec::new();
    };
    if file.take(MAX_STORAGE_FILE).read_to_end(&mut text).is_err() {
        return Vec::new();
    }
    parse_storage(&text)
}

/// A `containers.json` text → (id, first name) pairs.
pub fn parse_storage(json: &[u8]) -> Vec<(String, String)> {
    let entries: Vec<StorageEntry> = serde_json::from_slice(json).unwrap_or_default();
    entries
        .into_iter()
        .filter(|e| is_container_id(&e.id))
        .filter_map(|e| Some((e.id, e.names.into_iter().next()?)))
        .take(MAX_ENTRIES)
        .collect()
}
