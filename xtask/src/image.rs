//! `cargo xtask image`: netdrop's container image, built with no registry
//! pull. A root file system — the release binary, nft (the firewall_rule
//! counters run `nft -j list ruleset`), their shared libraries (ldd) and the
//! empty directories the DaemonSet mounts on — is written as
//! `target/image/rootfs.tar`, then `podman build` of
//! `deploy/container/Containerfile` (`FROM scratch`, `ADD rootfs.tar /`).

use std::{
    collections::BTreeSet,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::{cargo, root, status, target_dir};

/// Where nft is on Debian (nftables).
const NFT: &str = "/usr/sbin/nft";

/// Mount points the container runtime and the DaemonSet use.
const DIRS: &[&str] = &[
    "proc",
    "sys",
    "dev",
    "tmp",
    "etc",
    "run/netns",
    "var/log/pods",
    "var/log/containers",
];

#[derive(Args)]
pub struct ImageArgs {
    /// The netdrop binary to put in the image (default: build target/release/netdrop).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// The image's name.
    #[arg(long, default_value_t = format!("localhost/netdrop:{}", env!("CARGO_PKG_VERSION")))]
    tag: String,
    /// Only write target/image/rootfs.tar and the Containerfile (no podman).
    #[arg(long)]
    no_build: bool,
}

pub fn run(args: &ImageArgs) -> Result<()> {
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => {
            let mut c = cargo();
            c.args(["build", "--release", "-p", "netdrop"]);
            status(c)?;
            target_dir().join("release/netdrop")
        }
    };
    let dir = target_dir().join("image");
    let rootfs = dir.join("rootfs");
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    for d in DIRS {
        fs::create_dir_all(rootfs.join(d))?;
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    // nobody may need a name in the image; root does for tools that ask.
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/:/sbin/nologin\n",
    )?;
    fs::write(rootfs.join("etc/group"), "root:x:0:\n")?;

    if !Path::new(NFT).exists() {
        bail!("{NFT} not found: install nftables (scripts/setup.sh does)");
    }
    let programs = [
        (binary.clone(), "usr/local/bin/netdrop"),
        (PathBuf::from(NFT), "usr/sbin/nft"),
    ];
    let mut libs = BTreeSet::new();
    for (host, inside) in &programs {
        copy(host, &rootfs.join(inside), 0o755)?;
        libs.extend(crate::ldd::libraries(&host.to_string_lossy())?);
    }
    for lib in &libs {
        // The path ldd printed (the loader is asked for as /lib64/...).
        let inside = rootfs.join(lib.strip_prefix("/").unwrap_or(lib));
        copy(lib, &inside, 0o755)?;
    }

    let tar = dir.join("rootfs.tar");
    let mut c = Command::new("tar");
    c.args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".");
    status(c)?;
    let containerfile = dir.join("Containerfile");
    fs::copy(
        root().join("deploy/container/Containerfile"),
        &containerfile,
    )?;
    eprintln!(
        "xtask: {} ({} programs, {} libraries)",
        tar.display(),
        programs.len(),
        libs.len()
    );
    if args.no_build {
        return Ok(());
    }
    // No registry: FROM scratch pulls nothing. runc and cgroupfs work on
    // hybrid cgroups, where podman's defaults do not.
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs", "build"])
        .args(["--pull=never", "-f"])
        .arg(&containerfile)
        .args(["-t", &args.tag])
        .arg(&dir);
    status(c).context("podman build (install podman and runc: scripts/setup.sh)")?;
    eprintln!("xtask: image {}", args.tag);
    Ok(())
}

/// Copies `from` (following symlinks) to `to` with mode `mode`.
fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}
