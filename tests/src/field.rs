//! Helpers for the "field truth" tests (tests/field.rs, churn.rs, knobs.rs,
//! syncookies.rs): which namespace made a
//! drop line, the diagnosis' groups of a namespace, and the knob `changes` a
//! group records.
//!
//! The contract these read (netdrop `watch -o json`):
//! - drop lines: `netns` (inode), `netns_cookie` (the kernel's never-reused
//!   namespace cookie), `netns_name` (`ip netns` name or null);
//! - summary: `causes` includes drops known only from kernel counters, and
//!   `kernel_only` {cause: n} says how many;
//! - diagnosis groups: `netns`, `netns_cookie`, `netns_name`, the values in
//!   force when the group's drops happened, `gone` (its namespace no longer
//!   existed at the end) and `changes` [{knob, from, to, at, drops_before,
//!   drops_after}]; `kernel_counters` rows carry `incomplete`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde_json::{Value, json};

use crate::netdrop::{NetdropOutput, assert_drop_line_shape};
use crate::netns::Netns;

/// One `--snapshot-interval` (1 s) and a margin: long enough for netdrop to
/// take a snapshot of what is in force now.
pub const SNAPSHOT_WAIT: Duration = Duration::from_millis(1500);
/// How long a changed knob is left alone before the next traffic (two and a
/// half snapshot intervals).
pub const CHANGE_WAIT: Duration = Duration::from_millis(2500);

/// `got` is within `pct` percent of `want` (|got - want| * 100 <= pct * want).
pub fn within_percent(got: u64, want: u64, pct: u64) -> bool {
    got.abs_diff(want) * 100 <= pct * want
}

/// A namespace as the test knew it while it existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsId {
    pub name: String,
    pub inode: u32,
    /// The kernel's cookie, where it has one (5.14+).
    pub cookie: Option<u64>,
}

impl NsId {
    pub fn of(ns: &Netns) -> Result<NsId> {
        Ok(NsId {
            name: ns.name().to_owned(),
            inode: ns.inode(),
            cookie: ns.cookie()?,
        })
    }

    /// Asserts that a drop line or group names this namespace: `netns_name`,
    /// `netns` and (where the test could read it) `netns_cookie`.
    pub fn assert_named_by(&self, v: &Value, what: &str) {
        assert_eq!(
            v["netns_name"],
            json!(self.name),
            "{what}: netns_name must be {} (inode {}): {v}",
            self.name,
            self.inode
        );
        assert_eq!(
            v["netns"],
            json!(self.inode),
            "{what}: netns inode of {}: {v}",
            self.name
        );
        assert!(
            v["netns_cookie"].is_u64(),
            "{what}: netns_cookie missing: {v}"
        );
        if let Some(c) = self.cookie {
            assert_eq!(
                v["netns_cookie"],
                json!(c),
                "{what}: netns_cookie of {}: {v}",
                self.name
            );
        }
    }
}

/// One incident's traffic: the namespaces it made, the devices each held and
/// the address prefixes it used, to tell its drop lines from every other's.
#[derive(Debug, Clone)]
pub struct Incident {
    pub label: &'static str,
    pub namespaces: Vec<NsId>,
    /// (device, index into `namespaces`).
    pub devs: Vec<(String, usize)>,
    /// Address prefixes such as "198.18.2." (saddr or daddr).
    pub addr_prefixes: Vec<String>,
}

impl Incident {
    pub fn new(label: &'static str) -> Incident {
        Incident {
            label,
            namespaces: Vec::new(),
            devs: Vec::new(),
            addr_prefixes: Vec::new(),
        }
    }

    /// Adds a namespace and the devices in it.
    pub fn ns(mut self, ns: &Netns, devs: &[&str]) -> Result<Incident> {
        let i = self.namespaces.len();
        self.namespaces.push(NsId::of(ns)?);
        self.devs.extend(devs.iter().map(|d| ((*d).to_owned(), i)));
        Ok(self)
    }

    pub fn addrs(mut self, prefixes: &[&str]) -> Incident {
        self.addr_prefixes
            .extend(prefixes.iter().map(|p| (*p).to_owned()));
        self
    }

    pub fn names(&self) -> Vec<&str> {
        self.namespaces.iter().map(|n| n.name.as_str()).collect()
    }

    pub fn ns_named(&self, name: &str) -> Option<&NsId> {
        self.namespaces.iter().find(|n| n.name == name)
    }

    /// Whether the line is this incident's traffic, and, when its device tells,
    /// the namespace it must name.
    pub fn claims<'a>(&'a self, line: &Value) -> Option<Option<&'a NsId>> {
        if let Some(dev) = line["dev"].as_str()
            && let Some((_, i)) = self.devs.iter().find(|(d, _)| d == dev)
        {
            return Some(Some(&self.namespaces[*i]));
        }
        let addr_match = ["saddr", "daddr"].iter().any(|k| {
            line[*k]
                .as_str()
                .is_some_and(|a| self.addr_prefixes.iter().any(|p| a.starts_with(p.as_str())))
        });
        addr_match.then_some(None)
    }
}

/// Checks every drop line against the incidents: a line that is an incident's
/// traffic (by device, else by address) names that incident's namespace
/// (exactly the device's namespace when the device tells), never null, never
/// another incident's; a line naming an incident's namespace is that
/// incident's traffic, or at least no other incident's. Returns the lines per
/// incident (same order).
pub fn check_lines_name_their_incident<'a>(
    lines: &[&'a Value],
    incidents: &[Incident],
) -> Vec<Vec<&'a Value>> {
    let mut per = vec![Vec::new(); incidents.len()];
    let mut wrong = Vec::new();
    for line in lines {
        let claims: Vec<(usize, Option<&NsId>)> = incidents
            .iter()
            .enumerate()
            .filter_map(|(i, inc)| inc.claims(line).map(|ns| (i, ns)))
            .collect();
        let named = line["netns_name"].as_str();
        let named_by: Vec<usize> = incidents
            .iter()
            .enumerate()
            .filter(|(_, inc)| named.is_some_and(|n| inc.names().contains(&n)))
            .map(|(i, _)| i)
            .collect();
        match claims.as_slice() {
            [] => {
                if let Some(&i) = named_by.first() {
                    // Traffic the test cannot place (e.g. on lo, no address): it
                    // may name the namespace, but only where it was dropped.
                    eprintln!(
                        "note: unplaced line names {}'s namespace: {line}",
                        incidents[i].label
                    );
                }
            }
            [(i, exact)] => {
                let inc = &incidents[*i];
                per[*i].push(*line);
                match (exact, named) {
                    (_, None) => wrong.push(format!(
                        "{} line has netns_name null (want {:?}): {line}",
                        inc.label,
                        inc.names()
                    )),
                    (Some(ns), Some(n)) if n != ns.name => wrong.push(format!(
                        "{} line on {} must name {}, names {n}: {line}",
                        inc.label, line["dev"], ns.name
                    )),
                    (None, Some(n)) if !inc.names().contains(&n) => wrong.push(format!(
                        "{} line names {n}, not one of {:?}: {line}",
                        inc.label,
                        inc.names()
                    )),
                    _ => {}
                }
                // The namespace it must be: the device's, else the one of the
                // incident it names.
                if let Some(ns) = exact.or_else(|| named.and_then(|n| inc.ns_named(n))) {
                    if line["netns"] != json!(ns.inode) {
                        wrong.push(format!(
                            "{} line: netns {} but {} had inode {}: {line}",
                            inc.label, line["netns"], ns.name, ns.inode
                        ));
                    }
                    if let Some(c) = ns.cookie
                        && line["netns_cookie"] != json!(c)
                    {
                        wrong.push(format!(
                            "{} line: netns_cookie {} but {} had cookie {c}: {line}",
                            inc.label, line["netns_cookie"], ns.name
                        ));
                    }
                }
            }
            many => wrong.push(format!(
                "test bug: line claimed by several incidents {:?}: {line}",
                many.iter()
                    .map(|(i, _)| incidents[*i].label)
                    .collect::<Vec<_>>()
            )),
        }
        if let [(i, _)] = claims.as_slice() {
            for j in &named_by {
                if j != i {
                    wrong.push(format!(
                        "{} line names {}'s namespace: {line}",
                        incidents[*i].label, incidents[*j].label
                    ));
                }
            }
        }
    }
    for (inc, lines) in incidents.iter().zip(&per) {
        eprintln!(
            "incident {:<22} namespaces {:?}: {} drop lines",
            inc.label,
            inc.namespaces
                .iter()
                .map(|n| format!("{} inode {} cookie {:?}", n.name, n.inode, n.cookie))
                .collect::<Vec<_>>(),
            lines.len()
        );
    }
    assert!(
        wrong.is_empty(),
        "{} drop lines name the wrong namespace:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    per
}

/// The groups of a diagnosed cause.
pub fn groups(cause: &Value) -> &[Value] {
    cause["groups"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("no groups: {cause}"))
}

/// The group of `kind` whose `netns_name` is `name`; panics listing the groups.
pub fn group_named<'a>(cause: &'a Value, kind: &str, name: &str) -> &'a Value {
    groups(cause)
        .iter()
        .find(|g| g["kind"] == kind && g["netns_name"] == name)
        .unwrap_or_else(|| {
            panic!(
                "no {kind} group with netns_name {name} in {}: {:#}",
                cause["cause"], cause["groups"]
            )
        })
}

/// The group of `kind` (the first); panics listing the groups.
pub fn group_of_kind<'a>(cause: &'a Value, kind: &str) -> &'a Value {
    groups(cause)
        .iter()
        .find(|g| g["kind"] == kind)
        .unwrap_or_else(|| {
            panic!(
                "no {kind} group in {}: {:#}",
                cause["cause"], cause["groups"]
            )
        })
}

/// The group's `changes` of `knob`; panics when the group has no `changes` array.
pub fn changes_of<'a>(group: &'a Value, knob: &str) -> Vec<&'a Value> {
    group["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("group without a changes array: {group}"))
        .iter()
        .filter(|c| c["knob"] == knob)
        .collect()
}

/// Asserts a change of one of `knobs` from `from` to `to` with drops before it
/// and none after it; returns it. Prints the group's changes.
pub fn assert_change_stopped_drops<'a>(
    group: &'a Value,
    knobs: &[&str],
    from: u64,
    to: u64,
) -> &'a Value {
    eprintln!("changes of the group: {:#}", group["changes"]);
    let found = knobs
        .iter()
        .flat_map(|k| changes_of(group, k))
        .find(|c| c["from"] == json!(from) && c["to"] == json!(to))
        .unwrap_or_else(|| {
            panic!("no change of {knobs:?} from {from} to {to} in the group: {group:#}")
        });
    assert!(found["at"].is_number(), "change without `at`: {found}");
    let before = found["drops_before"]
        .as_u64()
        .unwrap_or_else(|| panic!("drops_before: {found}"));
    assert!(before > 0, "the drops happened before the change: {found}");
    assert_eq!(
        found["drops_after"],
        json!(0),
        "no drop after the change: {found}"
    );
    found
}

/// The advice entries of a diagnosed cause.
pub fn advice(cause: &Value) -> &[Value] {
    cause["advice"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("no advice array: {cause}"))
}

/// Every drop gets its detail event (no per-second limit): drop lines can be
/// counted against the kernel.
pub const EVENTS_UNLIMITED: &[&str] = &["--events-per-sec", "0"];
/// How far netdrop's accept_queue_full total may be from ListenOverflows.
pub const ACCEPT_TOLERANCE_PCT: u64 = 10;

/// Unix seconds now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// The contract's drop-line fields, new ones included, on every drop line.
pub fn assert_identity_fields(out: &NetdropOutput) {
    for l in out.drops() {
        assert_drop_line_shape(l);
        assert!(l["netns_cookie"].is_u64(), "netns_cookie: {l}");
        assert!(
            l["netns_name"].is_string() || l["netns_name"].is_null(),
            "netns_name: {l}"
        );
    }
}

/// summary.kernel_only[accept] + seen by hooks == summary total == diagnosis drops.
pub fn assert_accept_split(out: &NetdropOutput) -> (u64, u64, u64) {
    let total = out.cause("accept_queue_full");
    let kernel_only = out.kernel_only("accept_queue_full");
    let (seen, counted_only) = match out.diagnosed("accept_queue_full") {
        Some(c) => (
            c["seen_by_hooks"].as_u64().expect("seen_by_hooks"),
            c["counted_by_kernel_only"]
                .as_u64()
                .expect("counted_by_kernel_only"),
        ),
        None => (0, 0),
    };
    eprintln!(
        "accept_queue_full: summary total {total} = kernel_only {kernel_only} + seen by hooks {seen} \
         (diagnosis counted_by_kernel_only {counted_only}); hook: {}",
        if out.stderr.contains("no tcp_conn_request hook") {
            "none (counter fusion)"
        } else {
            "tcp_conn_request"
        }
    );
    assert_eq!(
        kernel_only + seen,
        total,
        "summary.kernel_only.accept_queue_full + seen_by_hooks = summary.causes.accept_queue_full"
    );
    assert_eq!(
        counted_only, kernel_only,
        "diagnosis counted_by_kernel_only = summary.kernel_only.accept_queue_full"
    );
    (total, kernel_only, seen)
}

/// The kernel_counters row of `counter`, printed; its `incomplete` must be false.
pub fn complete_row<'a>(out: &'a NetdropOutput, counter: &str) -> &'a Value {
    let row = out.counter_row(counter).unwrap_or_else(|| {
        panic!(
            "no kernel_counters row {counter}: {:#}",
            out.diagnosis()["kernel_counters"]
        )
    });
    eprintln!("kernel_counters row: {row}");
    let incomplete = row["incomplete"]
        .as_bool()
        .unwrap_or_else(|| panic!("row without an `incomplete` bool: {row}"));
    assert!(
        !incomplete,
        "{counter}: the row says incomplete=true: netdrop lost the counters of a namespace \
         that was deleted before it stopped; the agent must read a namespace's counters when \
         its drops are seen, not only at the end: {row}"
    );
    row
}

/// `gone` of a group: whether its namespace no longer existed at the end.
pub fn assert_gone(g: &Value, want: bool) {
    assert_eq!(
        g["gone"],
        json!(want),
        "gone must be {want} (namespace {} at the end): {g}",
        if want { "deleted" } else { "still there" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent() {
        assert!(within_percent(90, 100, 10));
        assert!(within_percent(110, 100, 10));
        assert!(!within_percent(111, 100, 10));
        assert!(within_percent(16, 16, 10));
        assert!(!within_percent(15, 16, 5));
        assert!(within_percent(0, 0, 10));
    }

    fn incident() -> Incident {
        Incident {
            label: "rp_filter",
            namespaces: vec![
                NsId {
                    name: "ndt-1-0".into(),
                    inode: 10,
                    cookie: Some(100),
                },
                NsId {
                    name: "ndt-1-1".into(),
                    inode: 11,
                    cookie: None,
                },
            ],
            devs: vec![("rpa0".into(), 0), ("rpb0".into(), 1)],
            addr_prefixes: vec!["198.18.4.".into()],
        }
    }

    #[test]
    fn claims_by_device_then_address() {
        let inc = incident();
        let on_b = json!({"dev": "rpb0", "saddr": "198.19.9.1"});
        assert_eq!(inc.claims(&on_b), Some(Some(&inc.namespaces[1])));
        let on_lo = json!({"dev": "lo", "daddr": "198.18.4.2"});
        assert_eq!(inc.claims(&on_lo), Some(None));
        assert_eq!(inc.claims(&json!({"dev": "eth0"})), None);
    }

    #[test]
    fn lines_naming_their_namespace_pass() {
        let inc = incident();
        let good = json!({"dev": "rpb0", "netns": 11, "netns_cookie": 7, "netns_name": "ndt-1-1"});
        let per = check_lines_name_their_incident(&[&good], std::slice::from_ref(&inc));
        assert_eq!(per[0].len(), 1);
    }

    #[test]
    #[should_panic(expected = "name the wrong namespace")]
    fn a_line_naming_the_other_namespace_fails() {
        let inc = incident();
        let bad = json!({"dev": "rpb0", "netns": 11, "netns_cookie": 7, "netns_name": "ndt-1-0"});
        check_lines_name_their_incident(&[&bad], &[inc]);
    }

    #[test]
    #[should_panic(expected = "name the wrong namespace")]
    fn a_null_name_fails() {
        let inc = incident();
        let bad = json!({"dev": "rpa0", "netns": 10, "netns_cookie": 100, "netns_name": null});
        check_lines_name_their_incident(&[&bad], &[inc]);
    }
}
