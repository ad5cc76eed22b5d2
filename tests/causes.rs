//! The causes beyond the first four (the cause registry, netdrop/src/causes/),
//! each reproduced in a namespace of its own and checked against the kernel's
//! own counter: one file per cause in tests/causes/. Needs root; run one at a
//! time (xtask passes --test-threads=1; the tests take `lock`).

#[path = "causes/cpu_backlog.rs"]
mod cpu_backlog;
#[path = "causes/qdisc_drop.rs"]
mod qdisc_drop;
#[path = "causes/socket_rcvbuf.rs"]
mod socket_rcvbuf;

#[path = "causes/tcp_paws.rs"]
mod tcp_paws;

#[path = "causes/conntrack_full.rs"]
mod conntrack_full;

#[path = "causes/firewall_rule.rs"]
mod firewall_rule;

#[path = "causes/together.rs"]
mod together;
