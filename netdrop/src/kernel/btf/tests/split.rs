//! Split BTF (a kernel module's, on top of vmlinux's): a synthetic base and
//! split pair, and the real nf_conntrack BTF of Debian's 6.12 kernel.

use std::path::Path;

use super::*;

/// A base with the types conntrack's lookup needs from vmlinux, and a split
/// whose `nf_conntrack_net` refers to base types and base strings.
fn pair() -> (Vec<u8>, Vec<u8>, u32) {
    let (base, split) = builders();
    (base.build(), split.build(), base.next_id - 1)
}

fn builders() -> (Builder, Builder) {
    let mut base = Builder::new();
    base.all_kinds();
    let u32_t = base.int("unsigned int", 4);
    let hdr = base.struct_("ctl_table_header", 16, &[("ctl_table", u32_t, 64)]);
    let hdr_ptr = base.ptr(hdr);
    // Named like the split's member, so the split can reuse the base's string.
    base.struct_("atomic_t", 4, &[("count", u32_t, 0)]);
    base.enum32("color", &[("RED", 0)]);
    let base_types = base.next_id - 1;

    let mut split = Builder::split_of(&base);
    let count = base.name_in("count");
    // struct nf_conntrack_net { u32 pad; atomic count; ...; hdr *sysctl_header; }
    let pad = split.name("pad");
    let sysctl = split.name("sysctl_header");
    let name = split.name("nf_conntrack_net");
    let cnet = split.next_id;
    let members = [pad, u32_t, 0, count, u32_t, 32, sysctl, hdr_ptr, 128];
    split.raw_named(name, STRUCT, 3, 24, &members);
    split.enum32(
        "nf_ct_sysctl_index",
        &[("NF_SYSCTL_CT_MAX", 1), ("NF_SYSCTL_CT_COUNT", 2)],
    );
    // A name also in the base: lookups give the base's type first.
    split.enum32("color", &[("BLUE", 7)]);
    assert_eq!(cnet, base_types + 1);
    (base, split)
}

#[test]
fn split_types_follow_the_base_and_share_its_strings() {
    let (base, split, base_types) = pair();
    let mut btf = Btf::parse(&base).unwrap();
    assert_eq!(btf.struct_size("nf_conntrack_net"), None);
    btf.add_split(&split).unwrap();
    assert_eq!(btf.ids_named("nf_conntrack_net"), [base_types + 1]);
    assert_eq!(btf.struct_size("nf_conntrack_net"), Some(24));
    // A member named from the base's strings, of a base type.
    assert_eq!(
        btf.member("nf_conntrack_net", "count"),
        Some(Member { offset: 4, size: 4 })
    );
    // A member named from the split's strings, pointing at a base type.
    assert_eq!(
        btf.member("nf_conntrack_net", "sysctl_header"),
        Some(Member {
            offset: 16,
            size: 8
        })
    );
    assert_eq!(
        btf.enum_values("nf_ct_sysctl_index").unwrap()[0],
        ("NF_SYSCTL_CT_MAX".to_string(), 1)
    );
    assert_eq!(btf.enum_values("color").unwrap(), [("RED".to_string(), 0)]);
    // The base's own lookups are unchanged.
    assert_eq!(
        btf.member("ctl_table_header", "ctl_table"),
        Some(Member { offset: 8, size: 4 })
    );
    exercise(&btf);
}

#[test]
fn a_second_split_or_a_bad_one_changes_nothing() {
    let (base, split, _) = pair();
    let mut btf = Btf::parse(&base).unwrap();
    let before = format!("{btf:?}");
    let mut bad = split.clone();
    bad.truncate(bad.len() - 40);
    assert!(btf.add_split(&bad).is_err());
    assert!(btf.add_split(&split[..10]).is_err());
    assert_eq!(format!("{btf:?}"), before);
    assert_eq!(btf.struct_size("nf_conntrack_net"), None);
    btf.add_split(&split).unwrap();
    assert!(matches!(btf.add_split(&split), Err(BtfError::SplitOnSplit)));
}

#[test]
fn split_offsets_past_everything_are_not_found() {
    let (base, _) = builders();
    let base_btf = Btf::parse(&base.build()).unwrap();
    let mut split = Builder::split_of(&base);
    // A struct whose name and member point past both string sections, and
    // a member of a type id past both type sections.
    let far = u32::MAX - 8;
    split.raw_named(far, STRUCT, 1, 4, &[far, 999_999, 0]);
    let s = split.name("dangling");
    split.raw_named(s, STRUCT, 1, 4, &[s, 999_999, 0]);
    let mut btf = base_btf;
    btf.add_split(&split.build()).unwrap();
    assert_eq!(btf.struct_size("dangling"), Some(4));
    assert_eq!(btf.member("dangling", "dangling"), None);
    exercise(&btf);
}

/// Debian's 6.12 nf_conntrack.ko `.BTF` (`objcopy --dump-section .BTF=`), the
/// bytes the kernel shows at /sys/kernel/btf/nf_conntrack. Its base (that
/// kernel's vmlinux BTF, 5 MB) is not committed: the test stands a base of
/// the same shape in for it (as many types, as long a string section).
const REAL_SPLIT: &[u8] =
    include_bytes!("../../../../tests/fixtures/btf/nf_conntrack.6.12.117+deb13-amd64.btf");
/// Types and string section length of that kernel's vmlinux BTF.
const REAL_BASE_TYPES: u32 = 113_921;
const REAL_BASE_STR_LEN: usize = 2_060_882;

/// A base of the real one's shape: its types unnamed ints, its strings NULs.
fn stand_in_base() -> Vec<u8> {
    let mut b = Builder::new();
    for _ in 0..REAL_BASE_TYPES {
        b.raw_named(0, INT, 0, 4, &[32]);
    }
    b.pad_strings(REAL_BASE_STR_LEN);
    b.build()
}

#[test]
fn real_nf_conntrack_split_btf() {
    let mut btf = Btf::parse(&stand_in_base()).unwrap();
    btf.add_split(REAL_SPLIT).unwrap();
    let id = btf.ids_named("nf_conntrack_net")[0];
    assert!(id > REAL_BASE_TYPES, "{id}");
    // Sizes and enumerators come from the module's own records and strings.
    assert_eq!(btf.struct_size("nf_conntrack_net"), Some(136));
    let index = btf.enum_values("nf_ct_sysctl_index").unwrap();
    assert!(
        index.contains(&("NF_SYSCTL_CT_MAX".to_string(), 0)),
        "{index:?}"
    );
    exercise(&btf);
}

/// The whole lookup on the real pair, when that kernel's vmlinux BTF is at
/// $NETDROP_TEST_VMLINUX_BTF_6_12 (extract it with `objcopy --dump-section
/// .BTF=` from the decompressed vmlinuz); the matrix's conntrack_full test
/// checks the same live in the 6.12 and 7.2 guests.
#[test]
fn real_nf_conntrack_with_its_vmlinux() {
    let Some(base) = std::env::var_os("NETDROP_TEST_VMLINUX_BTF_6_12") else {
        eprintln!("SKIP: NETDROP_TEST_VMLINUX_BTF_6_12 not set (the guest test checks this live)");
        return;
    };
    let mut btf = Btf::from_file(Path::new(&base)).unwrap();
    let c = crate::kernel::conntrack_offsets(&btf);
    assert!(c.is_err(), "vmlinux alone has no nf_conntrack_net");
    btf.add_split(REAL_SPLIT).unwrap();
    let c = crate::kernel::conntrack_offsets(&btf).unwrap();
    println!("{c:?}");
    let want = netdrop_common::ConntrackOffsets {
        sk_buff_nfct: 104,
        net_gen: 3224,
        generic_len: 0,
        generic_ptr: 0,
        cnet_count: 0,
        cnet_sysctl_header: 24,
        header_table: 0,
        table_max_entry: 0,
        table_procname: 0,
        table_data: 8,
        ..netdrop_common::ConntrackOffsets::absent()
    };
    assert_eq!(c, want);
}

/// What start-up says when vmlinux lacks conntrack: the module is not
/// loaded, loaded without BTF, or its BTF is read on top of vmlinux's.
#[test]
fn conntrack_btf_reads_the_module_beside_vmlinux() {
    use crate::kernel::conntrack_btf;
    let (base, split, _) = pair();
    let dir = std::env::temp_dir().join(format!("netdrop-split-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("nf_conntrack");
    let _ = std::fs::remove_file(&module);

    let mut btf = Btf::parse(&base).unwrap();
    let why = conntrack_btf(&mut btf, &module, false).unwrap_err();
    assert!(why.starts_with("nf_conntrack is not loaded"), "{why}");
    let why = conntrack_btf(&mut btf, &module, true).unwrap_err();
    assert!(
        why.contains("no BTF at") && why.contains("CONFIG_DEBUG_INFO_BTF_MODULES"),
        "{why}"
    );

    std::fs::write(&module, &split).unwrap();
    let why = conntrack_btf(&mut btf, &module, true).unwrap_err();
    // The module's types were read (the toy pair lacks the rest).
    assert_eq!(btf.struct_size("nf_conntrack_net"), Some(24));
    assert!(
        why.starts_with("no struct ctl_table") && why.contains("(nor in "),
        "{why}"
    );

    std::fs::write(&module, [0u8; 32]).unwrap();
    let mut btf = Btf::parse(&base).unwrap();
    let why = conntrack_btf(&mut btf, &module, true).unwrap_err();
    assert!(why.contains("bad magic"), "{why}");
    std::fs::remove_dir_all(&dir).unwrap();
}
