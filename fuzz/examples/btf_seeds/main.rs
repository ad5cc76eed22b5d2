//! Writes the seeds of the `btf` fuzz target (fuzz/seeds/btf/) with netdrop's
//! own test builder (netdrop/src/kernel/btf/tests/builder.rs, included as is),
//! and checks each with the parser before writing it:
//!
//! - `kernel`: a small kernel as netdrop sees one: every struct member it
//!   follows (`struct_offsets` finds all of them, through anonymous unions,
//!   typedefs and modifiers), `enum skb_drop_reason`, and the kfree_skb
//!   tracepoint's typedef and probe stub (`raw_kfree_skb_args` succeeds);
//! - `all-kinds`: the builder's sample, every BTF kind at least once.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example btf_seeds
//!
//! (a normal build of netdrop in fuzz/target; the fuzzer never runs this).
//! `btf/tests.rs` stands where netdrop's btf/tests/mod.rs does: the builder
//! reaches its parent's items through `super::super`.

use std::path::Path;

use netdrop::kernel::{btf::Btf, raw_kfree_skb_args, reasons::ReasonTable, struct_offsets};

/// `netdrop_common::ABSENT`: a member BTF does not have.
const ABSENT: u32 = u32::MAX;

/// Stands for netdrop/src/kernel/btf.rs: what the builder takes from there.
mod btf {
    pub const BTF_MAGIC: u16 = 0xEB9F;
    pub const BTF_VERSION: u8 = 1;
    pub const HEADER_LEN: usize = 24;
    pub use netdrop::kernel::btf::Btf;

    pub mod tests;
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/btf");
    std::fs::create_dir_all(&dir).unwrap();

    let kernel = btf::tests::kernel();
    let parsed = Btf::parse(&kernel).expect("the kernel seed parses");
    let offsets = struct_offsets(&parsed);
    let shown = format!("{offsets:?}");
    assert!(
        !shown.contains(&ABSENT.to_string()),
        "a member netdrop follows is missing from the kernel seed: {shown}"
    );
    let args = raw_kfree_skb_args(&parsed, "kfree_skb", &offsets).expect("kfree_skb arguments");
    assert_eq!(
        (args.skb, args.location, args.reason, args.rx_sk),
        (0, 1, 2, 3)
    );
    let reasons = ReasonTable::from_btf(&parsed).expect("skb_drop_reason");
    assert_eq!(reasons.value("NO_SOCKET"), Some(3));
    assert_eq!(reasons.name(59), "NEIGH_QUEUEFULL");
    println!("kernel: {} bytes; {shown}; {args:?}", kernel.len());

    let all = btf::tests::all_kinds();
    let parsed = Btf::parse(&all).expect("the all-kinds seed parses");
    btf::tests::exercise_sample(&parsed);
    println!("all-kinds: {} bytes", all.len());

    for (name, bytes) in [("kernel", kernel), ("all-kinds", all)] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    println!("written to {}", dir.display());
}
