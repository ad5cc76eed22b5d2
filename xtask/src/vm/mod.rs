//! `cargo xtask vm-test`: the kernel matrix. Boots Debian kernels (5.10, 6.1,
//! 6.12, 7.2) under QEMU with software emulation (TCG: this machine's /dev/kvm
//! does not run guests) one at a time, runs the integration tests that matter
//! on every kernel inside each, and prints a table kernel × test.
//!
//! Steps: the kernels are resolved from Debian's archive and cached
//! ([`kernels`]); the tests and netdrop are built static; each guest gets an
//! initramfs ([`initramfs`]) and the host's share folder over 9p with the
//! binaries, the list of tests and a place for the results ([`guest`]).

mod guest;
mod initramfs;
mod kernels;
mod synbench;

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail};

use crate::root;

#[derive(clap::Args, Debug)]
pub struct VmArgs {
    /// Kernels to boot: 5.10, 6.1, 6.12, 7.2, `host` (this machine's kernel,
    /// no guest) or `all` (every guest kernel and the host). Repeatable or
    /// comma-separated.
    #[arg(long = "kernel", value_delimiter = ',', default_value = "all")]
    pub kernels: Vec<String>,
    /// Only the tests whose matrix name contains one of these (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Resolve the kernels in the archive again (a newer one may be there).
    #[arg(long)]
    pub refresh: bool,
    /// Write the table into README.md (between its matrix markers) when every
    /// test passed.
    #[arg(long)]
    pub readme: bool,
    /// Seconds one test may take inside a guest.
    #[arg(long, default_value_t = 600)]
    pub test_timeout: u64,
    /// Instead of the matrix: the SYN hook's cost in ONE guest (--kernel, default
    /// 6.12), written into BENCHMARKS.md (see synbench.rs).
    #[arg(long)]
    pub syn_bench: bool,
}

/// Which kernels `cargo xtask test` runs the matrix on.
pub const KERNELS_ENV: &str = "NETDROP_VM_KERNELS";

impl VmArgs {
    /// The matrix as `cargo xtask test` runs it: $NETDROP_VM_KERNELS
    /// (comma-separated, default `all`).
    pub fn from_env() -> Result<VmArgs> {
        let kernels = std::env::var(KERNELS_ENV).unwrap_or_else(|_| "all".into());
        let kernels: Vec<String> = kernels
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
        if kernels.is_empty() {
            bail!("{KERNELS_ENV} names no kernel (5.10, 6.1, 6.12, 7.2, host, all)");
        }
        Ok(VmArgs {
            kernels,
            only: Vec::new(),
            refresh: false,
            readme: false,
            test_timeout: 600,
            syn_bench: false,
        })
    }
}

/// One row of the matrix: a test of the integration suite, by test binary and
/// name, with the environment that selects a hook.
#[derive(Debug, Clone, Copy)]
pub struct MatrixTest {
    pub name: &'static str,
    pub binary: &'static str,
    pub test: &'static str,
    /// `VAR=value` pairs for the test (the harness reads NETDROP_TEST_ARGS
    /// and NETDROP_EXPECT_HOOKS).
    pub env: &'static [&'static str],
    /// Only on kernels where the tcp_conn_request function hooks load (not the host).
    pub needs_function_hooks: bool,
}

/// The tests every kernel runs: the four causes, the accept queue through
/// fentry and through kprobe, owners, a record/replay round trip, a storm with
/// exact counts, the kernel-side log (`-v`: its sites pass the verifier), the
/// exporter's counts, and nothing left behind.
pub const MATRIX: &[MatrixTest] = &[
    MatrixTest {
        name: "neigh_queue_full",
        binary: "drops",
        test: "neigh_queue_full",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "neigh_table_full",
        binary: "drops",
        test: "neigh_table_overflow",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "rp_filter",
        binary: "drops",
        test: "rp_filter",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "accept_queue",
        binary: "drops",
        test: "accept_queue_full",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "accept_queue_fentry",
        binary: "drops",
        test: "accept_queue_full",
        env: &["NETDROP_EXPECT_HOOKS=raw_tracepoint:kfree_skb,fentry:tcp_conn_request"],
        needs_function_hooks: true,
    },
    MatrixTest {
        name: "accept_queue_kprobe",
        binary: "drops",
        test: "accept_queue_full",
        env: &[
            "NETDROP_TEST_ARGS=--no-fentry",
            "NETDROP_EXPECT_HOOKS=raw_tracepoint:kfree_skb,kprobe:tcp_conn_request",
        ],
        needs_function_hooks: true,
    },
    MatrixTest {
        name: "syn_cookies_default",
        binary: "syncookies",
        test: "accept_queue_with_syncookies_default_matches_listen_overflows",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "diagnose_refused_syns",
        binary: "diagnosis",
        test: "accept_queue_syn_drops_are_all_counted",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "diagnose_rp_filter",
        binary: "diagnosis",
        test: "rp_filter_effective_value_and_loose_mode",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "owners_neigh",
        binary: "owners",
        test: "queue_full_drops_belong_to_each_client_process",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "owners_accept",
        binary: "owners",
        test: "accept_overflow_names_the_listener_process",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "record_replay",
        binary: "record",
        test: "replay_shows_what_the_live_run_showed",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "storm_exact",
        binary: "storm",
        test: "storm_counts_are_exact_and_held_back_events_are_counted",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "kernel_log",
        binary: "storm",
        test: "verbose_logs_lost_drop_events_from_the_kernel_once_per_cpu",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "conntrack_full",
        binary: "causes",
        test: "conntrack_full::conntrack_full",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "conntrack_full_raw_rule",
        binary: "causes",
        test: "conntrack_full::raw_rule_drop_at_a_full_table_is_the_rule",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "firewall_rule",
        binary: "causes",
        test: "firewall_rule::firewall_rule",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "serve",
        binary: "serve",
        test: "serve_counts_equal_the_kernels",
        env: &[],
        needs_function_hooks: false,
    },
    MatrixTest {
        name: "nothing_left",
        binary: "drops",
        test: "cleanup_leaves_nothing_behind",
        env: &[],
        needs_function_hooks: false,
    },
];

/// Where kernels and apt state are cached between runs (outside the checkout,
/// so a fresh clone reuses them): $NETDROP_VM_CACHE, else ~/.cache/netdrop/vm.
fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NETDROP_VM_CACHE") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("netdrop/vm")
}

/// The static binaries of one build: netdrop, the test binaries by target
/// name, and the helper binaries the tests name by host path.
pub struct Binaries {
    pub netdrop: PathBuf,
    pub tests: BTreeMap<String, PathBuf>,
    pub helpers: Vec<PathBuf>,
}

const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// `cargo SUBCOMMAND --release --target x86_64-unknown-linux-gnu` with static
/// linking: binaries the guests run (their glibc is not the host's).
pub(super) fn static_cargo(subcommand: &str) -> std::process::Command {
    let mut c = crate::cargo();
    c.env("RUSTFLAGS", "-C target-feature=+crt-static").args([
        subcommand,
        "--release",
        "--target",
        TRIPLE,
    ]);
    c
}

/// Builds netdrop and the integration tests static (the guests have no glibc
/// of the host's version), in their own target directory.
fn build_static() -> Result<Binaries> {
    let mut c = static_cargo("build");
    c.args(["-p", "netdrop", "-p", "netdrop-tests", "--bins"]);
    crate::status(c)?;
    let mut c = static_cargo("test");
    c.args(["-p", "netdrop-tests", "--no-run", "--message-format=json"]);
    eprintln!("xtask: {c:?}");
    let out = c.output().context("building the test binaries")?;
    if !out.status.success() {
        bail!(
            "building the static test binaries failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut tests = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" || v["profile"]["test"] != true {
            continue;
        }
        let (Some(name), Some(exe)) = (v["target"]["name"].as_str(), v["executable"].as_str())
        else {
            continue;
        };
        if v["target"]["kind"][0] == "test" {
            tests.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    let dir = crate::target_dir().join(TRIPLE).join("release");
    let helpers = ["nd-peer", "nd-storm", "nd-comm"]
        .iter()
        .map(|b| dir.join(b))
        .collect();
    Ok(Binaries {
        netdrop: dir.join("netdrop"),
        tests,
        helpers,
    })
}

/// The outcome of one test on one kernel.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rc: i32,
    pub seconds: f64,
    /// The hooks netdrop attached (from its `watching (...)` line).
    pub hooks: Vec<String>,
    /// The test passed without testing: why (its `SKIP:` line).
    pub skip: Option<String>,
    pub log: PathBuf,
}

/// One kernel's column.
pub struct Column {
    pub kernel: String,
    pub release: String,
    pub results: BTreeMap<String, Outcome>,
    /// Set when the guest did not boot or run: a loud failure.
    pub error: Option<String>,
    pub seconds: f64,
}

pub fn run(args: &VmArgs) -> Result<()> {
    if args.syn_bench {
        return synbench::run(args);
    }
    let mut wanted: Vec<String> = Vec::new();
    for k in &args.kernels {
        if k == "all" {
            wanted.extend(kernels::LINES.iter().map(|l| l.id.to_string()));
            wanted.push("host".into());
        } else if k == "host" {
            wanted.push(k.clone());
        } else {
            wanted.push(kernels::line(k)?.id.to_string());
        }
    }
    // `--kernel 6.1,all` names 6.1 twice: each kernel once, first place kept.
    let mut seen = std::collections::BTreeSet::new();
    wanted.retain(|k| seen.insert(k.clone()));
    if !crate::is_root() {
        bail!("vm-test needs root (the host column and 9p share permissions): run it as root");
    }
    let tests: Vec<MatrixTest> = MATRIX
        .iter()
        .filter(|t| args.only.is_empty() || args.only.iter().any(|o| t.name.contains(o.as_str())))
        .copied()
        .collect();
    if tests.is_empty() {
        bail!("no matrix test matches --only {:?}", args.only);
    }
    let cache = cache_dir();
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    // Kernels first: a missing one fails before the long build.
    let mut guests = Vec::new();
    for id in wanted.iter().filter(|k| *k != "host") {
        guests.push(kernels::ensure(&cache, kernels::line(id)?, args.refresh)?);
    }
    let bins = build_static()?;
    let work = root().join("target/vm");
    let mut columns = Vec::new();
    for id in &wanted {
        let t0 = Instant::now();
        let col = if id == "host" {
            guest::run_host(&work, &bins, &tests, args.test_timeout)?
        } else {
            let k = guests
                .iter()
                .find(|k| k.line.id == id)
                .expect("ensured above");
            guest::run_guest(&work, k, &bins, &tests, args.test_timeout)?
        };
        let col = Column {
            seconds: t0.elapsed().as_secs_f64(),
            ..col
        };
        eprintln!(
            "xtask: vm: {} ({}) done in {:.0} s",
            col.kernel, col.release, col.seconds
        );
        columns.push(col);
    }
    let table = render(&tests, &columns);
    println!("{table}");
    let md = work.join("matrix.md");
    fs::write(&md, &table)?;
    eprintln!("xtask: vm: table written to {}", md.display());
    let mut failed = Vec::new();
    for c in &columns {
        if let Some(e) = &c.error {
            failed.push(format!("{}: {e}", c.kernel));
        }
        for t in &tests {
            match c.results.get(t.name) {
                Some(o) if o.rc == 0 => {}
                Some(o) => failed.push(format!(
                    "{} {}: exit {} (log {})",
                    c.kernel,
                    t.name,
                    o.rc,
                    o.log.display()
                )),
                None if c.error.is_none() && !skipped(c, t) => {
                    failed.push(format!("{} {}: no result", c.kernel, t.name))
                }
                None => {}
            }
        }
    }
    if !failed.is_empty() {
        bail!("kernel matrix failed:\n  {}", failed.join("\n  "));
    }
    if args.readme {
        let path = root().join("README.md");
        let text = fs::read_to_string(&path)?;
        let when = Command::new("date")
            .args(["-u", "+%Y-%m-%d"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let section = format!(
            "{README_BEGIN}\nLast full run ({when}, `cargo xtask vm-test --readme`; seconds are TCG guest time):\n\n{}{README_END}",
            table
        );
        fs::write(&path, replace_between(&text, &section)?)?;
        eprintln!("xtask: vm: README.md's matrix table updated");
    }
    Ok(())
}

const README_BEGIN: &str = "<!-- matrix:begin -->";
const README_END: &str = "<!-- matrix:end -->";

/// `text` with the part between the matrix markers (markers included)
/// replaced by `section`.
fn replace_between(text: &str, section: &str) -> Result<String> {
    match (text.find(README_BEGIN), text.find(README_END)) {
        (Some(b), Some(e)) if b < e => Ok(format!(
            "{}{section}{}",
            &text[..b],
            &text[e + README_END.len()..]
        )),
        _ => bail!("README.md has no {README_BEGIN} ... {README_END} section"),
    }
}

/// Tests a column does not run, by design: the fentry/kprobe rows on the host
/// (its kernel refuses both hooks).
fn skipped(c: &Column, t: &MatrixTest) -> bool {
    c.kernel == "host" && t.needs_function_hooks
}

/// The hooks of the first test that shows them, short (kfree_skb and tcp_conn_request).
fn hooks_seen(c: &Column) -> String {
    let mut all: Vec<String> = Vec::new();
    for o in c.results.values() {
        for h in &o.hooks {
            if (h.contains("kfree_skb") || h.contains("tcp_conn_request")) && !all.contains(h) {
                all.push(h.clone());
            }
        }
    }
    all.join(", ")
}

pub fn render(tests: &[MatrixTest], columns: &[Column]) -> String {
    let mut s = String::new();
    s.push_str("| test |");
    for c in columns {
        s.push_str(&format!(" {} ({}) |", c.kernel, c.release));
    }
    s.push_str("\n|---|");
    for _ in columns {
        s.push_str("---|");
    }
    s.push('\n');
    let mut skips: Vec<String> = Vec::new();
    for t in tests {
        s.push_str(&format!("| {} |", t.name));
        for c in columns {
            let cell = match (c.results.get(t.name), &c.error) {
                (Some(o), _) if o.rc == 0 && o.skip.is_some() => {
                    skips.push(format!(
                        "{} {}: {}",
                        c.kernel,
                        t.name,
                        o.skip.as_deref().unwrap_or_default()
                    ));
                    format!("skipped[^{}]", skips.len())
                }
                (Some(o), _) if o.rc == 0 => format!("ok {:.0}s", o.seconds),
                (Some(o), _) if o.rc == 124 || o.rc == 143 => "**TIMEOUT**".to_string(),
                (Some(o), _) => format!("**FAIL** ({})", o.rc),
                (None, _) if skipped(c, t) => "n/a (hook refused)".into(),
                (None, Some(_)) => "**NOT RUN**".into(),
                (None, None) => "**NO RESULT**".into(),
            };
            s.push_str(&format!(" {cell} |"));
        }
        s.push('\n');
    }
    s.push_str("| hooks used |");
    for c in columns {
        s.push_str(&format!(" {} |", hooks_seen(c)));
    }
    s.push('\n');
    for c in columns {
        if let Some(e) = &c.error {
            s.push_str(&format!("\n{}: **{e}**\n", c.kernel));
        }
    }
    if !skips.is_empty() {
        s.push('\n');
    }
    for (i, why) in skips.iter().enumerate() {
        s.push_str(&format!("[^{}]: {}\n", i + 1, why.replace('|', "\\|")));
    }
    s
}

/// Copies (or hard-links) `from` to `to`.
fn place(from: &Path, to: &Path) -> Result<()> {
    let _ = fs::remove_file(to);
    if fs::hard_link(from, to).is_err() {
        fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_section_is_replaced_between_its_markers() {
        let doc = format!("a\n{README_BEGIN}\nold\n{README_END}\nb\n");
        let new = replace_between(&doc, &format!("{README_BEGIN}\nnew\n{README_END}")).unwrap();
        assert_eq!(new, format!("a\n{README_BEGIN}\nnew\n{README_END}\nb\n"));
        assert!(replace_between("no markers", "x").is_err());
    }

    #[test]
    fn every_test_of_the_matrix_is_a_distinct_row() {
        let mut names: Vec<_> = MATRIX.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MATRIX.len());
        assert!(
            MATRIX
                .iter()
                .any(|t| t.env.iter().any(|e| e.contains("--no-fentry")))
        );
    }
}
