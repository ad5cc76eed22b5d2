//! Drop reason names of the running kernel, from the BTF enum `skb_drop_reason`.
//! The numbers change between kernels (NEIGH_QUEUEFULL is 42 on 6.1, 53 on 6.12,
//! 59 on 6.18), so no table of them is kept in the code.

use std::collections::HashMap;

use super::btf::Btf;

const PREFIX: &str = "SKB_DROP_REASON_";

/// Reason number → name (without the `SKB_DROP_REASON_` prefix).
#[derive(Debug, Clone, Default)]
pub struct ReasonTable {
    names: HashMap<u32, String>,
}

impl ReasonTable {
    /// From the BTF of the running kernel; `None` if the kernel has no such enum
    /// (before 5.17).
    pub fn from_btf(btf: &Btf) -> Option<ReasonTable> {
        let values = btf.enum_values("skb_drop_reason")?;
        Some(ReasonTable::from_pairs(
            values.into_iter().map(|(n, v)| (n, v as u32)),
        ))
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, u32)>) -> ReasonTable {
        let names = pairs
            .into_iter()
            .map(|(name, value)| {
                let short = name.strip_prefix(PREFIX).unwrap_or(&name).to_string();
                (value, short)
            })
            .collect();
        ReasonTable { names }
    }

    /// The kernel's name for `reason`, or `UNKNOWN_<n>` for a value not in the enum
    /// (e.g. a subsystem reason with high bits).
    pub fn name(&self, reason: u32) -> String {
        self.names
            .get(&reason)
            .cloned()
            .unwrap_or_else(|| format!("UNKNOWN_{reason}"))
    }

    pub fn value(&self, name: &str) -> Option<u32> {
        self.names
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(v, _)| *v)
    }

    /// All (value, name) pairs, sorted by value.
    pub fn pairs(&self) -> Vec<(u32, String)> {
        let mut v: Vec<_> = self.names.iter().map(|(k, n)| (*k, n.clone())).collect();
        v.sort();
        v
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_prefix_and_unknowns_are_named() {
        let t = ReasonTable::from_pairs([
            ("SKB_NOT_DROPPED_YET".to_string(), 0),
            ("SKB_DROP_REASON_NEIGH_QUEUEFULL".to_string(), 59),
        ]);
        assert_eq!(t.name(59), "NEIGH_QUEUEFULL");
        assert_eq!(t.name(0), "SKB_NOT_DROPPED_YET");
        assert_eq!(t.name(0x10001), "UNKNOWN_65537");
        assert_eq!(t.value("NEIGH_QUEUEFULL"), Some(59));
    }

    #[test]
    fn running_kernel_has_the_four_reasons() {
        let path = std::path::Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            eprintln!("SKIP: running_kernel_has_the_four_reasons: no /sys/kernel/btf/vmlinux");
            return;
        }
        let btf = Btf::from_file(path).unwrap();
        let Some(t) = ReasonTable::from_btf(&btf) else {
            eprintln!(
                "SKIP: running_kernel_has_the_four_reasons: kernel has no enum skb_drop_reason"
            );
            return;
        };
        for name in [
            "NEIGH_CREATEFAIL",
            "NEIGH_QUEUEFULL",
            "IP_RPFILTER",
            "NOT_SPECIFIED",
        ] {
            assert!(t.value(name).is_some(), "{name} missing");
        }
    }
}
