//! `skb:kfree_skb` — every skb the kernel frees as a drop. Reason field since 5.17
//! (absent on 5.10: counted under reason 0); `rx_sk` since 6.12.
//!
//! The same drop path serves the raw tracepoint (`kfree_skb_raw`, preferred:
//! no trace record is built for it) through [`DropSource`].

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use aya_log_ebpf::warn;
use netdrop_common::{
    ABSENT, Config, LISTEN_FULL_NO_SOCKET_SLOT, MAX_LOCATIONS, MAX_REASONS,
    NETFILTER_DROP_CONNTRACK_FULL_SLOT, REASON_OVERFLOW_SLOT, RawDropEvent, filter, kind,
};

use crate::{
    diag::{first, logging, site},
    kernel::{DropCtx, accept_queue, listener_full, skb_capture, tp_field},
    maps::{
        DROP_COUNTS, EVENT_COUNTS, EVENTS, LOST_COUNTS, SOCK_OWNERS, admit, bump, config,
        reason_allowed,
    },
};

/// Where a hook finds the drop's facts: the tracepoint's record or the raw
/// tracepoint's arguments. Each is read only when the drop path needs it.
pub trait DropSource {
    fn reason(&self, cfg: &Config) -> u32;
    fn skb(&self, cfg: &Config) -> u64;
    fn rx_sk(&self, cfg: &Config) -> u64;
    fn location(&self, cfg: &Config) -> u64;
    /// Ethernet protocol, host order.
    fn protocol(&self, cfg: &Config, skb: u64) -> u16;
}

impl DropSource for TracePointContext {
    #[inline(always)]
    fn reason(&self, cfg: &Config) -> u32 {
        tp_field(self, cfg.kfree_skb.reason).unwrap_or(0)
    }
    #[inline(always)]
    fn skb(&self, cfg: &Config) -> u64 {
        tp_field(self, cfg.kfree_skb.skbaddr).unwrap_or(0)
    }
    #[inline(always)]
    fn rx_sk(&self, cfg: &Config) -> u64 {
        tp_field(self, cfg.kfree_skb.rx_sk).unwrap_or(0)
    }
    #[inline(always)]
    fn location(&self, cfg: &Config) -> u64 {
        tp_field(self, cfg.kfree_skb.location).unwrap_or(0)
    }
    #[inline(always)]
    fn protocol(&self, cfg: &Config, _skb: u64) -> u16 {
        tp_field(self, cfg.kfree_skb.protocol).unwrap_or(0)
    }
}

#[tracepoint]
pub fn netdrop_kfree_skb(ctx: TracePointContext) -> u32 {
    on_drop(&ctx).unwrap_or(0)
}

/// One freed skb: count it, then (within the event limit) describe it.
#[inline(always)]
pub fn on_drop<S: DropSource>(src: &S) -> Option<u32> {
    let cfg = config();
    let f = &cfg.filter;
    let reason = src.reason(cfg);
    // One read of rx_sk serves every use below (the raw tracepoint's argument
    // reads must stay loads at constant offsets: several reads of one argument
    // can be merged into a computed one the verifier refuses).
    let rx_sk = src.rx_sk(cfg);
    let mut slot = if reason < MAX_REASONS {
        reason
    } else {
        REASON_OVERFLOW_SLOT
    };
    // NO_SOCKET is ambiguous: at a full listener it is an accept-queue
    // overflow (a syncookie ACK the queue had no room for). Only these drops
    // read more: most NO_SOCKET drops (UDP to a closed port) have no rx_sk.
    if reason == cfg.reason_no_socket && cfg.reason_no_socket != ABSENT {
        if rx_sk != 0 && listener_full(rx_sk, &cfg.structs) {
            slot = LISTEN_FULL_NO_SOCKET_SLOT;
        }
    }
    // NETFILTER_DROP is ambiguous too: a packet without a conntrack entry in
    // a namespace whose conntrack table is full, freed where conntrack's
    // verdict is (nf_hook_slow; an nftables rule's drop is freed in
    // nft_do_chain), was refused by conntrack, not by a rule. Only these
    // drops read more (conntrack.rs).
    if reason == cfg.conntrack.reason && cfg.conntrack.reason != ABSENT {
        let at = src.location(cfg);
        if at >= cfg.conntrack.hook_start
            && at < cfg.conntrack.hook_end
            && crate::conntrack::table_full(src.skb(cfg), &cfg.structs, &cfg.conntrack)
        {
            slot = NETFILTER_DROP_CONNTRACK_FULL_SLOT;
        }
    }
    // No reason on this kernel (before 5.17): where the skb was freed says
    // what dropped it, for the functions only one cause frees in.
    if cfg.n_locations != 0 {
        let at = src.location(cfg);
        slot = by_location(cfg, at, slot);
    }
    if !reason_allowed(cfg, slot) {
        return Some(0);
    }
    // Without filters the skb is read only for an event; with them, first
    // (and again for an event: no `Option<DropCtx>` lives across the paths.
    // LLVM may load such an option's payload before testing it, and verifiers
    // before 6.3 refuse any read of stack never written on the path taken:
    // "invalid read from stack", seen on 6.1 and 5.10).
    if f.flags & (filter::PID | filter::NETNS | filter::DEV) != 0 {
        let mut d = DropCtx::read(src.skb(cfg), rx_sk, &cfg.structs);
        if !d.keep(f) {
            return Some(0);
        }
    }
    // The exact count comes before the event: whatever happens to it, this is kept.
    bump(&DROP_COUNTS, slot);
    // In a storm most drops stop here: counted, over the event limit, nothing
    // else read or written.
    if cfg.emit_events == 0 || !admit(cfg, slot) {
        return Some(0);
    }

    // Logged here, on the event path, not where the slot is chosen: the
    // storm path (over the event limit) stays as it is, log or not.
    if logging() && reason >= MAX_REASONS && first(site::REASON_OUT_OF_RANGE) {
        warn!(
            src,
            "kfree_skb: drop reason {} is beyond netdrop's {} reason slots: counted in the last one (logged once per CPU)",
            reason,
            MAX_REASONS
        );
    }
    let skbaddr = src.skb(cfg);
    let mut d = DropCtx::read(skbaddr, rx_sk, &cfg.structs);
    // Sets the scope the filter matched (it kept this drop above).
    if f.flags & (filter::PID | filter::NETNS | filter::DEV) != 0 {
        d.keep(f);
    }
    let Some(mut entry) = EVENTS.reserve::<RawDropEvent>(0) else {
        bump(&LOST_COUNTS, slot);
        if first(site::DROP_EVENT_LOST) {
            warn!(
                src,
                "kfree_skb: ring buffer full: a drop event (reason {}) was lost; lost events stay counted (logged once per CPU)",
                reason
            );
        }
        return Some(0);
    };
    let queue = accept_queue(d.sock, &cfg.structs);
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at reserved ring buffer space of the right size; every
    // field is written before submit.
    unsafe {
        (*ev).kind = kind::DROP;
        // The refined slot names the drop (the summary names it so too).
        (*ev).reason = if slot == NETFILTER_DROP_CONNTRACK_FULL_SLOT {
            slot
        } else {
            reason
        };
        (*ev).ts_ns = bpf_ktime_get_ns();
        (*ev).location = src.location(cfg);
        (*ev).skbaddr = skbaddr;
        (*ev).sk = d.info.sk;
        (*ev).rx_sk = rx_sk;
        (*ev).netns = d.info.netns;
        (*ev).ifindex = d.info.ifindex;
        (*ev).pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        (*ev).protocol = src.protocol(cfg, skbaddr);
        (*ev).dev = d.info.dev;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*ev).net_hdr = [0; netdrop_common::MAX_CAPTURE];
        let cap = skb_capture(skbaddr, &cfg.structs, cfg.net_hdr_len, &mut (*ev).net_hdr);
        (*ev).net_hdr_len = cap.copied as u16;
        (*ev).pkt_len = cap.pkt_len;
        (*ev)._pad = 0;
        (*ev).netns_cookie = d.info.netns_cookie;
        (*ev).owner_ino = d.owner.ino;
        (*ev).owner_uid = d.owner.uid;
        (*ev).owner_src = d.owner_src;
        (*ev).scope = d.scope;
        (*ev).owner_tgid = if d.owner.ino == 0 {
            0
        } else {
            // SAFETY: a map lookup; the value is copied out.
            unsafe { SOCK_OWNERS.get(&d.owner.ino) }
                .copied()
                .unwrap_or(0)
        };
        (*ev).accept_queue = queue.len;
        (*ev).accept_limit = queue.limit;
    }
    entry.submit(0);
    bump(&EVENT_COUNTS, slot);
    Some(0)
}

/// The slot of the location range containing `at`, else `slot`.
#[inline(always)]
fn by_location(cfg: &Config, at: u64, slot: u32) -> u32 {
    let n = cfg.n_locations as usize;
    for i in 0..MAX_LOCATIONS {
        if i >= n {
            break;
        }
        let r = &cfg.locations[i];
        if at >= r.start && at < r.end {
            return r.slot;
        }
    }
    slot
}
