//! NETFILTER_DROP is ambiguous: a rule's verdict (firewall_rule) or
//! conntrack refusing a new entry because the namespace's table is full
//! (conntrack_full). The second has no conntrack entry on the skb
//! (`skb->_nfct == 0`) and its namespace's count is at `nf_conntrack_max`.
//! Only NETFILTER_DROP drops come here; every offset comes from BTF
//! (`ConntrackOffsets`), and anything unknown means "a rule's drop".

use aya_ebpf::{macros::map, maps::Array};
use netdrop_common::{ABSENT, ConntrackOffsets, StructOffsets};

use crate::kernel::read;

/// The `net_generic` id of conntrack's per-namespace state, once found: 0
/// not searched yet, [`NOT_FOUND`] searched in vain.
#[map]
static CT_NET_ID: Array<u32> = Array::with_max_entries(1, 0);

const NOT_FOUND: u32 = u32::MAX;
/// Ids searched (this kernel has about 30).
const MAX_ID: u32 = 64;

/// `nf_conntrack_max`, as the sysctl's name (17 bytes with its NUL).
const NAME_LO: u64 = u64::from_le_bytes(*b"nf_connt");
const NAME_HI: u64 = u64::from_le_bytes(*b"rack_max");

/// Whether this NETFILTER_DROP drop is conntrack's, at a full table.
#[inline(always)]
pub fn table_full(skb: u64, o: &StructOffsets, c: &ConntrackOffsets) -> bool {
    if read::<u64>(skb, c.sk_buff_nfct) != Some(0) {
        return false;
    }
    // The drop's namespace: the device's, else the socket's.
    let mut net = 0u64;
    if let Some(dev) = read::<u64>(skb, o.sk_buff_dev) {
        net = read::<u64>(dev, o.net_device_net).unwrap_or(0);
    }
    if net == 0
        && let Some(sk) = read::<u64>(skb, o.sk_buff_sk)
    {
        net = read::<u64>(sk, o.sock_net).unwrap_or(0);
    }
    let gen_ = read::<u64>(net, c.net_gen).unwrap_or(0);
    if gen_ == 0 {
        return false;
    }
    let id = match CT_NET_ID.get(0) {
        Some(&id) => id,
        None => return false,
    };
    if id == NOT_FOUND {
        return false;
    }
    let id = if id != 0 { id } else { find_id(gen_, c) };
    let cnet = slot(gen_, id, c);
    let max_at = max_addr(cnet, c);
    let (Some(max), Some(count)) = (read::<u32>(max_at, 0), read::<u32>(cnet, c.cnet_count)) else {
        return false;
    };
    // 0: no limit.
    max != 0 && count >= max
}

/// `gen->ptr[id]`, 0 if unreadable.
#[inline(always)]
fn slot(gen_: u64, id: u32, c: &ConntrackOffsets) -> u64 {
    if c.generic_ptr == ABSENT || id == NOT_FOUND {
        return 0;
    }
    read::<u64>(gen_ + c.generic_ptr as u64 + id as u64 * 8, 0).unwrap_or(0)
}

/// The address of `nf_conntrack_max` if `cnet` is conntrack's state (its
/// sysctl table's NF_SYSCTL_CT_MAX entry is named so), else 0.
#[inline(always)]
fn max_addr(cnet: u64, c: &ConntrackOffsets) -> u64 {
    let Some(table) = read::<u64>(cnet, c.cnet_sysctl_header)
        .and_then(|h| read::<u64>(h, c.header_table))
        .filter(|t| *t != 0 && c.table_max_entry != ABSENT)
    else {
        return 0;
    };
    let entry = table + c.table_max_entry as u64;
    let name = read::<u64>(entry, c.table_procname).unwrap_or(0);
    if read::<u64>(name, 0) != Some(NAME_LO)
        || read::<u64>(name, 8) != Some(NAME_HI)
        || read::<u8>(name, 16) != Some(0)
    {
        return 0;
    }
    read::<u64>(entry, c.table_data).unwrap_or(0)
}

/// Searches `gen`'s ids once for conntrack's state, and remembers the result
/// (every namespace has its state at the same id).
#[inline(always)]
fn find_id(gen_: u64, c: &ConntrackOffsets) -> u32 {
    let len = read::<u32>(gen_, c.generic_len).unwrap_or(0);
    let mut found = NOT_FOUND;
    for id in 1..MAX_ID {
        if id >= len {
            break;
        }
        if max_addr(slot(gen_, id, c), c) != 0 {
            found = id;
            break;
        }
    }
    if let Some(p) = CT_NET_ID.get_ptr_mut(0) {
        // SAFETY: the map's only value; a racing CPU writes the same.
        unsafe { *p = found };
    }
    found
}
