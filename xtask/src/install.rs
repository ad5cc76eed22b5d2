//! `cargo xtask install`: the release binary, the shell completions and the
//! manual pages where a Debian system looks for them; `cargo xtask run` installs
//! the completions and pages (not the binary) the same way. Both ask the built
//! binary for them (`netdrop completions SHELL`, `netdrop man --dir`), so they
//! always match it.
//!
//! Files are staged in target/install-PID/ and copied only where they differ: a
//! second run writes nothing. Outside `--root` (the real system) and not root,
//! the copies go through sudo.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::{is_root, target_dir};

/// (path under the root, the shell) of each completion script. bash-completion
/// and fish load these on demand; /usr/local/share/zsh/site-functions is in
/// Debian's zsh `fpath`.
pub const COMPLETIONS: &[(&str, &str)] = &[
    ("usr/share/bash-completion/completions/netdrop", "bash"),
    ("usr/local/share/zsh/site-functions/_netdrop", "zsh"),
    ("usr/share/fish/vendor_completions.d/netdrop.fish", "fish"),
];
/// Where the pages go (in `man`'s default search path).
pub const MAN_DIR: &str = "usr/local/share/man/man1";
/// Where `cargo xtask install` puts the binary.
pub const BIN: &str = "usr/local/bin/netdrop";

#[derive(Args)]
pub struct InstallArgs {
    /// Install under this directory instead of / (a package's staging tree, a test).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// The netdrop binary to install (default: build target/release/netdrop).
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Only the completions and manual pages, not the binary.
    #[arg(long)]
    pub no_binary: bool,
}

/// One file to put in place: staged source, destination, mode.
#[derive(Debug, PartialEq, Eq)]
pub struct Item {
    pub from: PathBuf,
    pub to: PathBuf,
    pub mode: u32,
}

/// `cargo xtask install`.
pub fn run(args: &InstallArgs) -> Result<()> {
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => crate::build_release()?,
    };
    let (installed, removed) = install(&binary, &args.root, !args.no_binary)?;
    report(installed, removed, &args.root);
    Ok(())
}

/// `cargo xtask run`: completions and pages beside the binary it runs.
pub fn docs(binary: &Path) -> Result<()> {
    let (installed, removed) = install(binary, Path::new("/"), false)?;
    report(installed, removed, Path::new("/"));
    Ok(())
}

fn report(installed: usize, removed: usize, root: &Path) {
    if installed + removed == 0 {
        eprintln!(
            "xtask: completions and man pages up to date under {}",
            root.display()
        );
    } else {
        eprintln!(
            "xtask: installed {installed} files, removed {removed} stale pages under {} (bash, zsh, fish completions; man netdrop)",
            root.display()
        );
    }
}

/// Stages everything `binary` generates, copies what differs under `root`
/// and removes pages of subcommands that no longer exist. Returns (copied, removed).
pub fn install(binary: &Path, root: &Path, with_binary: bool) -> Result<(usize, usize)> {
    // Of this process: two runs at once (a test, a `run`) never share it.
    let stage = target_dir().join(format!("install-{}", std::process::id()));
    let result = sync(binary, &stage, root, with_binary);
    let _ = fs::remove_dir_all(&stage);
    result
}

fn sync(binary: &Path, stage: &Path, root: &Path, with_binary: bool) -> Result<(usize, usize)> {
    let items = stage_all(binary, stage, root, with_binary)?;
    let sudo = root == Path::new("/") && !is_root();
    let mut copied = 0;
    for item in &items {
        if fs::read(&item.to).ok() == Some(fs::read(&item.from)?) {
            continue;
        }
        put(item, sudo)?;
        copied += 1;
    }
    let mut removed = 0;
    let man_dir = root.join(MAN_DIR);
    for stale in stale_pages(&man_dir, &items)? {
        if sudo {
            let mut c = Command::new("sudo");
            c.arg("rm").arg("-f").arg(&stale);
            crate::status(c)?;
        } else {
            fs::remove_file(&stale).with_context(|| format!("removing {}", stale.display()))?;
        }
        removed += 1;
    }
    Ok((copied, removed))
}

/// Writes the scripts and pages into `stage`; the list of what goes where.
fn stage_all(binary: &Path, stage: &Path, root: &Path, with_binary: bool) -> Result<Vec<Item>> {
    if stage.exists() {
        fs::remove_dir_all(stage).with_context(|| format!("clearing {}", stage.display()))?;
    }
    let mut items = Vec::new();
    for (dest, shell) in COMPLETIONS {
        let from = stage.join(dest);
        fs::create_dir_all(from.parent().unwrap())?;
        let script = generated(binary, &["completions", shell])?;
        fs::write(&from, script)?;
        items.push(Item {
            from,
            to: root.join(dest),
            mode: 0o644,
        });
    }
    let pages = stage.join(MAN_DIR);
    generated(binary, &["man", "--dir", &pages.to_string_lossy()])?;
    let mut names: Vec<_> = fs::read_dir(&pages)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    if !names.iter().any(|n| n == "netdrop.1") {
        bail!("{} man wrote no netdrop.1", binary.display());
    }
    for name in names {
        items.push(Item {
            from: pages.join(&name),
            to: root.join(MAN_DIR).join(&name),
            mode: 0o644,
        });
    }
    if with_binary {
        items.push(Item {
            from: binary.to_path_buf(),
            to: root.join(BIN),
            mode: 0o755,
        });
    }
    Ok(items)
}

/// Runs `binary args`; its stdout.
fn generated(binary: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new(binary)
        .args(args)
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "{} {}: {}: {}",
            binary.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// `install -D -m MODE from to` (through sudo when asked): creates the
/// directories, replaces the file in one step.
fn put(item: &Item, sudo: bool) -> Result<()> {
    let mut c = if sudo {
        let mut c = Command::new("sudo");
        c.arg("install");
        c
    } else {
        Command::new("install")
    };
    c.arg("-D")
        .arg("-m")
        .arg(format!("{:o}", item.mode))
        .arg(&item.from)
        .arg(&item.to);
    let st = c.status().with_context(|| format!("running {c:?}"))?;
    if !st.success() {
        bail!("{c:?} failed: {st}");
    }
    Ok(())
}

/// netdrop's pages in `man_dir` that this binary no longer writes.
fn stale_pages(man_dir: &Path, items: &[Item]) -> Result<Vec<PathBuf>> {
    let Ok(entries) = fs::read_dir(man_dir) else {
        return Ok(Vec::new());
    };
    let mut stale = Vec::new();
    for e in entries {
        let path = e?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let ours = name == "netdrop.1" || (name.starts_with("netdrop-") && name.ends_with(".1"));
        if ours && !items.iter().any(|i| i.to == path) {
            stale.push(path);
        }
    }
    stale.sort();
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The debug binary `cargo build` made, if any.
    fn built_netdrop() -> Option<PathBuf> {
        let bin = target_dir().join("debug/netdrop");
        bin.is_file().then_some(bin)
    }

    #[test]
    fn installs_under_a_root_then_writes_nothing_the_second_time() {
        let Some(bin) = built_netdrop() else {
            eprintln!(
                "\n********\nSKIP: no target/debug/netdrop: run cargo build -p netdrop\n********"
            );
            return;
        };
        let root = std::env::temp_dir().join(format!("xtask-install-{}", std::process::id()));
        let stale = root.join(MAN_DIR).join("netdrop-gone.1");
        fs::create_dir_all(stale.parent().unwrap()).unwrap();
        fs::write(&stale, ".TH gone").unwrap();
        fs::write(root.join(MAN_DIR).join("other.1"), ".TH other").unwrap();

        let (copied, removed) = install(&bin, &root, true).unwrap();
        assert_eq!(removed, 1, "the stale page");
        assert!(!stale.exists() && root.join(MAN_DIR).join("other.1").exists());
        for (dest, shell) in COMPLETIONS {
            let text = fs::read_to_string(root.join(dest)).unwrap();
            let flag = if *shell == "fish" {
                "-l color"
            } else {
                "--color"
            };
            assert!(text.contains("watch") && text.contains(flag), "{shell}");
        }
        let pages = fs::read_dir(root.join(MAN_DIR)).unwrap().count() - 1;
        assert!(pages >= 9, "netdrop.1 and a page per subcommand: {pages}");
        for page in ["netdrop.1", "netdrop-watch.1", "netdrop-replay.1"] {
            assert!(root.join(MAN_DIR).join(page).is_file(), "{page}");
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(root.join(BIN)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(copied, COMPLETIONS.len() + pages + 1);

        assert_eq!(install(&bin, &root, true).unwrap(), (0, 0), "idempotent");
        fs::remove_dir_all(&root).unwrap();
    }
}
