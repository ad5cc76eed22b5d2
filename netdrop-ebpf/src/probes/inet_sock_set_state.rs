//! `sock:inet_sock_set_state` (4.16+). A TCP socket moves to SYN_SENT (connect)
//! or LISTEN (listen) in its owner's context: that is when the owner is known
//! for sure. The inode → tgid goes into SOCK_OWNERS (so a drop names its owner
//! even if the socket is gone before /proc is read), and under `--pid` the
//! watched process's socket joins FILTER_INODES at once, from its first SYN.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use netdrop_common::filter;

use crate::{
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
    let _ = SOCK_OWNERS.insert(&o.ino, &tgid, 0);
    if f.flags & filter::PID != 0 && tgid == f.pid_tgid {
        let _ = FILTER_INODES.insert(&o.ino, &1, 0);
    }
    0
}
