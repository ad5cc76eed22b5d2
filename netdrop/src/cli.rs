//! Command line (clap derive; the doc comments are the help text).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Attribute Linux kernel packet drops to their cause, live.
#[derive(Debug, Parser)]
#[command(name = "netdrop", version, about, propagate_version = true)]
pub struct Cli {
    /// More logging on stderr (-v, -vv).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch drops live: a line per drop, a per-cause summary, exact totals on exit.
    Watch(WatchArgs),
    /// Watch for a while, then report: causes ranked, the listener/neighbour/table/device
    /// each hit, live values, what to change, and the kernel's counters beside netdrop's.
    Diagnose(DiagnoseArgs),
    /// Record drops, the kernel's exact counters and the context the diagnosis needs
    /// (sysctls, tables, listeners) to a file, for `netdrop replay` anywhere later.
    Record(RecordArgs),
    /// Show a recording again: the `watch` view (lines, summaries, diagnosis) or the
    /// `diagnose` report. Offline: needs no root and no access to the recorded machine.
    Replay(ReplayArgs),
    /// Drop-cause histograms, live: a chart row per interval, then distributions
    /// (drops/s and burst length per cause, neighbour resolution latency, accept
    /// queue at drop) with percentiles.
    Hist(HistArgs),
}

/// How histograms are shown and kept.
#[derive(Debug, Args)]
pub struct HistOptions {
    /// Drops of one cause closer together than this belong to one burst, ms.
    #[arg(long, value_name = "MS", default_value_t = 100.0, value_parser = positive_secs)]
    pub burst_gap_ms: f64,
    /// Also write HdrHistogram percentile distribution files (.hgrm, for plotting
    /// tools) into this directory.
    #[arg(long, value_name = "DIR")]
    pub hgrm: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct HistArgs {
    /// Output format (json: one JSON document with the numbers at the end).
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(short, long, value_name = "SECONDS", value_parser = positive_secs)]
    pub duration: Option<f64>,
    #[command(flatten)]
    pub hist: HistOptions,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub kernel: KernelArgs,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The recording to create (mode 0600; an existing file is never overwritten).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(short, long, value_name = "SECONDS", value_parser = positive_secs)]
    pub duration: Option<f64>,
    /// Seconds between progress lines on stderr.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = positive_secs)]
    pub interval: f64,
    /// Also keep the first N bytes (up to 256) of each dropped packet, from its
    /// network header: `replay --pcap` writes them for Wireshark.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub capture_bytes: Option<u32>,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub kernel: KernelArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A file written by `netdrop record` or `netdrop watch --record`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// Only the diagnosis report, as `netdrop diagnose` prints it.
    #[arg(long, conflicts_with = "hist")]
    pub report: bool,
    /// Drop-cause histograms instead of the lines (as `netdrop hist`).
    #[arg(long)]
    pub hist: bool,
    #[command(flatten)]
    pub hist_options: HistOptions,
    /// Write the recorded packet bytes (`record --capture-bytes`) as pcapng, with
    /// cause, reason, owner and location in each packet's comment.
    #[arg(long, value_name = "OUT.pcapng")]
    pub pcap: Option<PathBuf>,
    /// Pace the replay at the recorded speed (default: as fast as possible).
    #[arg(long)]
    pub realtime: bool,
    /// Seconds between per-cause summaries in the human view.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = positive_secs)]
    pub interval: f64,
    /// Drop lines per second per cause in the human view, on the recorded clock.
    #[arg(long, value_name = "N", default_value_t = 10.0)]
    pub lines_per_sec: f64,
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Output format (json: one JSON document).
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// How long to observe, seconds.
    #[arg(short, long, value_name = "SECONDS", default_value_t = 10.0, value_parser = positive_secs)]
    pub duration: f64,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub kernel: KernelArgs,
}

/// Which drops to show; they combine (AND). pid, netns, dev and cause are
/// applied in the kernel, and the counts cover only what they keep.
#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    /// Only drops of this process's sockets (threads included, new sockets too),
    /// plus drops with no socket in its network namespace.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Only drops in this network namespace: an inode number, an `ip netns` name or a path.
    #[arg(long, value_name = "NETNS")]
    pub netns: Option<String>,
    /// Only drops on this interface.
    #[arg(long, value_name = "NAME")]
    pub dev: Option<String>,
    /// Only these causes (repeat for several).
    #[arg(long, value_enum, value_name = "CAUSE")]
    pub cause: Vec<CauseArg>,
    /// Only packets from or to this port.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Only packets from or to this address.
    #[arg(long, value_name = "IP")]
    pub addr: Option<std::net::IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum CauseArg {
    NeighTableOverflow,
    NeighQueueFull,
    AcceptQueueFull,
    RpFilter,
    Other,
}

impl CauseArg {
    pub fn cause(self) -> crate::classify::Cause {
        use crate::classify::Cause;
        match self {
            CauseArg::NeighTableOverflow => Cause::NeighTableOverflow,
            CauseArg::NeighQueueFull => Cause::NeighQueueFull,
            CauseArg::AcceptQueueFull => Cause::AcceptQueueFull,
            CauseArg::RpFilter => Cause::RpFilter,
            CauseArg::Other => Cause::Other,
        }
    }
}

impl FilterArgs {
    pub fn spec(&self) -> crate::filter::FilterSpec {
        crate::filter::FilterSpec {
            pid: self.pid,
            netns: self.netns.clone(),
            dev: self.dev.clone(),
            causes: self.cause.iter().map(|c| c.cause()).collect(),
            port: self.port,
            addr: self.addr,
        }
    }
}

/// `--events-per-sec`: enough detail to attribute and show any cause, while a
/// storm of millions of drops per second costs the kernel one counter each and
/// the agent a bounded amount of work.
pub const DEFAULT_EVENTS_PER_SEC: u32 = 1000;

/// Where netdrop reads the kernel's facts, and how it buffers events.
#[derive(Debug, Args)]
pub struct KernelArgs {
    /// Ring buffer size for detail events, KiB (power of two, >= 4). Counts never depend on it.
    #[arg(long, value_name = "KIB", default_value_t = 1024, value_parser = ring_kib)]
    pub ring_buffer_kib: u32,
    /// Detail events per second per drop reason, decided in the kernel (0 = no
    /// limit). Counts stay exact; the rest is shown as held back.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_EVENTS_PER_SEC)]
    pub events_per_sec: u32,
    /// Hook drops on the skb:kfree_skb tracepoint even where the cheaper raw
    /// tracepoint is available (to compare the two, or work around a kernel).
    #[arg(long)]
    pub no_raw_tracepoint: bool,
    /// Seconds between snapshots of the kernel's counters, sysctls, listeners and neighbours.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = positive_secs)]
    pub snapshot_interval: f64,
    /// Kernel BTF to read reasons and struct layouts from.
    #[arg(long, value_name = "PATH", default_value = crate::kernel::DEFAULT_BTF)]
    pub btf: PathBuf,
    /// tracefs mount point (default: find it, or mount it at /sys/kernel/tracing).
    #[arg(long, value_name = "DIR")]
    pub tracefs: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Lines for a terminal.
    Human,
    /// JSON lines: {"type":"drop",...}, {"type":"neigh_create_failed",...}, {"type":"summary",...}.
    Json,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// Stop after this many seconds and print the summary (default: until Ctrl-C).
    #[arg(short, long, value_name = "SECONDS", value_parser = positive_secs)]
    pub duration: Option<f64>,
    /// Seconds between per-cause summaries in the human view.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = positive_secs)]
    pub interval: f64,
    /// Drop lines per second per cause in the human view (counts stay exact).
    #[arg(long, value_name = "N", default_value_t = 10.0)]
    pub lines_per_sec: f64,
    /// Also record everything to this file (as `netdrop record -o FILE`).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub kernel: KernelArgs,
}

fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

fn ring_kib(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(v) if v >= 4 && v.is_power_of_two() && v <= 1 << 20 => Ok(v),
        _ => Err(format!(
            "{s:?}: the ring buffer size must be a power of two between 4 and 1048576 KiB"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_bad_values_are_refused() {
        let cli =
            Cli::try_parse_from(["netdrop", "watch", "--output", "json", "--duration", "2.5"])
                .unwrap();
        let Command::Watch(w) = cli.command else {
            panic!("not watch")
        };
        assert_eq!(
            (w.output, w.duration, w.kernel.ring_buffer_kib),
            (OutputFormat::Json, Some(2.5), 1024)
        );
        let cli = Cli::try_parse_from(["netdrop", "diagnose", "-o", "json"]).unwrap();
        let Command::Diagnose(d) = cli.command else {
            panic!("not diagnose")
        };
        assert_eq!((d.output, d.duration), (OutputFormat::Json, 10.0));
        for bad in [
            vec!["netdrop", "watch", "--duration", "0"],
            vec!["netdrop", "watch", "--duration", "-1"],
            vec!["netdrop", "watch", "--ring-buffer-kib", "3"],
            vec!["netdrop", "watch", "--output", "xml"],
            vec!["netdrop", "watch", "--bogus"],
            vec!["netdrop"],
            vec!["netdrop", "diagnose", "--duration", "0"],
            vec!["netdrop", "diagnose", "--snapshot-interval", "x"],
            vec!["netdrop", "watch", "--cause", "bogus"],
            vec!["netdrop", "watch", "--pid", "-3"],
            vec!["netdrop", "watch", "--addr", "not-an-ip"],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
        }
    }
}
