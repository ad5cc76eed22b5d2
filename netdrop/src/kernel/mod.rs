//! Facts about the running kernel, read at start and never hard-coded:
//! tracepoint layouts (tracefs), drop reason names and struct offsets (BTF),
//! kernel symbols (kallsyms), and the hook table.

pub mod btf;
pub mod hooks;
pub mod kallsyms;
pub mod locations;
pub mod reasons;
pub mod tracefs;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use netdrop_common::{
    ABSENT, Config, ConntrackOffsets, KfreeSkbArgs, KfreeSkbOffsets, NeighCreateOffsets,
    NeighStateOffsets, RAW_ARGS, StructOffsets,
};

use self::{
    btf::{Btf, Param},
    hooks::{Attach, HOOKS, Hook},
    reasons::ReasonTable,
    tracefs::{Tracefs, TracefsError, TracepointFormat},
};

pub const DEFAULT_BTF: &str = "/sys/kernel/btf/vmlinux";
/// The module whose types tell a full conntrack table (`nf_conntrack_net`):
/// on most distribution kernels a module, its BTF split BTF beside vmlinux's.
pub const CONNTRACK_MODULE: &str = "nf_conntrack";
/// Where conntrack's NF_DROP verdict is freed (an nftables rule's drop is
/// freed in `nft_do_chain`).
pub const CONNTRACK_VERDICT_FREED_IN: &str = "nf_hook_slow";

/// Where to find the kernel's facts (defaults for a real run; tests point them elsewhere).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub btf: Option<PathBuf>,
    pub tracefs: Option<PathBuf>,
}

/// Everything learned about the running kernel before loading the programs.
pub struct KernelFacts {
    pub tracefs: Tracefs,
    pub reasons: ReasonTable,
    /// The hooks this kernel offers, and those it does not (with why).
    pub usable: Vec<Hook>,
    pub skipped: Vec<(Hook, String)>,
    /// Hooks attached only on request ([`Hook::only_for`]) that this kernel
    /// lacks: noticed by the loader only when they are asked for.
    pub missing_on_request: Vec<(Hook, String)>,
    pub config: Config,
    pub has_reason_field: bool,
    /// Kernels without reasons: the functions whose drops the probe
    /// classifies by location (empty when kallsyms shows none of them).
    pub by_location: Vec<String>,
    /// Why NETFILTER_DROP drops at a full conntrack table are not told from
    /// rule drops on this kernel (None: they are, or it has no such reason).
    pub conntrack_off: Option<String>,
}

impl KernelFacts {
    pub fn discover(src: &Sources) -> Result<KernelFacts> {
        let btf_path = src
            .btf
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BTF));
        if !btf_path.exists() {
            anyhow::bail!(
                "no kernel BTF at {}: netdrop needs a kernel built with CONFIG_DEBUG_INFO_BTF=y \
                 (or point --btf at a BTF file for this kernel)",
                btf_path.display()
            );
        }
        let mut btf = Btf::from_file(&btf_path)
            .with_context(|| format!("reading kernel BTF {}", btf_path.display()))?;
        let tracefs = Tracefs::locate(src.tracefs.as_deref())?;
        let reasons = ReasonTable::from_btf(&btf).unwrap_or_default();

        let mut config = Config::unknown();
        config.structs = struct_offsets(&btf);
        let Selection {
            usable,
            skipped,
            missing_on_request,
            has_reason_field,
        } = select_hooks(
            &mut config,
            |event| btf.tracepoint_args(event),
            |system, event| tracefs.format(system, event),
        )?;
        if has_reason_field && let Some(v) = reasons.value("NO_SOCKET") {
            config.reason_no_socket = v;
        }
        let mut conntrack_off = None;
        let load_syms = || kallsyms::Kallsyms::load("/proc/kallsyms".as_ref()).unwrap_or_default();
        if has_reason_field && let Some(v) = reasons.value("NETFILTER_DROP") {
            let module_btf = btf_path.with_file_name(CONNTRACK_MODULE);
            let loaded = Path::new("/sys/module").join(CONNTRACK_MODULE).exists();
            let found = conntrack_btf(&mut btf, &module_btf, loaded).and_then(|c| {
                let syms = load_syms();
                let (start, end) = locations::function_range(&syms, CONNTRACK_VERDICT_FREED_IN)
                    .ok_or_else(|| format!("no {CONNTRACK_VERDICT_FREED_IN} in /proc/kallsyms"))?;
                Ok(ConntrackOffsets {
                    reason: v,
                    hook_start: start,
                    hook_end: end,
                    ..c
                })
            });
            match found {
                Ok(c) => config.conntrack = c,
                Err(why) => conntrack_off = Some(why),
            }
        }
        let mut by_location = Vec::new();
        if !has_reason_field {
            // No reasons: classify by the freeing function (kernel/locations.rs).
            let syms = load_syms();
            let (ranges, names) = locations::ranges(&syms);
            config.n_locations = ranges.len() as u32;
            config.locations[..ranges.len()].copy_from_slice(&ranges);
            by_location = names;
        }
        Ok(KernelFacts {
            by_location,
            conntrack_off,
            tracefs,
            reasons,
            usable,
            skipped,
            missing_on_request,
            config,
            has_reason_field,
        })
    }
}

/// Which hooks a kernel offers (the rest of [`KernelFacts`] comes with them).
#[derive(Debug)]
pub struct Selection {
    pub usable: Vec<Hook>,
    pub skipped: Vec<(Hook, String)>,
    pub missing_on_request: Vec<(Hook, String)>,
    pub has_reason_field: bool,
}

/// Decides from the kernel's facts which hooks are usable, filling the raw
/// tracepoint's argument positions and the tracepoints' record offsets into
/// `config` (whose `structs` are already read). `raw_params` gives a raw
/// tracepoint's BTF prototype (`Btf::tracepoint_args`), `format` a tracepoint's
/// tracefs format; nothing else is read (the tests give fixtures).
pub fn select_hooks(
    config: &mut Config,
    raw_params: impl Fn(&str) -> Option<Vec<Param>>,
    mut format: impl FnMut(&str, &str) -> Result<TracepointFormat, TracefsError>,
) -> Result<Selection, TracefsError> {
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    let mut missing_on_request = Vec::new();
    let mut has_reason_field = false;
    for hook in HOOKS {
        if let Attach::RawTracepoint { event } = hook.attach {
            let args = raw_params(event)
                .ok_or_else(|| format!("no prototype for {event} in the kernel's BTF"))
                .and_then(|params| kfree_skb_args_of(&params, &config.structs));
            match args {
                Ok(args) => {
                    config.kfree_skb_args = args;
                    usable.push(*hook);
                }
                Err(why) => skipped.push((*hook, why)),
            }
            continue;
        }
        // Function hooks are tried at load: only the kernel can say if it allows them.
        let Attach::Tracepoint { system, event } = hook.attach else {
            usable.push(*hook);
            continue;
        };
        let format = match format(system, event) {
            Ok(f) => f,
            Err(e @ TracefsError::Missing { .. }) if hook.only_for.is_some() => {
                missing_on_request.push((*hook, e.to_string()));
                continue;
            }
            Err(e @ TracefsError::Missing { .. }) if !hook.required => {
                skipped.push((*hook, e.to_string()));
                continue;
            }
            Err(e) => return Err(e),
        };
        match (system, event) {
            ("skb", "kfree_skb") => {
                config.kfree_skb = kfree_skb_offsets(&format);
                has_reason_field = config.kfree_skb.reason != ABSENT;
            }
            ("neigh", "neigh_create") => config.neigh_create = neigh_create_offsets(&format),
            ("sock", "inet_sock_set_state") => {
                config.sock_set_state.skaddr = format.offset("skaddr");
                config.sock_set_state.newstate = format.offset("newstate");
            }
            ("neigh", "neigh_update") => config.neigh_update = neigh_state_offsets(&format),
            ("neigh", "neigh_timer_handler") => {
                config.neigh_timer = neigh_state_offsets(&format);
            }
            _ => {}
        }
        usable.push(*hook);
    }
    // Reasons are known from skb:kfree_skb's format (the same kernel): a raw
    // tracepoint without them where the tracepoint has them would lose them.
    if has_reason_field && config.kfree_skb_args.reason == ABSENT {
        let raw = |h: &Hook| matches!(h.attach, Attach::RawTracepoint { .. });
        if let Some(i) = usable.iter().position(raw) {
            let hook = usable.remove(i);
            config.kfree_skb_args = KfreeSkbArgs::absent();
            let why = "its prototype has no reason argument, but skb:kfree_skb has a reason field";
            skipped.push((hook, why.to_string()));
            skipped.sort_by_key(|(h, _)| HOOKS.iter().position(|t| t.is(h)));
        }
    }
    Ok(Selection {
        usable,
        skipped,
        missing_on_request,
        has_reason_field,
    })
}

/// kfree_skb's argument positions for the raw tracepoint, or why it cannot be
/// used here (the tracepoint `skb:kfree_skb` is then used instead).
pub fn raw_kfree_skb_args(
    btf: &Btf,
    event: &str,
    structs: &StructOffsets,
) -> Result<KfreeSkbArgs, String> {
    let params = btf
        .tracepoint_args(event)
        .ok_or_else(|| format!("no prototype for {event} in the kernel's BTF"))?;
    kfree_skb_args_of(&params, structs)
}

/// [`raw_kfree_skb_args`] from the prototype's parameters (after `void *__data`).
/// `skb` is needed; `location`, `reason` (5.17+) and `rx_sk` (6.12+) are used
/// where present, else ABSENT: the probe reads 0 for them (reason 0 for every
/// drop before 5.17, as the tracepoint does without a reason field).
pub fn kfree_skb_args_of(
    params: &[Param],
    structs: &StructOffsets,
) -> Result<KfreeSkbArgs, String> {
    // By name (the probe stub's), else by type (the unnamed typedef's).
    let pos = |name: &str, ty: &str| -> Result<u32, String> {
        let found = params
            .iter()
            .position(|p| p.name == name)
            .or_else(|| params.iter().position(|p| p.name.is_empty() && p.ty == ty));
        match found {
            Some(i) if (i as u32) < RAW_ARGS => Ok(i as u32),
            Some(i) => Err(format!(
                "its {name} is argument {i}, past the {RAW_ARGS} read"
            )),
            None => Ok(ABSENT),
        }
    };
    let args = KfreeSkbArgs {
        skb: pos("skb", "struct sk_buff *")?,
        location: pos("location", "void *")?,
        reason: pos("reason", "enum skb_drop_reason")?,
        rx_sk: pos("rx_sk", "struct sock *")?,
    };
    if args.skb == ABSENT {
        let shown: Vec<String> = params
            .iter()
            .map(|p| format!("{} {}", p.ty, p.name).trim().to_string())
            .collect();
        return Err(format!(
            "its prototype ({}) has no skb argument",
            shown.join(", ")
        ));
    }
    if structs.sk_buff_protocol == ABSENT {
        return Err("sk_buff.protocol is not in the kernel's BTF".into());
    }
    Ok(args)
}

pub fn kfree_skb_offsets(f: &TracepointFormat) -> KfreeSkbOffsets {
    KfreeSkbOffsets {
        skbaddr: f.offset("skbaddr"),
        location: f.offset("location"),
        rx_sk: f.offset("rx_sk"),
        protocol: f.offset("protocol"),
        reason: f.offset("reason"),
        _pad: 0,
    }
}

pub fn neigh_create_offsets(f: &TracepointFormat) -> NeighCreateOffsets {
    NeighCreateOffsets {
        family: f.offset("family"),
        dev: f.offset("dev"),
        entries: f.offset("entries"),
        created: f.offset("created"),
        primary_key4: f.offset("primary_key4"),
        primary_key6: f.offset("primary_key6"),
    }
}

/// neigh_update and neigh_timer_handler (`new_state` is neigh_update's only).
/// A field of another size than the probe reads stays ABSENT.
pub fn neigh_state_offsets(f: &TracepointFormat) -> NeighStateOffsets {
    let sized = |name: &str, size: u32| match f.field(name) {
        Some(field) if field.size == size => field.offset,
        _ => ABSENT,
    };
    NeighStateOffsets {
        family: sized("family", 4),
        dev: sized("dev", 4),
        nud_state: sized("nud_state", 1),
        new_state: sized("new_state", 1),
        dead: sized("dead", 1),
        primary_key4: sized("primary_key4", 4),
        primary_key6: sized("primary_key6", 16),
        _pad: 0,
    }
}

/// [`conntrack_offsets`] from vmlinux's BTF, else (conntrack a module) from
/// the module's split BTF at `module_btf`, added to `btf` on top of
/// vmlinux's. `loaded`: the module is loaded (`/sys/module/nf_conntrack`).
/// The error says why a full table is not told apart: the module is not
/// loaded (then no table can fill until it is: netdrop reads the offsets
/// once, at start, into the probe's read-only config), or its BTF lacks
/// something.
pub fn conntrack_btf(
    btf: &mut Btf,
    module_btf: &Path,
    loaded: bool,
) -> Result<ConntrackOffsets, String> {
    let in_vmlinux = conntrack_offsets(btf);
    if in_vmlinux.is_ok() || btf.struct_size("nf_conntrack_net").is_some() {
        // Built in (or vmlinux has conntrack's own state and lacks something else).
        return in_vmlinux;
    }
    if !module_btf.exists() {
        return Err(if loaded {
            format!(
                "nf_conntrack is loaded but has no BTF at {} (a kernel built without \
                 CONFIG_DEBUG_INFO_BTF_MODULES)",
                module_btf.display()
            )
        } else {
            "nf_conntrack is not loaded: no conntrack table can be full now; \
             restart netdrop once it is loaded to tell its full-table drops apart"
                .to_string()
        });
    }
    btf.add_split_file(module_btf)
        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
    conntrack_offsets(btf).map_err(|why| format!("{why} (nor in {})", module_btf.display()))
}

/// What the probe follows to tell a full conntrack table from a rule's drop
/// (`ConntrackOffsets`; its `reason` left ABSENT and its `nf_hook_slow`
/// range empty for the caller), or what
/// the kernel's BTF lacks.
pub fn conntrack_offsets(btf: &Btf) -> Result<ConntrackOffsets, String> {
    let off = |s: &str, path: &[&str], size: Option<u32>| -> Result<u32, String> {
        match btf.member_path(s, path) {
            Some(m) if size.is_none_or(|n| m.size == n) => Ok(m.offset),
            _ => Err(format!("{s}.{}", path.join("."))),
        }
    };
    let lacks = |what: String| format!("no {what} in the kernel's BTF");
    let max_index = btf
        .enum_values("nf_ct_sysctl_index")
        .and_then(|v| v.into_iter().find(|(n, _)| n == "NF_SYSCTL_CT_MAX"))
        .map(|(_, v)| v)
        .ok_or_else(|| lacks("NF_SYSCTL_CT_MAX".into()))?;
    let entry = btf
        .struct_size("ctl_table")
        .ok_or_else(|| lacks("struct ctl_table".into()))?;
    let table_max_entry = u32::try_from(max_index)
        .ok()
        .and_then(|i| i.checked_mul(entry))
        .ok_or_else(|| lacks("NF_SYSCTL_CT_MAX in range".into()))?;
    let c = ConntrackOffsets {
        reason: ABSENT,
        sk_buff_nfct: off("sk_buff", &["_nfct"], Some(8)).map_err(lacks)?,
        net_gen: off("net", &["gen"], Some(8)).map_err(lacks)?,
        generic_len: off("net_generic", &["s", "len"], Some(4)).map_err(lacks)?,
        generic_ptr: off("net_generic", &["ptr"], None).map_err(lacks)?,
        cnet_count: off("nf_conntrack_net", &["count"], Some(4)).map_err(lacks)?,
        cnet_sysctl_header: off("nf_conntrack_net", &["sysctl_header"], Some(8)).map_err(lacks)?,
        header_table: off("ctl_table_header", &["ctl_table"], Some(8)).map_err(lacks)?,
        table_max_entry,
        table_procname: off("ctl_table", &["procname"], Some(8)).map_err(lacks)?,
        table_data: off("ctl_table", &["data"], Some(8)).map_err(lacks)?,
        _pad: 0,
        hook_start: 0,
        hook_end: 0,
    };
    Ok(c)
}

/// Struct member offsets the kernel side follows. Anything BTF does not have
/// stays ABSENT and the probe simply does not read it.
pub fn struct_offsets(btf: &Btf) -> StructOffsets {
    let off = |s: &str, path: &[&str], size: u32| -> u32 {
        match btf.member_path(s, path) {
            Some(m) if m.size == size => m.offset,
            _ => ABSENT,
        }
    };
    StructOffsets {
        sk_buff_dev: off("sk_buff", &["dev"], 8),
        sk_buff_sk: off("sk_buff", &["sk"], 8),
        sk_buff_head: off("sk_buff", &["head"], 8),
        sk_buff_network_header: off("sk_buff", &["network_header"], 2),
        sk_buff_len: off("sk_buff", &["len"], 4),
        sk_buff_data: off("sk_buff", &["data"], 8),
        // sk_buff_data_t is an offset (unsigned int) where pointers are 64-bit.
        sk_buff_tail: off("sk_buff", &["tail"], 4),
        sk_buff_protocol: off("sk_buff", &["protocol"], 2),
        net_device_ifindex: off("net_device", &["ifindex"], 4),
        net_device_name: off("net_device", &["name"], 16),
        net_device_net: off("net_device", &["nd_net", "net"], 8),
        net_inum: off("net", &["ns", "inum"], 4),
        // u64 since 5.12; an atomic64_t set on first use before (0 until then).
        net_cookie: off("net", &["net_cookie"], 8),
        sock_net: off("sock", &["__sk_common", "skc_net", "net"], 8),
        sock_family: off("sock", &["__sk_common", "skc_family"], 2),
        sock_num: off("sock", &["__sk_common", "skc_num"], 2),
        sock_rcv_saddr: off("sock", &["__sk_common", "skc_rcv_saddr"], 4),
        sock_v6_rcv_saddr: off("sock", &["__sk_common", "skc_v6_rcv_saddr"], 16),
        sock_ack_backlog: off("sock", &["sk_ack_backlog"], 4),
        sock_max_ack_backlog: off("sock", &["sk_max_ack_backlog"], 4),
        sock_state: off("sock", &["__sk_common", "skc_state"], 1),
        sock_uid: off("sock", &["sk_uid", "val"], 4),
        sock_socket: off("sock", &["sk_socket"], 8),
        socket_file: off("socket", &["file"], 8),
        file_inode: off("file", &["f_inode"], 8),
        inode_ino: off("inode", &["i_ino"], 8),
    }
}
