//! cgroup texts as each runtime and cgroup driver writes them (fixtures/:
//! podman's captured on this project's hybrid machine), and the name indexes
//! over a kubelet log directory and a containers/storage made here.

use std::{fs, path::PathBuf};

use super::{cgroup::parse, names::*, *};

const ID: &str = "3f1c0a8e5b7d9c2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a0b2c4d6e8f0a1b3c5d7e";
const UID: &str = "6f4b5c1e-0d1a-4a2b-9c3d-1e2f3a4b5c6d";
const PODMAN_ID: &str = "db26a3c78dda0a255d414e6c0eb53174c54d27e67e48c0c987192f61b34ef724";

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("fixtures/", $name, ".cgroup"))
    };
}

#[test]
fn every_runtime_and_driver() {
    let cases: [(&str, Runtime, &str, Option<&str>); 9] = [
        (
            fixture!("podman-cgroupfs-hybrid"),
            Runtime::Podman,
            PODMAN_ID,
            None,
        ),
        (fixture!("podman-systemd-v2"), Runtime::Podman, ID, None),
        (fixture!("docker-systemd-v2"), Runtime::Docker, ID, None),
        (fixture!("docker-cgroupfs-v1"), Runtime::Docker, ID, None),
        (
            fixture!("containerd-systemd-v2"),
            Runtime::Containerd,
            ID,
            Some(UID),
        ),
        (
            fixture!("containerd-systemd-hybrid"),
            Runtime::Containerd,
            ID,
            Some(UID),
        ),
        (fixture!("crio-systemd-v2"), Runtime::CriO, ID, Some(UID)),
        (
            fixture!("kubepods-cgroupfs-v1"),
            Runtime::Cri,
            ID,
            Some(UID),
        ),
        (
            "0::/kubepods/pod0123456789abcdef0123456789abcdef/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
            Runtime::Cri,
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            Some("0123456789abcdef0123456789abcdef"),
        ),
    ];
    for (text, runtime, id, uid) in cases {
        let r = parse(text).unwrap_or_else(|| panic!("no container in {text}"));
        assert_eq!(r.runtime, runtime, "{text}");
        assert_eq!(r.container_id, id, "{text}");
        assert_eq!(r.pod_uid.as_deref(), uid, "{text}");
    }
}

#[test]
fn monitors_and_host_processes_are_no_container() {
    for text in [
        fixture!("podman-conmon-v2"),
        fixture!("crio-conmon-v2"),
        fixture!("host-v2"),
        fixture!("host-hybrid"),
        "",
        "garbage\n0:\n",
        "0::/libpod_parent/conmon\n",
        "0::/kubepods.slice/kubepods-podnot-a-uid.slice/cri-containerd-abc.scope\n",
    ] {
        assert_eq!(parse(text), None, "{text:?}");
    }
}

#[test]
fn kubelet_and_storage_names_parse() {
    assert_eq!(
        parse_pod_dir(&format!("default_web-1_{UID}")),
        Some(("default", "web-1", UID))
    );
    assert_eq!(parse_pod_dir("default_web-1"), None);
    assert_eq!(
        parse_container_log(&format!("web-1_default_app-{ID}.log")),
        Some(("web-1", "default", "app", ID))
    );
    assert_eq!(parse_container_log("web-1_default_app-123.log"), None);
    let json = format!(
        r#"[{{"id":"{PODMAN_ID}","names":["probe-t1"],"image":"317d","layer":"ecff","metadata":"{{}}","flags":{{}}}},{{"id":"short","names":["x"]}}]"#
    );
    assert_eq!(
        parse_storage(json.as_bytes()),
        vec![(PODMAN_ID.to_string(), "probe-t1".to_string())]
    );
    assert!(parse_storage(b"not json").is_empty());
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("netdrop-unit-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn names_from_the_kubelet_and_podman() {
    let tmp = TempDir::new("container-names");
    let log = tmp.0.join("log");
    let pod_dir = log.join("pods").join(format!("prod_web-1_{UID}"));
    fs::create_dir_all(pod_dir.join("app")).unwrap();
    fs::write(pod_dir.join("app/0.log"), "").unwrap();
    fs::create_dir_all(log.join("containers")).unwrap();
    std::os::unix::fs::symlink(
        pod_dir.join("app/0.log"),
        log.join("containers")
            .join(format!("web-1_prod_app-{ID}.log")),
    )
    .unwrap();
    let store = tmp.0.join("storage");
    fs::create_dir_all(store.join("overlay-containers")).unwrap();
    fs::write(
        store.join("overlay-containers/containers.json"),
        format!(r#"[{{"id":"{PODMAN_ID}","names":["t1"]}}]"#),
    )
    .unwrap();
    let mut r = Resolver::new(Roots {
        kubelet_log_dir: log.clone(),
        storage: vec![store],
    });

    let pod = r.of_cgroup(fixture!("containerd-systemd-hybrid")).unwrap();
    assert_eq!(pod.pod_name.as_deref(), Some("web-1"));
    assert_eq!(pod.pod_namespace.as_deref(), Some("prod"));
    assert_eq!(pod.pod_uid.as_deref(), Some(UID));
    assert_eq!(pod.container_name.as_deref(), Some("app"));
    assert_eq!(pod.human(), "pod prod/web-1 (container app)");
    let labels = pod.labels();
    assert_eq!(labels.container.as_deref(), Some(&ID[..12]));

    let t1 = r.of_cgroup(fixture!("podman-cgroupfs-hybrid")).unwrap();
    assert_eq!(t1.container_name.as_deref(), Some("t1"));
    assert_eq!(t1.human(), "container t1");
    assert!(r.of_cgroup(fixture!("host-hybrid")).is_none());

    // A pod the kubelet has not written yet: found once its directory is
    // there (after the refresh interval), not before.
    let other = "0::/kubepods/besteffort/pod11111111-2222-3333-4444-555555555555/".to_string()
        + &"a".repeat(64);
    let unnamed = r.of_cgroup(&other).unwrap();
    assert_eq!(unnamed.pod_name, None);
    assert_eq!(unnamed.human(), format!("container {}", "a".repeat(12)));
    fs::create_dir_all(
        log.join("pods")
            .join("kube-system_evil\x1b[2J_11111111-2222-3333-4444-555555555555"),
    )
    .unwrap();
    std::thread::sleep(REFRESH_EVERY);
    let named = r.of_cgroup(&other).unwrap();
    assert_eq!(named.pod_name.as_deref(), Some("evil\x1b[2J"));
    assert_eq!(named.human(), "pod kube-system/evil\\x1b[2J");
}

#[test]
fn memory_stays_bounded() {
    let mut r = Resolver::new(Roots {
        kubelet_log_dir: PathBuf::from("/nonexistent"),
        storage: Vec::new(),
    });
    for i in 0..(MAX_CACHED + 10) {
        let text = format!("0::/docker/{i:064x}\n");
        assert!(r.of_cgroup(&text).is_some());
    }
    assert!(r.cache.len() <= MAX_CACHED);
}
