//! The BTF parser against arbitrary bytes (`--btf FILE` reads any file).
//! Its contract (netdrop/src/kernel/btf.rs): whatever the input, parsing and
//! every lookup netdrop makes at start-up never panic and never loop: a
//! dangling id, a cycle or a bad name gives an error or `None`.
//!
//! Seeds: fuzz/seeds/btf/ (written by `cargo run --manifest-path
//! fuzz/Cargo.toml --example btf_seeds`: a small kernel where every lookup
//! succeeds, and a blob with every BTF kind).

#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use netdrop::kernel::{btf::Btf, raw_kfree_skb_args, reasons::ReasonTable, struct_offsets};

fuzz_target!(|data: &[u8]| {
    let btf = match Btf::parse(data) {
        Ok(btf) => btf,
        Err(e) => {
            black_box(e.to_string());
            return;
        }
    };
    // What KernelFacts::discover takes from the kernel's BTF.
    let reasons = ReasonTable::from_btf(&btf).unwrap_or_default();
    black_box(reasons.value("NO_SOCKET"));
    black_box(reasons.name(2));
    let structs = struct_offsets(&btf);
    black_box(raw_kfree_skb_args(&btf, "kfree_skb", &structs).map_err(|e| e.len()));
    // The lookups below it, by names the seeds hold and by none.
    for event in ["kfree_skb", "consume_skb", ""] {
        black_box(btf.tracepoint_args(event));
    }
    for name in ["sk_buff", "sock", "skb_drop_reason", "filler_e64", ""] {
        black_box(btf.enum_values(name));
        black_box(btf.member(name, "dev"));
        black_box(btf.member_path(name, &["__sk_common", "skc_net", "net"]));
    }
    black_box(format!("{btf:?}"));
});
