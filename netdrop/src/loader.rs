//! Embeds the eBPF object, writes the config into it, loads and attaches the
//! usable hooks slot by slot (first alternative that attaches wins). Dropping
//! [`Loaded`] detaches everything.

use anyhow::{Context, Result};
use aya::{
    Btf, Ebpf, EbpfLoader,
    programs::{FEntry, KProbe, ProgramError, RawTracePoint, TracePoint},
};
use netdrop_common::{MAX_CAPTURE, NET_HDR_LEN, names};

use crate::kernel::{
    KernelFacts,
    hooks::{Attach, Feature, Hook, SlotOutcome, slots},
};

/// The eBPF object built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netdrop.bpf.o"));

pub struct Loaded {
    pub ebpf: Ebpf,
    /// Labels of the attached hooks, e.g. `skb:kfree_skb`.
    pub attached: Vec<String>,
    /// Optional slots no alternative could fill: (slot, [(hook, why)]).
    pub unavailable: Vec<(&'static str, Vec<(String, String)>)>,
}

#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Ring buffer size in bytes (a power of two, at least a page).
    pub ring_bytes: u32,
    pub emit_events: bool,
    /// What the kernel keeps (`--pid`, `--netns`, `--dev`, `--cause`).
    pub filter: netdrop_common::Filter,
    /// Neighbour state events (`Record::NeighState`): attaches neigh_update and
    /// neigh_timer_handler and makes neigh_create send successful creates.
    pub neigh_states: bool,
    /// Bytes of each dropped packet to copy from its network header: None →
    /// 64; Some(n) → n, at least 64 (addresses and ports need them), at most
    /// 256 (more is refused).
    pub capture_bytes: Option<u32>,
    /// Detail events per second per reason slot, over all CPUs (0 = no limit).
    pub event_limit: u32,
    /// Raw tracepoint hooks allowed (else their tracepoint alternatives are used).
    pub raw_tracepoint: bool,
}

/// The capture length the kernel side gets for `capture_bytes`.
pub fn capture_len(capture_bytes: Option<u32>) -> Result<u32> {
    const MAX: u32 = MAX_CAPTURE as u32;
    const MIN: u32 = NET_HDR_LEN as u32;
    match capture_bytes {
        None => Ok(MIN),
        Some(n) if n > MAX => anyhow::bail!(
            "cannot capture {n} bytes of each dropped packet: at most {MAX} (the event's buffer)"
        ),
        Some(n) => Ok(n.max(MIN)),
    }
}

impl LoadOptions {
    /// Whether the hooks only attached for `feature` are wanted.
    pub fn wants(&self, feature: Feature) -> bool {
        match feature {
            Feature::NeighStates => self.neigh_states,
        }
    }

    fn wants_hook(&self, hook: &Hook) -> bool {
        let raw = matches!(hook.attach, Attach::RawTracepoint { .. });
        hook.only_for.is_none_or(|f| self.wants(f)) && (self.raw_tracepoint || !raw)
    }
}

pub fn load(facts: &KernelFacts, opts: LoadOptions) -> Result<Loaded> {
    let mut config = facts.config;
    config.emit_events = u32::from(opts.emit_events);
    config.filter = opts.filter;
    config.emit_neigh_states = u32::from(opts.neigh_states);
    config.net_hdr_len = capture_len(opts.capture_bytes)?;
    config.event_limit = opts.event_limit;
    let mut ebpf = EbpfLoader::new()
        .override_global(names::CONFIG, &config, true)
        .map_max_entries(names::EVENTS, opts.ring_bytes)
        .load(OBJECT)
        .map_err(explain)
        .context("loading the eBPF object")?;
    let mut btf = None;
    let mut attached = Vec::new();
    let mut unavailable = Vec::new();
    let wanted: Vec<Hook> = facts
        .usable
        .iter()
        .filter(|h| opts.wants_hook(h))
        .copied()
        .collect();
    for (slot, alternatives) in slots(&wanted) {
        match attach_slot(&mut ebpf, &alternatives, &mut btf)? {
            SlotOutcome::Attached(label) => attached.push(label),
            SlotOutcome::Unavailable(why) => unavailable.push((slot, why)),
        }
    }
    // Asked-for hooks whose tracepoint this kernel lacks: a notice, not an error.
    for (hook, why) in &facts.missing_on_request {
        if opts.wants_hook(hook) {
            unavailable.push((hook.slot, vec![(hook.label(), why.clone())]));
        }
    }
    Ok(Loaded {
        ebpf,
        attached,
        unavailable,
    })
}

fn attach_slot(
    ebpf: &mut Ebpf,
    alternatives: &[Hook],
    btf: &mut Option<Btf>,
) -> Result<SlotOutcome> {
    let mut refused = Vec::new();
    for (i, hook) in alternatives.iter().enumerate() {
        match attach_one(ebpf, hook, btf) {
            Ok(()) => return Ok(SlotOutcome::Attached(hook.label())),
            // A required slot fails only when its last alternative does.
            Err(e) if hook.required && i + 1 == alternatives.len() => {
                let tried: String = refused
                    .iter()
                    .map(|(h, why)| format!(" (after {h}: {why})"))
                    .collect();
                return Err(explain(e))
                    .with_context(|| format!("attaching {}{tried}", hook.label()));
            }
            Err(e) => {
                tracing::debug!("{} refused: {e:#}", hook.label());
                refused.push((hook.label(), short(&e)));
            }
        }
    }
    Ok(SlotOutcome::Unavailable(refused))
}

fn attach_one(ebpf: &mut Ebpf, hook: &Hook, btf: &mut Option<Btf>) -> Result<(), ProgramError> {
    let prog = ebpf
        .program_mut(hook.program)
        .ok_or_else(|| ProgramError::UnexpectedProgramType)?;
    match hook.attach {
        Attach::RawTracepoint { event } => {
            let p: &mut RawTracePoint = prog.try_into()?;
            p.load()?;
            p.attach(event)?;
        }
        Attach::Tracepoint { system, event } => {
            let p: &mut TracePoint = prog.try_into()?;
            p.load()?;
            p.attach(system, event)?;
        }
        Attach::KProbe { function } => {
            let p: &mut KProbe = prog.try_into()?;
            p.load()?;
            p.attach(function, 0)?;
        }
        Attach::FEntry { function } => {
            if btf.is_none() {
                *btf = Some(Btf::from_sys_fs().map_err(ProgramError::Btf)?);
            }
            let p: &mut FEntry = prog.try_into()?;
            p.load(function, btf.as_ref().expect("set above"))?;
            p.attach()?;
        }
    }
    Ok(())
}

/// The innermost message of an error chain, for a one-line notice.
fn short(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    msg.lines().next().unwrap_or_default().to_string()
}

/// Turns a permission error into the one line an operator needs.
fn explain<E: std::error::Error + Send + Sync + 'static>(e: E) -> anyhow::Error {
    let text = format!("{e:#}");
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = src {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
        {
            return anyhow::anyhow!(
                "permission denied by the kernel ({text}): netdrop needs root (CAP_BPF, CAP_PERFMON)"
            );
        }
        src = err.source();
    }
    anyhow::Error::new(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_length_defaults_floors_and_refuses() {
        assert_eq!(capture_len(None).unwrap(), 64);
        assert_eq!(capture_len(Some(0)).unwrap(), 64);
        assert_eq!(capture_len(Some(20)).unwrap(), 64);
        assert_eq!(capture_len(Some(128)).unwrap(), 128);
        assert_eq!(capture_len(Some(256)).unwrap(), 256);
        let err = capture_len(Some(257)).unwrap_err().to_string();
        assert!(err.contains("257") && err.contains("at most 256"), "{err}");
        assert!(capture_len(Some(u32::MAX)).is_err());
    }
}
