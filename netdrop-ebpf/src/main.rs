//! netdrop's kernel side: one module per hook, all kernel struct reads in `kernel.rs`.
//!
//! Hooks feed two things: exact per-CPU counters (never lost) and detail events
//! through one ring buffer (lost when it is full, and then counted).
#![no_std]
#![no_main]
// `atomic_xadd` (maps::admit): the BPF target has no AtomicU64::fetch_add.
#![allow(internal_features)]
#![feature(core_intrinsics)]

mod conntrack;
mod diag;
mod kernel;
mod maps;
mod neigh;
mod probes;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
