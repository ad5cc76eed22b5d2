//! The running kernel's own BTF (skipped loudly where there is none).

use std::path::Path;

use super::super::*;
use crate::kernel::{raw_kfree_skb_args, struct_offsets};

#[test]
fn real_vmlinux() {
    let path = Path::new("/sys/kernel/btf/vmlinux");
    if !path.exists() {
        eprintln!("SKIP: no /sys/kernel/btf/vmlinux");
        println!("SKIP: no /sys/kernel/btf/vmlinux");
        return;
    }
    let btf = Btf::from_file(path).unwrap();

    let reasons = btf
        .enum_values("skb_drop_reason")
        .expect("enum skb_drop_reason");
    let has = |name: &str| reasons.iter().any(|(n, _)| n == name);
    assert!(has("SKB_DROP_REASON_NOT_SPECIFIED"), "{reasons:?}");
    assert!(has("SKB_DROP_REASON_NEIGH_QUEUEFULL"), "{reasons:?}");

    let check = |name: &str, path: &[&str], size: Option<u32>| {
        let m = btf.member_path(name, path);
        println!("{name}.{} = {m:?}", path.join("."));
        let m = m.unwrap_or_else(|| panic!("{name}.{} not found", path.join(".")));
        if let Some(size) = size {
            assert_eq!(m.size, size, "{name}.{}", path.join("."));
        }
        m
    };
    let dev = check("sk_buff", &["dev"], Some(8));
    let head = check("sk_buff", &["head"], Some(8));
    assert_ne!(dev.offset, head.offset);
    check("sk_buff", &["network_header"], Some(2));
    // Packet capture bounds: len, data, and tail as an offset from head (64-bit).
    let len = check("sk_buff", &["len"], Some(4));
    let data = check("sk_buff", &["data"], Some(8));
    let tail = check("sk_buff", &["tail"], Some(4));
    assert!(len.offset != data.offset && data.offset != tail.offset);
    let offs = crate::kernel::struct_offsets(&btf);
    assert_eq!(
        (offs.sk_buff_len, offs.sk_buff_data, offs.sk_buff_tail),
        (len.offset, data.offset, tail.offset)
    );
    check("net_device", &["ifindex"], Some(4));
    check("net_device", &["name"], Some(16));
    check("net_device", &["nd_net", "net"], Some(8));
    check("net", &["ns", "inum"], Some(4));
    check("sock", &["__sk_common", "skc_net", "net"], Some(8));
    check("task_struct", &["tgid"], Some(4));
    // member() and a one-step member_path() agree.
    assert_eq!(btf.member("sk_buff", "dev"), Some(dev));
}

#[test]
fn real_vmlinux_kfree_skb_prototype() {
    let path = Path::new("/sys/kernel/btf/vmlinux");
    if !path.exists() {
        println!("SKIP: no /sys/kernel/btf/vmlinux");
        return;
    }
    let btf = Btf::from_file(path).unwrap();
    let args = btf
        .tracepoint_args("kfree_skb")
        .expect("kfree_skb prototype");
    println!("kfree_skb: {args:?}");
    assert_eq!(args[0].ty, "struct sk_buff *");
    let a = raw_kfree_skb_args(&btf, "kfree_skb", &struct_offsets(&btf)).unwrap();
    assert_eq!(a.skb, 0);
    assert_ne!(a.reason, netdrop_common::ABSENT);
}
