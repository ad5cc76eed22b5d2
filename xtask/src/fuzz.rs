//! `cargo xtask fuzz`: the cargo-fuzz targets in `fuzz/`, for a bounded time
//! in total (split evenly between them):
//!
//! - `recording`: the recording reader (`record::open`) on arbitrary bytes;
//! - `btf`: the BTF parser and every lookup netdrop makes (`--btf FILE`);
//! - `tracefs_format`: the tracepoint format parser (`--tracefs DIR`).
//!
//! Two routes, picked by what is installed:
//! - a rustup nightly toolchain: `rustup run nightly cargo fuzz run …` with
//!   cargo-fuzz's default sanitizer (AddressSanitizer);
//! - otherwise (stable rustup, Debian's rustc): `RUSTC_BOOTSTRAP=1 cargo fuzz run
//!   --sanitizer none …`. The coverage instrumentation libFuzzer needs
//!   (`-Cpasses=sancov-module`, `-Cllvm-args=…`) is accepted by stable rustc; only
//!   the sanitizers are nightly-only, and the code fuzzed is safe Rust.
//!   RUSTC_BOOTSTRAP=1 is what cargo-fuzz checks to allow a non-nightly compiler.
//!
//! Either way libFuzzer itself comes from the `libfuzzer-sys` crate, compiled
//! with the system C++ compiler (g++, see scripts/setup.sh).
//!
//! New corpus entries go to `fuzz/corpus/<target>/` (not checked in); the seeds
//! are in [`Target::seeds`]. A crash, panic or hang (an input running over
//! [`TIMEOUT_S`]) fails the task and names the input left in
//! `fuzz/artifacts/<target>/`.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail};

use crate::{cargo, root, status};

/// The cargo-fuzz installed when none is.
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// A target in fuzz/Cargo.toml.
pub struct Target {
    /// Its `[[bin]]` name (fuzz/fuzz_targets/<name>.rs).
    pub name: &'static str,
    /// Seed directories, from the repository's root (read only).
    pub seeds: &'static [&'static str],
}

/// The targets in fuzz/Cargo.toml.
pub const TARGETS: &[Target] = &[
    Target {
        name: "recording",
        seeds: &["fuzz/seeds/recording"],
    },
    Target {
        name: "btf",
        seeds: &["fuzz/seeds/btf"],
    },
    Target {
        // The real format files the unit tests parse.
        name: "tracefs_format",
        seeds: &["netdrop/tests/fixtures/formats"],
    },
];
/// Seconds of fuzzing in total, split between the targets.
pub const DEFAULT_SECONDS: u64 = 60;
/// One input running longer than this is a hang: the readers must never loop.
pub const TIMEOUT_S: u64 = 10;
/// `cargo xtask test` fuzzes this many seconds in total; 0 skips.
pub const SECONDS_ENV: &str = "NETDROP_FUZZ_SECONDS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `rustup run nightly cargo fuzz`, AddressSanitizer.
    Nightly,
    /// The cargo at hand with RUSTC_BOOTSTRAP=1, no sanitizer.
    Bootstrap,
}

/// Seconds in total for `cargo xtask test`: NETDROP_FUZZ_SECONDS, else the default.
pub fn seconds_from_env() -> Result<u64> {
    parse_seconds(std::env::var(SECONDS_ENV).ok().as_deref())
}

fn parse_seconds(v: Option<&str>) -> Result<u64> {
    match v.map(str::trim) {
        None | Some("") => Ok(DEFAULT_SECONDS),
        Some(s) => s
            .parse()
            .with_context(|| format!("{SECONDS_ENV}={s:?} is not a number of seconds")),
    }
}

/// Each target's share of `seconds` (at least 1 s each).
fn share(seconds: u64) -> u64 {
    (seconds / TARGETS.len() as u64).max(1)
}

/// Builds every target, then runs each for its share of `seconds`; fails on
/// the first crash found.
pub fn run(seconds: u64) -> Result<()> {
    if seconds == 0 {
        bail!("--seconds 0: nothing to run");
    }
    ensure_cargo_fuzz()?;
    let route = pick_route();
    let each = share(seconds);
    eprintln!(
        "xtask: fuzzing {} targets for {each} s each with {}",
        TARGETS.len(),
        match route {
            Route::Nightly => "the rustup nightly toolchain (AddressSanitizer)",
            Route::Bootstrap =>
                "the default toolchain, RUSTC_BOOTSTRAP=1 (no nightly toolchain; no sanitizer)",
        }
    );
    // One build of all of them (they share the netdrop library).
    let started = Instant::now();
    let mut build = cargo_fuzz(route);
    build.arg("build");
    sanitizer_args(route, &mut build);
    status(build)?;
    eprintln!("xtask: fuzz targets built in {:.0?}", started.elapsed());

    let fuzz_dir = root().join("fuzz");
    for target in TARGETS {
        let name = target.name;
        let corpus = fuzz_dir.join("corpus").join(name);
        let artifacts = fuzz_dir.join("artifacts").join(name);
        for dir in [&corpus, &artifacts] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }

        let before = listing(&artifacts);
        let mut cmd = cargo_fuzz(route);
        cmd.args(["run", name]);
        sanitizer_args(route, &mut cmd);
        // New inputs go to the first directory; the seeds are only read.
        cmd.arg(&corpus);
        cmd.args(target.seeds.iter().map(|s| root().join(s)));
        cmd.arg("--");
        cmd.args(libfuzzer_args(each));
        eprintln!("xtask: {cmd:?}");
        let st = cmd.status().with_context(|| format!("running {cmd:?}"))?;
        if !st.success() {
            let found: Vec<PathBuf> = listing(&artifacts)
                .difference(&before)
                .map(|name| artifacts.join(name))
                .collect();
            if found.is_empty() {
                bail!("fuzzing {name} failed ({st}), no input was saved: see the output above");
            }
            let list = found
                .iter()
                .map(|p| format!("  {}", p.display()))
                .collect::<Vec<_>>()
                .join("\n");
            bail!(
                "fuzzing {name} found a failing input ({st}); the panic is in the output above. Input:\n{list}\n\
                 Reproduce with: cargo fuzz run{} {name} <input>",
                match route {
                    Route::Nightly => "",
                    Route::Bootstrap => " --sanitizer none",
                }
            );
        }
    }
    Ok(())
}

fn libfuzzer_args(seconds: u64) -> Vec<String> {
    vec![
        format!("-max_total_time={seconds}"),
        format!("-timeout={TIMEOUT_S}"),
        "-print_final_stats=1".into(),
    ]
}

fn sanitizer_args(route: Route, cmd: &mut Command) {
    if route == Route::Bootstrap {
        cmd.args(["--sanitizer", "none"]);
    }
}

fn cargo_fuzz(route: Route) -> Command {
    let mut c = match route {
        Route::Nightly => {
            let mut c = Command::new("rustup");
            c.args(["run", "nightly", "cargo"]);
            c
        }
        Route::Bootstrap => {
            let mut c = cargo();
            c.env("RUSTC_BOOTSTRAP", "1");
            c
        }
    };
    c.current_dir(root()).arg("fuzz");
    c
}

fn pick_route() -> Route {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if nightly {
        Route::Nightly
    } else {
        Route::Bootstrap
    }
}

fn ensure_cargo_fuzz() -> Result<()> {
    let mut probe = cargo();
    probe.args(["fuzz", "--version"]);
    if let Ok(out) = probe.output()
        && out.status.success()
    {
        eprintln!("xtask: {}", String::from_utf8_lossy(&out.stdout).trim());
        return Ok(());
    }
    eprintln!("xtask: cargo-fuzz not found: installing {CARGO_FUZZ_VERSION} (about a minute)");
    let mut c = cargo();
    c.args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]);
    status(c)
}

/// File names in `dir` (none if it does not exist).
fn listing(dir: &Path) -> BTreeSet<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_from_the_environment() {
        assert_eq!(parse_seconds(None).unwrap(), DEFAULT_SECONDS);
        assert_eq!(parse_seconds(Some("")).unwrap(), DEFAULT_SECONDS);
        assert_eq!(parse_seconds(Some("0")).unwrap(), 0);
        assert_eq!(parse_seconds(Some(" 300 ")).unwrap(), 300);
        assert!(parse_seconds(Some("1m")).is_err());
    }

    #[test]
    fn bounded_run() {
        let args = libfuzzer_args(45);
        assert!(args.contains(&"-max_total_time=45".to_string()));
        assert!(args.contains(&format!("-timeout={TIMEOUT_S}")));
    }

    /// The time given is the total: split evenly, at least a second each.
    #[test]
    fn time_is_split_between_targets() {
        assert_eq!(TARGETS.len(), 3);
        assert_eq!(share(60), 20);
        assert_eq!(share(DEFAULT_SECONDS) * TARGETS.len() as u64, 60);
        assert_eq!(share(1), 1);
    }

    /// Every target is declared in fuzz/Cargo.toml, has its source and seeds;
    /// the seeds kept under fuzz/ are small.
    #[test]
    fn targets_and_seeds() {
        let fuzz = root().join("fuzz");
        let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("cargo-fuzz = true"));
        assert!(
            manifest.contains("[workspace]"),
            "fuzz/ is its own workspace"
        );
        let mut kept = 0;
        for target in TARGETS {
            let name = target.name;
            assert!(manifest.contains(&format!("name = \"{name}\"")), "{name}");
            assert!(
                fuzz.join("fuzz_targets")
                    .join(format!("{name}.rs"))
                    .is_file()
            );
            for dir in target.seeds {
                let seeds: Vec<_> = std::fs::read_dir(root().join(dir))
                    .unwrap_or_else(|e| panic!("{name}: seeds {dir}: {e}"))
                    .flatten()
                    .collect();
                assert!(!seeds.is_empty(), "no seeds for {name} in {dir}");
                if dir.starts_with("fuzz/") {
                    kept += seeds
                        .iter()
                        .map(|e| e.metadata().unwrap().len())
                        .sum::<u64>();
                }
            }
        }
        assert!(
            kept < 50 * 1024,
            "seed corpora are {kept} bytes: keep them small"
        );
    }

    /// The BTF seeds are real BTF (the magic, version 1), as the example
    /// writing them checked with the parser.
    #[test]
    fn btf_seeds_are_btf() {
        for e in std::fs::read_dir(root().join("fuzz/seeds/btf")).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            assert_eq!(&bytes[..3], &[0x9f, 0xeb, 1]);
        }
    }
}
