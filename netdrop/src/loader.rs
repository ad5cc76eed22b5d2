//! Embeds the eBPF object, writes the config into it, loads and attaches the
//! usable hooks. Dropping [`Loaded`] detaches everything.

use anyhow::{Context, Result};
use aya::{Ebpf, EbpfLoader, programs::TracePoint};
use netdrop_common::names;

use crate::kernel::{KernelFacts, hooks::Attach};

/// The eBPF object built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netdrop.bpf.o"));

pub struct Loaded {
    pub ebpf: Ebpf,
    /// Labels of the attached hooks, e.g. `skb:kfree_skb`.
    pub attached: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Ring buffer size in bytes (a power of two, at least a page).
    pub ring_bytes: u32,
    pub emit_events: bool,
}

pub fn load(facts: &KernelFacts, opts: LoadOptions) -> Result<Loaded> {
    let mut config = facts.config;
    config.emit_events = u32::from(opts.emit_events);
    let mut ebpf = EbpfLoader::new()
        .override_global(names::CONFIG, &config, true)
        .map_max_entries(names::EVENTS, opts.ring_bytes)
        .load(OBJECT)
        .map_err(explain)
        .context("loading the eBPF object")?;
    let mut attached = Vec::new();
    for hook in &facts.usable {
        let Attach::Tracepoint { system, event } = hook.attach;
        let prog: &mut TracePoint = ebpf
            .program_mut(hook.program)
            .with_context(|| format!("program {} missing from the eBPF object", hook.program))?
            .try_into()?;
        prog.load()
            .map_err(explain)
            .with_context(|| format!("loading {}", hook.program))?;
        prog.attach(system, event)
            .map_err(explain)
            .with_context(|| format!("attaching to {}", hook.label()))?;
        attached.push(hook.label());
    }
    Ok(Loaded { ebpf, attached })
}

/// Turns a permission error into the one line an operator needs.
fn explain<E: std::error::Error + Send + Sync + 'static>(e: E) -> anyhow::Error {
    let text = format!("{e:#}");
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = src {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
                return anyhow::anyhow!(
                    "permission denied by the kernel ({text}): netdrop needs root (CAP_BPF, CAP_PERFMON)"
                );
            }
        }
        src = err.source();
    }
    anyhow::Error::new(e)
}
