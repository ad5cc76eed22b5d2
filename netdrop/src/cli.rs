//! Command line (clap derive; the doc comments are the help text).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::style::ColorChoice;

/// Attribute Linux kernel packet drops to their cause, live.
#[derive(Debug, Parser)]
#[command(name = "netdrop", version, about, propagate_version = true)]
pub struct Cli {
    /// More logging on stderr (-v, -vv).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Colour in the human views and on stderr: auto (on a terminal, unless NO_COLOR
    /// is set), always, never. JSON is never coloured.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto,
          global = true)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch drops live: on a terminal one screen updating in place (causes ranked,
    /// groups, advice); piped or with --lines a line per drop and a per-cause summary;
    /// exact totals on exit.
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
    /// Run as an agent with a Prometheus/OpenMetrics endpoint (/metrics): drops by
    /// cause, namespace and group, the kernel's counters, saturation gauges that
    /// move before the drops (neighbour table, accept queues, conntrack), the advice.
    Serve(ServeArgs),
    /// Print a shell completion script (bash, zsh, fish) on stdout.
    Completions(CompletionsArgs),
    /// Write the manual pages (netdrop.1 and one per subcommand, netdrop-watch.1 …)
    /// into a directory, or print netdrop.1 on stdout.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: crate::manual::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write every page here (created if missing; pages already there are replaced).
    /// Default: print netdrop.1 on stdout (`netdrop man | man -l -`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port of the metrics endpoint (0.0.0.0:9617 to be scraped from
    /// other hosts).
    #[arg(long, value_name = "ADDR:PORT", default_value = crate::serve::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// Series kept per cause for namespaces, groups and saturation gauges
    /// (1 to 1000); the rest add up in one `other` series.
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top: u16,
    /// Seconds a network namespace's series outlive it (gone from the snapshots,
    /// no drops), 0.001 to 31536000.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::serve::state::RETAIN_S,
          value_parser = duration_secs, allow_negative_numbers = true)]
    pub retain: f64,
    /// Seconds between refreshes of the diagnosis behind the groups and advice
    /// (0.01 to 3600).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = interval_secs,
          allow_negative_numbers = true)]
    pub interval: f64,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub kernel: KernelArgs,
}

/// How histograms are shown and kept.
#[derive(Debug, Args)]
pub struct HistOptions {
    /// Drops of one cause closer together than this belong to one burst, ms
    /// (0.001 to 3600000).
    #[arg(long, value_name = "MS", default_value_t = 100.0, value_parser = burst_gap_ms,
          allow_negative_numbers = true)]
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
    /// Stop after this many seconds, 0.001 to 31536000 (365 days; default: until Ctrl-C).
    #[arg(short, long, value_name = "SECONDS", value_parser = duration_secs,
          allow_negative_numbers = true)]
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
    /// Stop after this many seconds, 0.001 to 31536000 (365 days; default: until Ctrl-C).
    #[arg(short, long, value_name = "SECONDS", value_parser = duration_secs,
          allow_negative_numbers = true)]
    pub duration: Option<f64>,
    /// Seconds between progress lines on stderr (0.01 to 3600).
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = interval_secs,
          allow_negative_numbers = true)]
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
    /// Seconds between per-cause summaries in the line view, and between refreshes of
    /// the live screen's groups and advice, on the recorded clock (0.01 to 3600;
    /// default 5, 1 on the screen).
    #[arg(long, value_name = "SECONDS", value_parser = interval_secs,
          allow_negative_numbers = true)]
    pub interval: Option<f64>,
    /// Print lines (the watch view's lines and summaries) even on a terminal, instead
    /// of the live screen.
    #[arg(long)]
    pub lines: bool,
    /// Drop lines per second per cause in the human view, on the recorded clock
    /// (0.001 to 1000000).
    #[arg(long, value_name = "N", default_value_t = 10.0, value_parser = lines_per_sec,
          allow_negative_numbers = true)]
    pub lines_per_sec: f64,
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Output format (json: one JSON document).
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// How long to observe, seconds (0.001 to 31536000, 365 days).
    #[arg(short, long, value_name = "SECONDS", default_value_t = 10.0, value_parser = duration_secs,
          allow_negative_numbers = true)]
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
    #[arg(long, value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
    pub pid: Option<u32>,
    /// Only drops in this network namespace: an inode number (as `ls -l /proc/PID/ns/net`
    /// shows), an `ip netns` name or a path to a network namespace file. It must exist.
    #[arg(long, value_name = "NETNS", value_parser = netns_arg)]
    pub netns: Option<String>,
    /// Only drops on this interface (in the namespaces watched; one that does not exist
    /// yet is counted when it appears).
    #[arg(long, value_name = "NAME", value_parser = dev_name)]
    pub dev: Option<String>,
    /// Only these causes (repeat for several).
    #[arg(long, value_enum, value_name = "CAUSE")]
    pub cause: Vec<crate::classify::Cause>,
    /// Only packets from or to this port.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Only packets from or to this address.
    #[arg(long, value_name = "IP")]
    pub addr: Option<std::net::IpAddr>,
}

impl FilterArgs {
    pub fn spec(&self) -> crate::filter::FilterSpec {
        crate::filter::FilterSpec {
            pid: self.pid,
            netns: self.netns.clone(),
            dev: self.dev.clone(),
            causes: self.cause.clone(),
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
    /// Hook SYNs refused by a full accept queue (tcp_conn_request) with a kprobe
    /// even where fentry is available: fentry conflicts with some tracers (also how
    /// the tests force the kprobe path). A kprobe is slower per SYN.
    #[arg(long)]
    pub no_fentry: bool,
    /// Seconds between snapshots of the kernel's counters, sysctls, listeners and
    /// neighbours (0.01 to 3600).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = interval_secs,
          allow_negative_numbers = true)]
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
    /// Stop after this many seconds and print the summary, 0.001 to 31536000 (365 days;
    /// default: until Ctrl-C).
    #[arg(short, long, value_name = "SECONDS", value_parser = duration_secs,
          allow_negative_numbers = true)]
    pub duration: Option<f64>,
    /// Seconds between per-cause summaries in the line view, and between refreshes of
    /// the live screen's groups and advice (0.01 to 3600; default 5, 1 on the screen).
    #[arg(long, value_name = "SECONDS", value_parser = interval_secs,
          allow_negative_numbers = true)]
    pub interval: Option<f64>,
    /// Print lines (a line per drop, summaries) even on a terminal, instead of the
    /// live screen.
    #[arg(long)]
    pub lines: bool,
    /// Drop lines per second per cause in the human view, 0.001 to 1000000 (counts stay
    /// exact).
    #[arg(long, value_name = "N", default_value_t = 10.0, value_parser = lines_per_sec,
          allow_negative_numbers = true)]
    pub lines_per_sec: f64,
    /// Also record everything to this file (as `netdrop record -o FILE`).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub kernel: KernelArgs,
}

/// `--duration`: from 1 ms to 365 days, in seconds.
pub const DURATION_RANGE_S: (f64, f64) = (0.001, 365.0 * 86_400.0);
/// `--interval`, `--snapshot-interval`: from 10 ms to 1 hour, in seconds.
pub const INTERVAL_RANGE_S: (f64, f64) = (0.01, 3_600.0);
/// `--burst-gap-ms`: from 1 µs to 1 hour, in milliseconds.
pub const BURST_GAP_RANGE_MS: (f64, f64) = (0.001, 3_600_000.0);
/// `--lines-per-sec`.
pub const LINES_PER_SEC_RANGE: (f64, f64) = (0.001, 1_000_000.0);

/// A finite number within `range` (inclusive); NaN, infinities, and anything
/// outside are refused with what is expected (clap prefixes the flag and value).
fn number_in(s: &str, (min, max): (f64, f64), expected: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("expected {expected}")),
    }
}

fn duration_secs(s: &str) -> Result<f64, String> {
    number_in(
        s,
        DURATION_RANGE_S,
        "seconds from 0.001 to 31536000 (365 days)",
    )
}

fn interval_secs(s: &str) -> Result<f64, String> {
    number_in(s, INTERVAL_RANGE_S, "seconds from 0.01 to 3600 (1 hour)")
}

fn burst_gap_ms(s: &str) -> Result<f64, String> {
    number_in(
        s,
        BURST_GAP_RANGE_MS,
        "milliseconds from 0.001 to 3600000 (1 hour)",
    )
}

fn lines_per_sec(s: &str) -> Result<f64, String> {
    number_in(
        s,
        LINES_PER_SEC_RANGE,
        "lines per second from 0.001 to 1000000",
    )
}

/// `--dev`: a name the kernel could give an interface (`dev_valid_name`): 1 to 15
/// bytes, not `.` or `..`, no `/`, `:` or whitespace. Whether it exists is checked
/// when the filters are resolved (filter.rs).
fn dev_name(s: &str) -> Result<String, String> {
    crate::filter::check_dev_name(s)?;
    Ok(s.to_string())
}

/// `--netns`: not empty; whether it names a network namespace is checked when
/// the filters are resolved (filter.rs), where the namespaces can be listed.
fn netns_arg(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("expected an inode number, an `ip netns` name or a path".into());
    }
    Ok(s.to_string())
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
mod tests;
