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

fn advise(g: &GroupFacts<'_>) -> Finding {
    let rules: Vec<String> = g
        .details
        .iter()
        .map(|(rule, moved)| format!("{rule} (+{moved})"))
        .collect();
    let which = if rules.is_empty() {
        "no drop rule with a counter moved: a rule without `counter`, or a chain's drop policy"
            .to_string()
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
