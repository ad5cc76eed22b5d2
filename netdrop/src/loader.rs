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
    hooks::{Attach, Feature, HOOKS, Hook, NotUsed, Stage, slots},
};

/// The eBPF object built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netdrop.bpf.o"));

pub struct Loaded {
    pub ebpf: Ebpf,
    /// Labels of the attached hooks, e.g. `skb:kfree_skb`.
    pub attached: Vec<String>,
    /// Optional slots no alternative could fill: (slot, [(hook, why)]).
    pub unavailable: Vec<(&'static str, Vec<(String, String)>)>,
    /// Every wanted hook not used (skipped at start or refused by the
    /// kernel), in table order: one notice each (`hooks::notice`).
    pub not_used: Vec<NotUsed>,
}

impl Loaded {
    /// The hook attached for `slot`, if any.
    pub fn attached_in(&self, slot: &str) -> Option<&'static Hook> {
        self.attached
            .iter()
            .filter_map(|l| crate::kernel::hooks::by_label(l))
            .find(|h| h.slot == slot)
    }
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
    /// fentry hooks allowed (else their kprobe alternatives are used): `--no-fentry`.
    pub fentry: bool,
    /// aya-log-ebpf's `AYA_LOG_LEVEL`: 0 (off) unless `-v` ([`crate::kernel_log::level`]).
    pub kernel_log: u8,
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

    /// Whether `hook` is to be tried (`--no-raw-tracepoint`, `--no-fentry`,
    /// hooks of features not asked for).
    pub fn wants_hook(&self, hook: &Hook) -> bool {
        let allowed = match hook.attach {
            Attach::RawTracepoint { .. } => self.raw_tracepoint,
            Attach::FEntry { .. } => self.fentry,
            Attach::Tracepoint { .. } | Attach::KProbe { .. } => true,
        };
        allowed && hook.only_for.is_none_or(|f| self.wants(f))
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
        .override_global(aya_log::LEVEL, &opts.kernel_log, true)
        .map_max_entries(names::EVENTS, opts.ring_bytes)
        .load(OBJECT)
        .map_err(explain)
        .context("loading the eBPF object")?;
    let mut btf = None;
    let mut attached = Vec::new();
    let mut unavailable = Vec::new();
    let mut not_used = Vec::new();
    let wanted: Vec<Hook> = HOOKS
        .iter()
        .filter(|h| opts.wants_hook(h))
        .copied()
        .collect();
    for (slot, alternatives) in slots(&wanted) {
        // Alternatives found unusable at start, then those the kernel refuses.
        let mut slot_not_used: Vec<NotUsed> = alternatives
            .iter()
            .filter_map(|h| skipped_at_start(facts, h))
            .collect();
        let usable: Vec<Hook> = alternatives
            .iter()
            .filter(|h| facts.usable.iter().any(|u| u.is(h)))
            .copied()
            .collect();
        let won = attach_slot(&mut ebpf, &usable, &mut btf, &mut slot_not_used)?;
        let order = |n: &NotUsed| alternatives.iter().position(|h| h.is(&n.hook));
        slot_not_used.sort_by_key(order);
        match won {
            Some(hook) => attached.push(hook.label()),
            None => unavailable.push((
                slot,
                slot_not_used
                    .iter()
                    .map(|n| (n.hook.label(), n.why.clone()))
                    .collect(),
            )),
        }
        not_used.extend(slot_not_used);
    }
    Ok(Loaded {
        ebpf,
        attached,
        unavailable,
        not_used,
    })
}

/// Why `hook` was found unusable at start (BTF, tracefs), if it was.
fn skipped_at_start(facts: &KernelFacts, hook: &Hook) -> Option<NotUsed> {
    let (_, why) = facts
        .skipped
        .iter()
        .chain(&facts.missing_on_request)
        .find(|(h, _)| h.is(hook))?;
    Some(NotUsed {
        hook: *hook,
        stage: Stage::Skipped,
        why: why.clone(),
    })
}

/// Tries the alternatives in order; the first that attaches wins. Each one
/// refused goes to `not_used`. A required slot fails (an error) only when its
/// last alternative does.
fn attach_slot(
    ebpf: &mut Ebpf,
    alternatives: &[Hook],
    btf: &mut Option<Btf>,
    not_used: &mut Vec<NotUsed>,
) -> Result<Option<Hook>> {
    for (i, hook) in alternatives.iter().enumerate() {
        match attach_one(ebpf, hook, btf) {
            Ok(()) => return Ok(Some(*hook)),
            Err(e) if hook.required && i + 1 == alternatives.len() => {
                let tried: String = not_used
                    .iter()
                    .map(|n| format!(" (after {}: {})", n.hook.label(), n.why))
                    .collect();
                return Err(explain(e))
                    .with_context(|| format!("attaching {}{tried}", hook.label()));
            }
            Err(e) => {
                tracing::debug!("{} refused: {e:#}", hook.label());
                not_used.push(NotUsed {
                    hook: *hook,
                    stage: Stage::Refused,
                    why: refusal_reason(&e),
                });
            }
        }
    }
    Ok(None)
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

/// Why the kernel refused a program, short: the verifier's complaint (the
/// last line of its log that is not a statistic), else the innermost error.
fn refusal_reason(e: &ProgramError) -> String {
    if let ProgramError::LoadError {
        io_error,
        verifier_log,
    } = e
    {
        return load_refusal(&verifier_log.to_string(), io_error);
    }
    short(e)
}

/// A refused BPF_PROG_LOAD: the verifier's complaint, else the syscall's error.
fn load_refusal(verifier_log: &str, io_error: &std::io::Error) -> String {
    match verifier_complaint(verifier_log) {
        Some(line) => format!("verifier: {line}"),
        None => format!("loading: {}", short(io_error)),
    }
}

/// The verifier's complaint in its log: the last line that is not one of the
/// statistics it ends with (`processed N insns ...`, `verification time`,
/// `stack depth`).
fn verifier_complaint(log: &str) -> Option<&str> {
    const STATS: [&str; 4] = [
        "processed ",
        "verification time",
        "stack depth",
        "max_states_per_insn",
    ];
    log.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !STATS.iter().any(|s| l.starts_with(s)))
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

    fn options(raw_tracepoint: bool, fentry: bool) -> LoadOptions {
        LoadOptions {
            ring_bytes: 4096,
            emit_events: true,
            filter: netdrop_common::Config::unknown().filter,
            neigh_states: false,
            capture_bytes: None,
            event_limit: 0,
            raw_tracepoint,
            fentry,
            kernel_log: 0,
        }
    }

    fn wanted(opts: LoadOptions) -> Vec<String> {
        HOOKS
            .iter()
            .filter(|h| opts.wants_hook(h))
            .map(Hook::label)
            .collect()
    }

    #[test]
    fn no_fentry_and_no_raw_tracepoint_leave_their_alternatives() {
        let all = wanted(options(true, true));
        assert!(all.contains(&"fentry:tcp_conn_request".to_string()));
        assert!(all.contains(&"raw_tracepoint:kfree_skb".to_string()));
        let no_fentry = wanted(options(true, false));
        assert!(!no_fentry.iter().any(|l| l.starts_with("fentry:")));
        assert!(no_fentry.contains(&"kprobe:tcp_conn_request".to_string()));
        assert_eq!(no_fentry.len() + 1, all.len());
        let no_raw = wanted(options(false, true));
        assert!(!no_raw.iter().any(|l| l.starts_with("raw_tracepoint:")));
        assert!(no_raw.contains(&"skb:kfree_skb".to_string()));
        // Neighbour state hooks only when asked for.
        assert!(!all.contains(&"neigh:neigh_update".to_string()));
        let mut states = options(true, true);
        states.neigh_states = true;
        assert!(wanted(states).contains(&"neigh:neigh_update".to_string()));
    }

    #[test]
    fn the_verifier_complaint_is_its_last_line_before_the_statistics() {
        let log = "func#0 @0\n\
                   0: R1=ctx() R10=fp0\n\
                   12: (79) r1 = *(u64 *)(r10 -184)\n\
                   invalid read from stack R10 off=-184 size=8\n\
                   verification time 35 usec\n\
                   stack depth 184\n\
                   processed 12 insns (limit 1000000) max_states_per_insn 0 total_states 1 \
                   peak_states 1 mark_read 1\n";
        assert_eq!(
            verifier_complaint(log),
            Some("invalid read from stack R10 off=-184 size=8")
        );
        assert_eq!(verifier_complaint(""), None);
        assert_eq!(verifier_complaint("processed 0 insns\n\n"), None);
        let eacces = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(
            load_refusal(log, &eacces),
            "verifier: invalid read from stack R10 off=-184 size=8"
        );
        let einval = std::io::Error::from_raw_os_error(libc::EINVAL);
        assert_eq!(
            load_refusal("", &einval),
            "loading: Invalid argument (os error 22)"
        );
    }
}
