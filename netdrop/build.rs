//! Builds `netdrop-ebpf` for `bpfel-unknown-none` and leaves the object in
//! OUT_DIR, where `loader.rs` embeds it with `include_bytes_aligned!`.
//!
//! Two routes, picked by what is installed:
//! 1. Debian's rustc (`rustc-web`) with its prebuilt `core` for the BPF target
//!    (`libstd-rust-web-dev-bpf`): no rust-src needed, no `-Z build-std`.
//! 2. The standard aya route: a rustup nightly with `rust-src`, `-Z build-std=core`.
//!
//! Both need `bpf-linker` on PATH. Where neither route is possible the build
//! stops with one line saying what to install.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const TARGET: &str = "bpfel-unknown-none";
const PKG: &str = "netdrop-ebpf";

enum Route {
    /// A rustc with a prebuilt core for the BPF target.
    Prebuilt { rustc: PathBuf },
    /// rustup nightly + rust-src + build-std.
    Nightly,
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for dir in [
        "netdrop-ebpf/src",
        "netdrop-ebpf/Cargo.toml",
        "netdrop-common/src",
        "netdrop-common/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=NETDROP_EBPF_RUSTC");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    if let Err(msg) = build(&root, &out_dir) {
        // One line for the user; cargo shows it as the build script's error.
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}

fn build(root: &Path, out_dir: &Path) -> Result<(), String> {
    if !has_bpf_linker() {
        return Err(
            "bpf-linker not found on PATH: run scripts/setup.sh, or `cargo install bpf-linker`"
                .into(),
        );
    }
    let route = pick_route().ok_or(
        "no Rust toolchain can build for bpfel-unknown-none: run scripts/setup.sh (Debian: rustc-web + \
         libstd-rust-web-dev-bpf), or `rustup toolchain install nightly --component rust-src`",
    )?;
    // A separate target dir: the outer cargo holds the lock on the main one.
    let target_dir = root.join("target").join("ebpf");
    let mut cmd = match &route {
        Route::Prebuilt { rustc } => {
            let mut c = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            clean_env(&mut c);
            c.env("RUSTC", rustc).env("RUSTC_BOOTSTRAP", "1");
            c
        }
        Route::Nightly => {
            let mut c = Command::new("rustup");
            clean_env(&mut c);
            c.args(["run", "nightly", "cargo"]);
            c
        }
    };
    cmd.current_dir(root)
        .args([
            "build",
            "--release",
            "--package",
            PKG,
            "--bins",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    if matches!(route, Route::Nightly) {
        cmd.args(["-Z", "build-std=core"]);
    }
    let flags = [
        "--cfg=bpf_target_arch=\"x86_64\"",
        "-Cdebuginfo=2",
        "-Clink-arg=--btf",
    ]
    .join("\x1f");
    cmd.env("CARGO_ENCODED_RUSTFLAGS", flags);

    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo for the eBPF build: {e}"))?;
    if !status.success() {
        return Err(format!(
            "the eBPF build failed ({status}); see the output above"
        ));
    }
    let obj = target_dir.join(TARGET).join("release").join("netdrop");
    std::fs::copy(&obj, out_dir.join("netdrop.bpf.o"))
        .map_err(|e| format!("cannot copy {}: {e}", obj.display()))?;
    Ok(())
}

/// The nested cargo must not inherit the outer build's compiler, flags or target.
fn clean_env(cmd: &mut Command) {
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        let drop = (key.starts_with("CARGO") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key.starts_with("RUSTFLAGS")
            || key.starts_with("RUSTDOC")
            || key == "RUSTUP_TOOLCHAIN"
            || key == "TARGET"
            || key == "HOST"
            || key == "OUT_DIR";
        if drop {
            cmd.env_remove(key.as_ref());
        }
    }
}

fn has_bpf_linker() -> bool {
    Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A rustc whose sysroot holds a prebuilt core for the BPF target, or nightly + rust-src.
fn pick_route() -> Option<Route> {
    let candidates = env::var_os("NETDROP_EBPF_RUSTC")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/usr/bin/rustc")]);
    for rustc in candidates {
        if let Some(sysroot) = sysroot(Command::new(&rustc)) {
            let lib = sysroot.join("lib/rustlib").join(TARGET).join("lib");
            let has_core = std::fs::read_dir(&lib).is_ok_and(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
            });
            if has_core {
                return Some(Route::Prebuilt { rustc });
            }
        }
    }
    let mut nightly = Command::new("rustup");
    nightly.args(["run", "nightly", "rustc"]);
    let sysroot = sysroot(nightly)?;
    sysroot
        .join("lib/rustlib/src/rust/library/core")
        .is_dir()
        .then_some(Route::Nightly)
}

fn sysroot(mut rustc: Command) -> Option<PathBuf> {
    let out = rustc.args(["--print", "sysroot"]).output().ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}
