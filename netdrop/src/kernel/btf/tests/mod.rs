use super::*;

mod builder;
mod split;
mod trace;
mod vmlinux;
use builder::*;

#[test]
fn sample_blob_lookups() {
    let btf = Btf::parse(&sample_blob()).unwrap();
    assert_eq!(
        btf.member("outer", "a"),
        Some(Member { offset: 0, size: 4 })
    );
    assert_eq!(
        btf.member("outer", "hdr"),
        Some(Member {
            offset: 12,
            size: 2
        })
    );
    assert_eq!(
        btf.member("outer", "dev"),
        Some(Member { offset: 8, size: 8 })
    );
    assert_eq!(
        btf.member("outer", "name"),
        Some(Member {
            offset: 24,
            size: 16
        })
    );
    assert_eq!(btf.member("outer", "flag"), None);
    assert_eq!(
        btf.member_path("wrapper", &["o", "hdr"]),
        Some(Member {
            offset: 12,
            size: 2
        })
    );
    exercise(&btf);
}

#[test]
fn enum_lookup() {
    let mut b = Builder::new();
    b.all_kinds();
    // A declaration-only enum comes first and must be skipped.
    b.enum32("skb_drop_reason", &[]);
    b.enum32(
        "skb_drop_reason",
        &[
            ("SKB_NOT_DROPPED_YET", 0),
            ("SKB_CONSUMED", 1),
            ("SKB_DROP_REASON_NOT_SPECIFIED", 2),
            ("NEGATIVE", -2),
        ],
    );
    b.enum32("only_declared", &[]);
    let btf = Btf::parse(&b.build()).unwrap();
    assert_eq!(
        btf.enum_values("skb_drop_reason").unwrap(),
        vec![
            ("SKB_NOT_DROPPED_YET".to_string(), 0),
            ("SKB_CONSUMED".to_string(), 1),
            ("SKB_DROP_REASON_NOT_SPECIFIED".to_string(), 2),
            ("NEGATIVE".to_string(), 0xffff_fffe),
        ]
    );
    assert_eq!(btf.enum_values("only_declared"), Some(vec![]));
    assert_eq!(btf.enum_values("filler_e").unwrap().len(), 2);
    assert_eq!(btf.enum_values("missing"), None);
    // A struct of that name is not an enum.
    assert_eq!(btf.enum_values("filler_s"), None);
}

#[test]
fn enum64_lookup() {
    let mut b = Builder::new();
    b.all_kinds();
    b.enum64(
        "big",
        &[
            ("SMALL", 7),
            ("HUGE", 0x1234_5678_9abc_def0),
            ("MAX", u64::MAX),
        ],
    );
    let btf = Btf::parse(&b.build()).unwrap();
    assert_eq!(
        btf.enum_values("big").unwrap(),
        vec![
            ("SMALL".to_string(), 7),
            ("HUGE".to_string(), 0x1234_5678_9abc_def0),
            ("MAX".to_string(), u64::MAX),
        ]
    );
    assert_eq!(
        btf.enum_values("filler_e64").unwrap(),
        vec![("FE64_A".to_string(), 1 << 40)]
    );
}

#[test]
fn member_in_nested_anonymous_union_and_struct() {
    let mut b = Builder::new();
    b.all_kinds();
    let u64_t = b.int("long long unsigned int", 8);
    let u32_t = b.int("unsigned int", 4);
    let u16_t = b.int("short unsigned int", 2);
    // struct outer {
    //     u64 first;                          // 0
    //     union {                             // 8
    //         u64 whole;
    //         struct {                        // 8
    //             u32 lo;                     // 8
    //             u16 mid;                    // 12
    //             u16 deep;                   // 14
    //         };
    //     };
    //     u32 last;                           // 16
    // };
    let level2 = b.struct_(
        "",
        8,
        &[("lo", u32_t, 0), ("mid", u16_t, 32), ("deep", u16_t, 48)],
    );
    let level1 = b.union_("", 8, &[("whole", u64_t, 0), ("", level2, 0)]);
    b.struct_(
        "outer",
        24,
        &[("first", u64_t, 0), ("", level1, 64), ("last", u32_t, 128)],
    );
    let btf = Btf::parse(&b.build()).unwrap();

    assert_eq!(
        btf.member("outer", "first"),
        Some(Member { offset: 0, size: 8 })
    );
    assert_eq!(
        btf.member("outer", "whole"),
        Some(Member { offset: 8, size: 8 })
    );
    assert_eq!(
        btf.member("outer", "lo"),
        Some(Member { offset: 8, size: 4 })
    );
    assert_eq!(
        btf.member("outer", "mid"),
        Some(Member {
            offset: 12,
            size: 2
        })
    );
    assert_eq!(
        btf.member("outer", "deep"),
        Some(Member {
            offset: 14,
            size: 2
        })
    );
    assert_eq!(
        btf.member("outer", "last"),
        Some(Member {
            offset: 16,
            size: 4
        })
    );
    assert_eq!(btf.member("outer", "nope"), None);
    assert_eq!(btf.member("outer", ""), None);
    assert_eq!(btf.member("nope", "first"), None);
    // An enum is not a struct.
    assert_eq!(btf.member("filler_e", "FE_A"), None);
}

#[test]
fn member_through_typedef_pointer_and_arrays() {
    let mut b = Builder::new();
    b.all_kinds();
    let char_t = b.int("char", 1);
    let u32_t = b.int("unsigned int", 4);
    let fwd = b.raw("net_device", FWD, false, 0, 0, &[]);
    let tagged = b.modifier(TYPE_TAG, "rcu", fwd);
    let ptr = b.ptr(tagged);
    let dev_p = b.typedef("dev_p", ptr);
    let const_dev_p = b.modifier(CONST, "", dev_p);
    let volatile_dev_p = b.modifier(VOLATILE, "", const_dev_p);
    let name = b.array(char_t, u32_t, 16);
    let matrix_row = b.array(u32_t, u32_t, 3);
    let matrix = b.array(matrix_row, u32_t, 2);
    let typedef_u32 = b.typedef("u32", u32_t);
    let typedef_typedef = b.typedef("__u32_alias", typedef_u32);
    let flex = b.array(u32_t, u32_t, 0);
    b.struct_(
        "holder",
        64,
        &[
            ("dev", volatile_dev_p, 0),
            ("name", name, 64),
            ("matrix", matrix, 192),
            ("alias", typedef_typedef, 384),
            ("flex", flex, 416),
        ],
    );
    let btf = Btf::parse(&b.build()).unwrap();
    assert_eq!(
        btf.member("holder", "dev"),
        Some(Member { offset: 0, size: 8 })
    );
    assert_eq!(
        btf.member("holder", "name"),
        Some(Member {
            offset: 8,
            size: 16
        })
    );
    assert_eq!(
        btf.member("holder", "matrix"),
        Some(Member {
            offset: 24,
            size: 24
        })
    );
    assert_eq!(
        btf.member("holder", "alias"),
        Some(Member {
            offset: 48,
            size: 4
        })
    );
    assert_eq!(
        btf.member("holder", "flex"),
        Some(Member {
            offset: 52,
            size: 0
        })
    );
}

#[test]
fn bitfield_members_are_none() {
    let mut b = Builder::new();
    b.all_kinds();
    let u8_t = b.int("unsigned char", 1);
    let u32_t = b.int("unsigned int", 4);
    // kind_flag encoding: bitfield_size << 24 | bit_offset.
    let anon = b.struct_kf(
        "",
        4,
        &[("inner_bits", u8_t, 3 << 24 | 2), ("inner_byte", u8_t, 8)],
    );
    b.struct_kf(
        "flags",
        12,
        &[
            ("cloned", u8_t, 1 << 24),
            ("fclone", u8_t, 2 << 24 | 1),
            ("whole", u8_t, 8), // bitfield_size 0: an ordinary member
            ("", anon, 32),
            ("after", u32_t, 64),
        ],
    );
    // Old encoding (kind_flag clear): the INT type carries the bitfield.
    let three_bits = b.int_encoded("unsigned int", 4, 3, 0);
    let shifted = b.int_encoded("unsigned int", 4, 32, 4);
    b.struct_(
        "legacy",
        8,
        &[
            ("bits", three_bits, 0),
            ("shifted", shifted, 8),
            ("plain", u32_t, 32),
        ],
    );
    // A non-byte-aligned offset is a bitfield whatever the encoding.
    b.struct_("unaligned", 4, &[("odd", u8_t, 3)]);
    let btf = Btf::parse(&b.build()).unwrap();

    assert_eq!(btf.member("flags", "cloned"), None);
    assert_eq!(btf.member("flags", "fclone"), None);
    assert_eq!(btf.member("flags", "inner_bits"), None);
    assert_eq!(
        btf.member("flags", "whole"),
        Some(Member { offset: 1, size: 1 })
    );
    assert_eq!(
        btf.member("flags", "inner_byte"),
        Some(Member { offset: 5, size: 1 })
    );
    assert_eq!(
        btf.member("flags", "after"),
        Some(Member { offset: 8, size: 4 })
    );
    assert_eq!(btf.member("legacy", "bits"), None);
    assert_eq!(btf.member("legacy", "shifted"), None);
    assert_eq!(
        btf.member("legacy", "plain"),
        Some(Member { offset: 4, size: 4 })
    );
    assert_eq!(btf.member("unaligned", "odd"), None);
}

#[test]
fn member_path_across_named_structs() {
    let mut b = Builder::new();
    b.all_kinds();
    let u32_t = b.int("unsigned int", 4);
    let net_fwd = b.raw("net", FWD, false, 0, 0, &[]);
    let net_ptr = b.ptr(net_fwd);
    // typedef struct { struct net *net; } possible_net_t;
    let possible = b.struct_("", 8, &[("net", net_ptr, 0)]);
    let possible_t = b.typedef("possible_net_t", possible);
    // struct ns_common { u32 pad; union { u32 inum; u32 other; }; };
    let inum_union = b.union_("", 4, &[("inum", u32_t, 0), ("other", u32_t, 0)]);
    let ns_common = b.struct_("ns_common", 8, &[("pad", u32_t, 0), ("", inum_union, 32)]);
    b.struct_("net", 24, &[("passive", u32_t, 0), ("ns", ns_common, 128)]);
    // struct sock_common { u32 a; union { u64 b; struct { u32 c; possible_net_t skc_net; }; }; };
    let anon_s = b.struct_("", 16, &[("c", u32_t, 0), ("skc_net", possible_t, 64)]);
    let anon_u = b.union_("", 16, &[("", anon_s, 0)]);
    let sock_common = b.struct_("sock_common", 24, &[("a", u32_t, 0), ("", anon_u, 64)]);
    let const_common = b.modifier(CONST, "", sock_common);
    b.struct_(
        "sock",
        40,
        &[
            ("__sk_common", const_common, 0),
            ("sk_x", u32_t, 192),
            ("ptr", net_ptr, 256),
        ],
    );
    let btf = Btf::parse(&b.build()).unwrap();

    assert_eq!(
        btf.member_path("sock", &["__sk_common", "skc_net", "net"]),
        Some(Member {
            offset: 16,
            size: 8
        })
    );
    assert_eq!(
        btf.member_path("sock", &["__sk_common", "skc_net"]),
        Some(Member {
            offset: 16,
            size: 8
        })
    );
    assert_eq!(
        btf.member_path("sock", &["sk_x"]),
        btf.member("sock", "sk_x")
    );
    assert_eq!(
        btf.member_path("net", &["ns", "inum"]),
        Some(Member {
            offset: 20,
            size: 4
        })
    );
    // Pointers are not followed, unknown steps and empty paths fail.
    assert_eq!(btf.member_path("sock", &["ptr", "passive"]), None);
    assert_eq!(btf.member_path("sock", &["sk_x", "anything"]), None);
    assert_eq!(btf.member_path("sock", &["__sk_common", "nope"]), None);
    assert_eq!(btf.member_path("sock", &[]), None);
}

#[test]
fn duplicate_struct_names_use_first_with_member() {
    let mut b = Builder::new();
    let u32_t = b.int("unsigned int", 4);
    let u64_t = b.int("long unsigned int", 8);
    b.raw("dup", FWD, false, 0, 0, &[]);
    b.struct_("dup", 4, &[("only_first", u32_t, 0)]);
    b.struct_(
        "dup",
        16,
        &[("only_first", u64_t, 64), ("only_second", u64_t, 0)],
    );
    let btf = Btf::parse(&b.build()).unwrap();
    assert_eq!(
        btf.member("dup", "only_first"),
        Some(Member { offset: 0, size: 4 })
    );
    assert_eq!(
        btf.member("dup", "only_second"),
        Some(Member { offset: 0, size: 8 })
    );
}

#[test]
fn reference_cycles_do_not_hang() {
    let mut b = Builder::new();
    let u32_t = b.int("unsigned int", 4);
    // Type 2 is a typedef of itself; type 3 a struct whose anonymous
    // members are itself; type 4 an array of itself.
    let self_typedef = b.next_id;
    b.typedef("loop_t", self_typedef);
    let self_struct = b.next_id;
    b.struct_(
        "selfish",
        8,
        &[
            ("", self_struct, 0),
            ("", self_struct, 0),
            ("val", self_typedef, 32),
        ],
    );
    let self_array = b.next_id;
    b.array(self_array, u32_t, 2);
    b.struct_(
        "holder",
        8,
        &[
            ("arr", self_array, 0),
            ("dangling", 999, 32),
            ("void", 0, 0),
        ],
    );
    let btf = Btf::parse(&b.build()).unwrap();
    assert_eq!(btf.member("selfish", "missing"), None);
    assert_eq!(btf.member("selfish", "val"), None); // size unresolvable
    assert_eq!(btf.member("holder", "arr"), None);
    assert_eq!(btf.member("holder", "dangling"), None);
    assert_eq!(btf.member("holder", "void"), None);
    assert_eq!(btf.member_path("selfish", &["val", "val"]), None);
}

#[test]
fn every_truncation_is_an_error() {
    let blob = sample_blob();
    Btf::parse(&blob).unwrap();
    for len in 0..blob.len() {
        assert!(
            Btf::parse(&blob[..len]).is_err(),
            "truncated to {len} bytes parsed"
        );
    }
}

#[test]
fn header_errors() {
    let blob = sample_blob();

    let mut bad = blob.clone();
    bad[0] = 0x00;
    assert!(matches!(Btf::parse(&bad), Err(BtfError::BadMagic { .. })));

    let mut swapped = blob.clone();
    swapped.swap(0, 1);
    let err = Btf::parse(&swapped).unwrap_err();
    assert!(matches!(err, BtfError::BigEndian), "{err}");

    let mut version = blob.clone();
    version[2] = 2;
    assert!(matches!(
        Btf::parse(&version),
        Err(BtfError::UnsupportedVersion { found: 2 })
    ));

    let mut hdr_len = blob.clone();
    hdr_len[4..8].copy_from_slice(&8u32.to_le_bytes());
    assert!(matches!(
        Btf::parse(&hdr_len),
        Err(BtfError::BadHeaderLen { .. })
    ));

    let mut huge = blob.clone();
    huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Btf::parse(&huge),
        Err(BtfError::SectionOutOfBounds { .. })
    ));

    // Type section length not a multiple of the record size.
    let mut ragged = blob.clone();
    let type_len = read_u32(&ragged, 12).unwrap();
    ragged[12..16].copy_from_slice(&(type_len - 2).to_le_bytes());
    assert!(matches!(
        Btf::parse(&ragged),
        Err(BtfError::Truncated { .. })
    ));

    // Kind 20 does not exist (yet), so it cannot be skipped.
    let mut unknown = Builder::new();
    unknown.int("int", 4);
    unknown.raw("future", 20, false, 0, 0, &[]);
    let err = Btf::parse(&unknown.build()).unwrap_err();
    assert!(
        matches!(
            err,
            BtfError::UnknownKind {
                type_id: 2,
                kind: 20
            }
        ),
        "{err}"
    );

    assert!(matches!(
        Btf::parse(&[]),
        Err(BtfError::TooShort { len: 0 })
    ));
}

#[test]
fn longer_header_and_trailing_bytes_are_accepted() {
    let blob = sample_blob();
    // Insert 8 unknown header bytes (a future header extension) and
    // append garbage after the sections.
    let mut longer = blob[..HEADER_LEN].to_vec();
    longer[4..8].copy_from_slice(&(HEADER_LEN as u32 + 8).to_le_bytes());
    longer.extend([0xaa; 8]);
    longer.extend_from_slice(&blob[HEADER_LEN..]);
    longer.extend([0x55; 5]);
    let btf = Btf::parse(&longer).unwrap();
    assert_eq!(
        btf.member("outer", "hdr"),
        Some(Member {
            offset: 12,
            size: 2
        })
    );
}

#[test]
fn empty_sections_parse() {
    let btf = Btf::parse(&Builder::new().build()).unwrap();
    assert_eq!(btf.member("sk_buff", "dev"), None);
    assert_eq!(btf.enum_values("skb_drop_reason"), None);
}

#[test]
fn random_corruption_never_panics() {
    let blob = sample_blob();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut corrupt = blob.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % corrupt.len();
            corrupt[at] = next() as u8;
        }
        if let Ok(btf) = Btf::parse(&corrupt) {
            exercise(&btf);
        }
    }
}

#[test]
fn from_file_errors_mention_the_path() {
    let missing = Path::new("/nonexistent/netdrop-btf-test");
    let err = Btf::from_file(missing).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/netdrop-btf-test"),
        "{err}"
    );

    let path = std::env::temp_dir().join(format!("netdrop-btf-test-{}", std::process::id()));
    std::fs::write(&path, b"definitely not BTF data, just some text").unwrap();
    let err = Btf::from_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert!(source.unwrap_or_default().contains("bad magic"), "{err:?}");
}
