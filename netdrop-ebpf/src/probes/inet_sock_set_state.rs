//! `sock:inet_sock_set_state` (4.16+) — only for `--pid`: when the watched
//! process moves a TCP socket to SYN_SENT (connect) or LISTEN (listen), this
//! runs in its context, and the socket's inode joins FILTER_INODES at once, so
//! drops of a socket created after netdrop started are kept from the first SYN.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use netdrop_common::filter;

use crate::{
    kernel::{sock_owner, tp_field},
    maps::{FILTER_INODES, config},
};

/// include/net/tcp_states.h (stable ABI).
const TCP_SYN_SENT: i32 = 2;
const TCP_LISTEN: i32 = 10;

#[tracepoint]
pub fn netdrop_inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let cfg = config();
    let f = &cfg.filter;
    if f.flags & filter::PID == 0 || (bpf_get_current_pid_tgid() >> 32) as u32 != f.pid_tgid {
        return 0;
    }
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
    if let Some(o) = sock_owner(sk, &cfg.structs) {
        let _ = FILTER_INODES.insert(&o.ino, &1, 0);
    }
    0
}
