//! raw tracepoint `kfree_skb` — the same drops as `skb:kfree_skb`, for less:
//! the kernel calls the program with the tracepoint's arguments as they are,
//! without first building the trace record that `skb:kfree_skb` copies every
//! drop into (measured on 6.18: an empty program here slows a drop storm by
//! about 2 %, an empty `skb:kfree_skb` program by about 4 %; BENCHMARKS.md).
//!
//! Arguments (`TP_PROTO`): skb, location, reason (5.17+), rx_sk (6.12+). Their
//! positions come from the kernel's BTF (`btf_trace_kfree_skb`); the protocol,
//! not an argument, is read from the skb at its BTF offset.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use netdrop_common::Config;

use super::kfree_skb::{DropSource, on_drop};
use crate::kernel::read;

#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn netdrop_kfree_skb_raw(ctx: RawTracePointContext) -> u32 {
    on_drop(&ctx).unwrap_or(0)
}

/// Argument `index`, or 0 if absent. The verifier allows only constant offsets
/// into the arguments: each arm is one load at a fixed offset. `index` comes
/// from the read-only config, so the verifier knows it and keeps just the arm
/// taken (the attach then checks that the program reads no further than the
/// tracepoint's arguments go).
#[inline(always)]
fn arg(ctx: &RawTracePointContext, index: u32) -> u64 {
    match index {
        0 => ctx.arg(0),
        1 => ctx.arg(1),
        2 => ctx.arg(2),
        3 => ctx.arg(3),
        // netdrop_common::RAW_ARGS: the loader refuses other positions.
        _ => 0,
    }
}

impl DropSource for RawTracePointContext {
    #[inline(always)]
    fn reason(&self, cfg: &Config) -> u32 {
        arg(self, cfg.kfree_skb_args.reason) as u32
    }
    #[inline(always)]
    fn skb(&self, cfg: &Config) -> u64 {
        arg(self, cfg.kfree_skb_args.skb)
    }
    #[inline(always)]
    fn rx_sk(&self, cfg: &Config) -> u64 {
        arg(self, cfg.kfree_skb_args.rx_sk)
    }
    #[inline(always)]
    fn location(&self, cfg: &Config) -> u64 {
        arg(self, cfg.kfree_skb_args.location)
    }
    #[inline(always)]
    fn protocol(&self, cfg: &Config, skb: u64) -> u16 {
        // skb->protocol is big-endian; the tracepoint's field is host order.
        u16::from_be(read::<u16>(skb, cfg.structs.sk_buff_protocol).unwrap_or(0))
    }
}
