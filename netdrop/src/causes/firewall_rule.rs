//! A netfilter rule dropped the packet (nftables or iptables: a `drop`
//! verdict, a chain's drop policy): NETFILTER_DROP, freed in nft_do_chain
//! (nftables, iptables-nft) or nf_hook_slow (iptables-legacy). Which rule:
//! the drop rules whose counters moved with the drops, in its namespace.

use super::{Cause, CauseSpec, Counter, Finding, GroupBy, GroupFacts, KnobSpec, Reason, Source};

pub static SPEC: CauseSpec = CauseSpec {
    cause: Cause::FirewallRule,
    name: "firewall_rule",
    meaning: "a firewall rule (nftables / iptables) dropped it",
    reasons: &[Reason {
        name: "NETFILTER_DROP",
        seen: "6.18 (this CI host)",
    }],
    own_slots: &[],
    freed_in: &[],
    location_slot: None,
    counters: &[Counter {
        name: "nft drop rules' counters",
        source: Source::NftDropRules,
    }],
    knobs: &[KnobSpec::setting(
        "the namespace's nftables / iptables ruleset",
    )],
    group_by: GroupBy::Netns,
    advise: Some(advise),
};

/// The group's details are the drop rules whose counters moved (`nft:`
/// counters of its namespace, diagnose/report.rs), as (rule, `+delta`).
fn advise(g: &GroupFacts<'_>) -> Finding {
    let rules: Vec<String> = g
        .details
        .iter()
        .map(|(rule, moved)| format!("{rule} ({moved})"))
        .collect();
    let unnamed = "a rule without `counter`, a chain's drop policy or an iptables-legacy rule: netdrop cannot name that rule";
    let counted = g.counter.unwrap_or(0);
    let which = if rules.is_empty() {
        format!("no drop rule with a counter moved ({unnamed})")
    } else if counted < g.drops {
        format!(
            "the drop rules whose counters moved: {}; {} drops moved no rule's counter ({unnamed})",
            rules.join(", "),
            g.drops - counted
        )
    } else {
        format!("the drop rules whose counters moved: {}", rules.join(", "))
    };
    Finding {
        subject: format!("firewall of {}", g.netns),
        knobs: Vec::new(),
        action: format!(
            "{} packets were dropped by a netfilter rule in {}; {which}. Check the rule (nft -a list ruleset, iptables -L -v -n) and the network policy that made it",
            g.drops, g.netns
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::causes::GroupKey;

    fn facts<'a>(
        details: &'a [(String, String)],
        values: &'a BTreeMap<String, i64>,
        drops: u64,
        counter: Option<u64>,
    ) -> GroupFacts<'a> {
        GroupFacts {
            key: &GroupKey::Netns,
            drops,
            netns: "ndt-x (4026532000)".into(),
            values,
            details,
            counter,
        }
    }

    #[test]
    fn names_the_rules_that_moved_and_what_no_rule_counted() {
        let values = BTreeMap::new();
        let details = [
            (
                "inet fw input handle 2 comment \"block-7000\"".to_string(),
                "+10".to_string(),
            ),
            ("ip filter INPUT handle 2".to_string(), "+5".to_string()),
        ];
        let f = advise(&facts(&details, &values, 15, Some(15)));
        assert!(
            f.action.contains(
                "the drop rules whose counters moved: inet fw input handle 2 comment \"block-7000\" (+10), ip filter INPUT handle 2 (+5)"
            ),
            "{}",
            f.action
        );
        assert!(!f.action.contains("cannot name"), "{}", f.action);
        let f = advise(&facts(&details, &values, 25, Some(15)));
        assert!(
            f.action.contains("10 drops moved no rule's counter")
                && f.action.contains("cannot name"),
            "{}",
            f.action
        );
        let f = advise(&facts(&[], &values, 3, Some(0)));
        assert!(
            f.action.contains("no drop rule with a counter moved")
                && f.action.contains("cannot name"),
            "{}",
            f.action
        );
    }
}
