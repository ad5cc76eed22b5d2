//! deploy/kubernetes/daemonset.yaml as tests/deploy.rs checks and runs it:
//! the netdrop container's arguments, capabilities, ports, probes and mounts.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::yaml;

/// Where a mount comes from.
#[derive(Debug, PartialEq)]
pub enum Source {
    /// A `hostPath` volume: the host's path and its `type`.
    Host { path: String, kind: String },
    /// An `emptyDir` in memory, with its `sizeLimit` (`16Mi`).
    Memory { size: String },
}

/// One `volumeMounts` entry with its volume.
#[derive(Debug)]
pub struct Mount {
    pub name: String,
    pub target: String,
    pub source: Source,
    pub read_only: bool,
    /// `mountPropagation: HostToContainer`: mounts made on the host later
    /// appear inside (podman's `rslave`).
    pub host_to_container: bool,
}

/// An HTTP probe: its path and the port number it reaches.
#[derive(Debug, PartialEq)]
pub struct Probe {
    pub path: String,
    pub port: u16,
}

/// The manifest's documents, the DaemonSet and its netdrop container.
pub struct DaemonSet {
    docs: Vec<Value>,
    ds: Value,
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("daemonset.yaml: {what} is not a string: {v}"))
}

fn list<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("daemonset.yaml: {what} is not a list: {v}"))
}

impl DaemonSet {
    pub fn parse(yaml_text: &str) -> DaemonSet {
        let docs = yaml::documents(yaml_text);
        let ds = docs
            .iter()
            .find(|d| d["kind"] == "DaemonSet")
            .expect("daemonset.yaml has a DaemonSet")
            .clone();
        DaemonSet { docs, ds }
    }

    /// The first document of `kind`.
    pub fn doc(&self, kind: &str) -> &Value {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("daemonset.yaml has no {kind}"))
    }

    /// The pod template's `spec`.
    pub fn pod(&self) -> &Value {
        &self.ds["spec"]["template"]["spec"]
    }

    /// The pod template's annotations.
    pub fn annotation(&self, key: &str) -> &str {
        str_of(
            &self.ds["spec"]["template"]["metadata"]["annotations"][key],
            key,
        )
    }

    /// The container named netdrop.
    pub fn container(&self) -> &Value {
        list(&self.pod()["containers"], "containers")
            .iter()
            .find(|c| c["name"] == "netdrop")
            .expect("a container named netdrop")
    }

    pub fn args(&self) -> Vec<String> {
        list(&self.container()["args"], "args")
            .iter()
            .map(|a| str_of(a, "an argument").to_string())
            .collect()
    }

    /// The value of `--listen` in the arguments.
    pub fn listen(&self) -> String {
        let args = self.args();
        let at = args
            .iter()
            .position(|a| a == "--listen")
            .expect("--listen in the container's args");
        args.get(at + 1).expect("a value after --listen").clone()
    }

    /// `securityContext.capabilities.add`, without `CAP_`.
    pub fn caps(&self) -> BTreeSet<String> {
        let add = &self.container()["securityContext"]["capabilities"]["add"];
        list(add, "capabilities.add")
            .iter()
            .map(|c| str_of(c, "a capability").to_string())
            .collect()
    }

    /// `securityContext.KEY` as written (`"true"`, `"0"`), or "" when absent.
    pub fn security(&self, key: &str) -> String {
        let v = &self.container()["securityContext"][key];
        match v {
            Value::Null => String::new(),
            Value::Object(_) => str_of(&v["type"], key).to_string(),
            v => str_of(v, key).to_string(),
        }
    }

    /// A port by number, or by the name of one of the container's ports.
    pub fn port(&self, port: &Value) -> u16 {
        let p = str_of(port, "a port");
        if let Ok(n) = p.parse() {
            return n;
        }
        let ports = list(&self.container()["ports"], "ports");
        let named = ports
            .iter()
            .find(|q| q["name"] == p)
            .unwrap_or_else(|| panic!("no container port named {p}"));
        str_of(&named["containerPort"], "containerPort")
            .parse()
            .expect("containerPort is a number")
    }

    /// `readinessProbe` or `livenessProbe` (an `httpGet` probe).
    pub fn probe(&self, which: &str) -> Probe {
        let get = &self.container()[which]["httpGet"];
        assert!(get.is_object(), "{which} is not an httpGet probe");
        Probe {
            path: str_of(&get["path"], "httpGet.path").to_string(),
            port: self.port(&get["port"]),
        }
    }

    /// The container's mounts with their volumes, in the manifest's order.
    pub fn mounts(&self) -> Vec<Mount> {
        let volumes = list(&self.pod()["volumes"], "volumes");
        list(&self.container()["volumeMounts"], "volumeMounts")
            .iter()
            .map(|m| {
                let name = str_of(&m["name"], "volumeMounts.name").to_string();
                let v = volumes
                    .iter()
                    .find(|v| v["name"] == name.as_str())
                    .unwrap_or_else(|| panic!("no volume {name}"));
                let source = if v["hostPath"].is_object() {
                    Source::Host {
                        path: str_of(&v["hostPath"]["path"], "hostPath.path").to_string(),
                        kind: str_of(&v["hostPath"]["type"], "hostPath.type").to_string(),
                    }
                } else if v["emptyDir"]["medium"] == "Memory" {
                    Source::Memory {
                        size: str_of(&v["emptyDir"]["sizeLimit"], "sizeLimit").to_string(),
                    }
                } else {
                    panic!("volume {name}: neither hostPath nor an emptyDir in memory: {v}")
                };
                Mount {
                    target: str_of(&m["mountPath"], "mountPath").to_string(),
                    read_only: m["readOnly"] == "true",
                    host_to_container: m["mountPropagation"] == "HostToContainer",
                    source,
                    name,
                }
            })
            .collect()
    }
}
