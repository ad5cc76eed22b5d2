//! `sock:inet_sock_set_state` (4.16+). A TCP socket moves to SYN_SENT (connect)
//! or LISTEN (listen) in its owner's context: that is when the owner is known
//! for sure. The inode → tgid goes into SOCK_OWNERS (so a drop names its owner
//! even if the socket is gone before /proc is read), and under `--pid` the
//! watched process's socket joins FILTER_INODES at once, from its first SYN.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use aya_log_ebpf::warn;
use netdrop_common::filter;

use crate::{
    diag::{first, site},
    kernel::{sock_owner, tp_field},
    maps::{FILTER_INODES, SOCK_OWNERS, config},
};

/// include/net/tcp_states.h (stable ABI).
const TCP_SYN_SENT: i32 = 2;
const TCP_LISTEN: i32 = 10;

#[tracepoint]
pub fn netdrop_inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let cfg = config();
    let f = &cfg.filter;
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let tp = &cfg.sock_set_state;
    let Some(state) = tp_field::<i32>(&ctx, tp.newstate) else {
        return 0;
    };
    if state != TCP_SYN_SENT && state != TCP_LISTEN {
        return 0;
    }
    let Some(sk) = tp_field::<u64>(&ctx, tp.skaddr) else {
        return 0;
    };
    let o = sock_owner(sk, &cfg.structs);
    if o.ino == 0 {
        return 0;
    }
    if let Err(e) = SOCK_OWNERS.insert(&o.ino, &tgid, 0)
        && first(site::OWNER_INSERT_FAILED)
    {
        warn!(
            &ctx,
            "inet_sock_set_state: SOCK_OWNERS refused socket inode {} of process {} (error {}): its drops will name the owner from /proc only (logged once per CPU)",
            o.ino,
            tgid,
            e
        );
    }
    if f.flags & filter::PID != 0
        && tgid == f.pid_tgid
        && let Err(e) = FILTER_INODES.insert(&o.ino, &1, 0)
        && first(site::PID_INSERT_FAILED)
    {
        warn!(
            &ctx,
            "inet_sock_set_state: --pid socket map full (error {}): socket inode {} of process {} is not added: its drops are not kept (logged once per CPU)",
            e,
            o.ino,
            tgid
        );
    }
    0
}
