//! `tcp_conn_request` — where a SYN to a listener is accepted or refused. A SYN
//! refused because the accept queue is full is consumed, not dropped: no
//! kfree_skb reason shows it (observed on 6.18), only TcpExtListenOverflows.
//! fentry (5.5+, needs BTF and ftrace) is preferred; kprobe is the fallback.
//! The agent's hook table picks the one the kernel allows.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use aya_log_ebpf::warn;
use netdrop_common::{RawListenEvent, filter, kind, rate, stat};

use crate::{
    diag::{first, site},
    kernel::{listener, sock_netns, sock_netns_id, sock_owner},
    maps::{EVENTS, FILTER_INODES, STATS, admit, bump, config},
};

/// `int tcp_conn_request(struct request_sock_ops *, const struct tcp_request_sock_ops *,
///                       struct sock *sk, struct sk_buff *skb)`: the listener is argument 2.
const ARG_SK: usize = 2;

#[fentry(function = "tcp_conn_request")]
pub fn netdrop_tcp_conn_request_fentry(ctx: FEntryContext) -> u32 {
    let sk: u64 = ctx.arg(ARG_SK);
    on_conn_request(sk);
    0
}

#[kprobe]
pub fn netdrop_tcp_conn_request_kprobe(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg::<u64>(ARG_SK) {
        on_conn_request(sk);
    }
    0
}

#[inline(always)]
fn on_conn_request(sk: u64) {
    let cfg = config();
    let Some(l) = listener(sk, &cfg.structs) else {
        return;
    };
    // sk_acceptq_is_full(): the kernel refuses the SYN when ack_backlog > max.
    if l.ack_backlog <= l.max_ack_backlog {
        return;
    }
    let f = &cfg.filter;
    if f.flags & filter::REASONS != 0 && f.flags & filter::ACCEPT_QUEUE == 0 {
        return;
    }
    if f.flags & filter::NETNS != 0 && sock_netns(sk, &cfg.structs) != f.netns {
        return;
    }
    if f.flags & filter::DEV != 0 {
        return;
    }
    let owner = sock_owner(sk, &cfg.structs);
    // SAFETY: a map lookup; the value is not kept.
    if f.flags & filter::PID != 0
        && (owner.ino == 0 || unsafe { FILTER_INODES.get(&owner.ino) }.is_none())
    {
        return;
    }
    bump(&STATS, stat::ACCEPT_SYN_DROP);
    if cfg.emit_events == 0 || !admit(cfg, rate::ACCEPT_SYN_DROP) {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<RawListenEvent>(0) else {
        bump(&STATS, stat::ACCEPT_SYN_DROP_LOST);
        if first(site::SYN_EVENT_LOST) {
            warn!(
                &(),
                "tcp_conn_request: ring buffer full: a refused-SYN event (port {}) was lost; lost events stay counted (logged once per CPU)",
                l.port
            );
        }
        return;
    };
    let netns = sock_netns_id(sk, &cfg.structs);
    let ev = entry.as_mut_ptr();
    // SAFETY: reserved space of the right size; all fields written before submit.
    unsafe {
        (*ev).kind = kind::LISTEN_SYN_DROP;
        (*ev).family = l.family;
        (*ev).port = l.port;
        (*ev).ts_ns = bpf_ktime_get_ns();
        (*ev).netns = netns.0;
        (*ev).netns_cookie = netns.1;
        (*ev).ack_backlog = l.ack_backlog;
        (*ev).max_ack_backlog = l.max_ack_backlog;
        (*ev).pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        (*ev).addr = l.addr;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*ev).owner_ino = owner.ino;
        (*ev).owner_uid = owner.uid;
        (*ev)._pad = 0;
    }
    entry.submit(0);
    bump(&STATS, stat::ACCEPT_SYN_DROP_SENT);
}
