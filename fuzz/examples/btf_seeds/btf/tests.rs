//! The seeds, made with the test builder (see main.rs).

#[allow(dead_code)]
#[path = "../../../../netdrop/src/kernel/btf/tests/builder.rs"]
mod builder;
use builder::*;

use super::Btf;

/// The members `struct_offsets` follows, at made-up offsets, the
/// way a kernel nests them.
pub fn kernel() -> Vec<u8> {
    let mut b = Builder::new();
    let u8_ = b.int("unsigned char", 1);
    let u16_ = b.int("short unsigned int", 2);
    let u32_ = b.int("unsigned int", 4);
    let u64_ = b.int("long long unsigned int", 8);
    let char_ = b.int("char", 1);
    let be16 = b.typedef("__be16", u16_);
    let be32 = b.typedef("__be32", u32_);
    let void_ptr = b.ptr(0);
    let fwd = |b: &mut Builder, name: &str| b.raw(name, FWD, false, 0, 0, &[]);

    // file, inode, socket: one pointer each.
    let inode = b.struct_(
        "inode",
        600,
        &[("i_mode", u16_, 0), ("i_ino", u64_, 64 * 8)],
    );
    let inode_ptr = b.ptr(inode);
    let file = b.struct_(
        "file",
        200,
        &[("f_mode", u32_, 0), ("f_inode", inode_ptr, 32 * 8)],
    );
    let file_ptr = b.ptr(file);
    let socket = b.struct_(
        "socket",
        128,
        &[("state", u32_, 0), ("file", file_ptr, 16 * 8)],
    );
    let socket_ptr = b.ptr(socket);

    // net: ns.inum and net_cookie.
    let ns_common = b.struct_(
        "ns_common",
        24,
        &[
            ("stashed", void_ptr, 0),
            ("ops", void_ptr, 64),
            ("inum", u32_, 128),
        ],
    );
    let net = b.struct_(
        "net",
        4096,
        &[
            ("passive", u32_, 0),
            ("ns", ns_common, 120 * 8),
            ("net_cookie", u64_, 160 * 8),
        ],
    );
    let net_ptr = b.ptr(net);
    let possible = b.struct_("", 8, &[("net", net_ptr, 0)]);
    let possible_net_t = b.typedef("possible_net_t", possible);

    // net_device: name[16], ifindex, nd_net.net.
    let name = b.array(char_, u32_, 16);
    let net_device = b.struct_(
        "net_device",
        2560,
        &[
            ("name", name, 0),
            ("ifindex", u32_, 224 * 8),
            ("nd_net", possible_net_t, 1208 * 8),
        ],
    );
    let dev_ptr = b.ptr(net_device);

    // sock: __sk_common (anonymous unions inside, volatile state), sk_uid.val.
    let addrpair = b.struct_(
        "",
        8,
        &[("skc_daddr", be32, 0), ("skc_rcv_saddr", be32, 32)],
    );
    let addr_union = b.union_("", 8, &[("skc_addrpair", u64_, 0), ("", addrpair, 0)]);
    let portpair = b.struct_("", 4, &[("skc_dport", be16, 0), ("skc_num", u16_, 16)]);
    let port_union = b.union_("", 4, &[("skc_portpair", u32_, 0), ("", portpair, 0)]);
    let state = b.modifier(VOLATILE, "", u8_);
    let in6 = b.array(u8_, u32_, 16);
    let sock_common = b.struct_(
        "sock_common",
        136,
        &[
            ("", addr_union, 0),
            ("", port_union, 96),
            ("skc_family", u16_, 128),
            ("skc_state", state, 144),
            ("skc_net", possible_net_t, 48 * 8),
            ("skc_v6_rcv_saddr", in6, 72 * 8),
        ],
    );
    let kuid = b.struct_("", 4, &[("val", u32_, 0)]);
    let kuid_t = b.typedef("kuid_t", kuid);
    let sock = b.struct_(
        "sock",
        760,
        &[
            ("__sk_common", sock_common, 0),
            ("sk_ack_backlog", u32_, 300 * 8),
            ("sk_max_ack_backlog", u32_, 304 * 8),
            ("sk_uid", kuid_t, 308 * 8),
            ("sk_socket", socket_ptr, 400 * 8),
        ],
    );
    let sock_ptr = b.ptr(sock);

    // sk_buff: dev in an anonymous union inside an anonymous struct.
    let rb = fwd(&mut b, "rb_node");
    let list = b.struct_("", 16, &[("next", void_ptr, 0), ("prev", void_ptr, 64)]);
    let dev_union = b.union_("", 8, &[("dev", dev_ptr, 0), ("dev_scratch", u64_, 0)]);
    let head = b.struct_("", 24, &[("", list, 0), ("", dev_union, 128)]);
    let head_union = b.union_("", 24, &[("", head, 0), ("rbnode", rb, 0)]);
    let sk_buff_data_t = b.typedef("sk_buff_data_t", u32_);
    let uchar_ptr = b.ptr(u8_);
    let sk_buff = b.struct_(
        "sk_buff",
        232,
        &[
            ("", head_union, 0),
            ("sk", sock_ptr, 24 * 8),
            ("len", u32_, 112 * 8),
            ("protocol", be16, 180 * 8),
            ("network_header", u16_, 186 * 8),
            ("tail", sk_buff_data_t, 188 * 8),
            ("head", uchar_ptr, 200 * 8),
            ("data", uchar_ptr, 208 * 8),
        ],
    );
    let skb_ptr = b.ptr(sk_buff);

    let reason = b.enum32(
        "skb_drop_reason",
        &[
            ("SKB_NOT_DROPPED_YET", 0),
            ("SKB_CONSUMED", 1),
            ("SKB_DROP_REASON_NOT_SPECIFIED", 2),
            ("SKB_DROP_REASON_NO_SOCKET", 3),
            ("SKB_DROP_REASON_NEIGH_QUEUEFULL", 59),
        ],
    );

    // kfree_skb's prototype: the unnamed typedef and the named probe stub.
    let args = [
        ("__data", void_ptr),
        ("skb", skb_ptr),
        ("location", void_ptr),
        ("reason", reason),
        ("rx_sk", sock_ptr),
    ];
    let mut unnamed = Vec::new();
    let mut named = Vec::new();
    for (n, t) in args {
        unnamed.extend([0, t]);
        named.extend([b.name(n), t]);
    }
    let proto = b.raw("", FUNC_PROTO, false, args.len(), 0, &unnamed);
    let proto_ptr = b.ptr(proto);
    b.typedef("btf_trace_kfree_skb", proto_ptr);
    let proto = b.raw("", FUNC_PROTO, false, args.len(), 0, &named);
    b.raw("__bpf_trace_kfree_skb", FUNC, false, 0, proto, &[]);
    b.build()
}

pub fn all_kinds() -> Vec<u8> {
    sample_blob()
}

pub fn exercise_sample(btf: &Btf) {
    exercise(btf)
}
