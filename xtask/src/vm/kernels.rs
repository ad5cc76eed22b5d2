//! The guest kernels: which Debian kernel each matrix entry boots, resolved from
//! the archive once and cached (package names, the .debs, the extracted tree).
//!
//! apt runs with a private configuration under the cache (its own sources
//! list, lists and archives), so the machine's /etc/apt stays as it is.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

/// One entry of the matrix: a Debian kernel line and where the archive has it.
#[derive(Debug, Clone, Copy)]
pub struct KernelLine {
    /// What the user types: `--kernel 5.10`.
    pub id: &'static str,
    /// The Debian release it comes from (for the table).
    pub debian: &'static str,
    /// Suites of the main archive, then of the security archive, searched for
    /// `linux-image-amd64` (the newest candidate wins).
    pub suites: &'static [&'static str],
    pub security_suites: &'static [&'static str],
}

/// The guest kernels, oldest first. Nothing older than 5.10 is in the archive.
pub const LINES: &[KernelLine] = &[
    KernelLine {
        id: "5.10",
        debian: "Debian 11 bullseye",
        suites: &["bullseye"],
        security_suites: &["bullseye-security"],
    },
    KernelLine {
        id: "6.1",
        debian: "Debian 12 bookworm",
        suites: &["bookworm"],
        security_suites: &[],
    },
    KernelLine {
        id: "6.12",
        debian: "Debian 13 trixie",
        suites: &["trixie"],
        security_suites: &[],
    },
    KernelLine {
        id: "7.2",
        debian: "Debian sid",
        suites: &["sid"],
        security_suites: &[],
    },
];

pub fn line(id: &str) -> Result<KernelLine> {
    LINES.iter().copied().find(|l| l.id == id).with_context(|| {
        let ids: Vec<_> = LINES.iter().map(|l| l.id).collect();
        format!("unknown kernel {id:?}: one of {}, or all", ids.join(", "))
    })
}

/// An extracted kernel, ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub line: KernelLine,
    /// `uname -r` of the guest, e.g. 5.10.0-46-amd64.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// lib/modules/<release> of the extracted packages.
    pub modules: PathBuf,
    /// The packages it came from (name=version).
    pub packages: Vec<String>,
}

/// The machine's Debian mirrors (main, security), from /etc/apt; deb.debian.org
/// when none is named there.
fn mirrors() -> (String, String) {
    let mut text = fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        for e in dir.flatten() {
            text.push('\n');
            text.push_str(&fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    let mut main = None;
    let mut security = None;
    for word in text.split_whitespace() {
        let w = word.trim_end_matches('/');
        if !(w.starts_with("http://") || w.starts_with("https://")) {
            continue;
        }
        if w.ends_with("/debian-security") {
            security.get_or_insert_with(|| w.to_string());
        } else if w.ends_with("/debian") {
            main.get_or_insert_with(|| w.to_string());
        }
    }
    (
        main.unwrap_or_else(|| "http://deb.debian.org/debian".into()),
        security.unwrap_or_else(|| "http://deb.debian.org/debian-security".into()),
    )
}

/// apt with a private configuration for one kernel line.
struct Apt {
    dir: PathBuf,
}

impl Apt {
    fn new(cache: &Path, line: &KernelLine) -> Result<Apt> {
        let dir = cache.join("apt").join(line.id);
        fs::create_dir_all(dir.join("lists/partial"))?;
        fs::create_dir_all(dir.join("cache/archives/partial"))?;
        let (main, security) = mirrors();
        let mut list = String::new();
        for s in line.suites {
            list.push_str(&format!("deb {main} {s} main\n"));
        }
        for s in line.security_suites {
            list.push_str(&format!("deb {security} {s} main\n"));
        }
        fs::write(dir.join("sources.list"), list)?;
        Ok(Apt { dir })
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        let d = self.dir.display();
        for o in [
            format!("Dir::Etc::SourceList={d}/sources.list"),
            "Dir::Etc::SourceParts=/dev/null".into(),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::Cache={d}/cache"),
            "APT::Sandbox::User=root".into(),
            "Acquire::Retries=3".into(),
        ] {
            c.args(["-o", &o]);
        }
        c
    }

    fn output(&self, prog: &str, args: &[&str]) -> Result<String> {
        let mut c = self.cmd(prog);
        c.args(args);
        let out = c.output().with_context(|| format!("running {prog}"))?;
        if !out.status.success() {
            bail!(
                "{prog} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `Depends:` of a package (its candidate version).
    fn depends(&self, pkg: &str) -> Result<Vec<String>> {
        let out = self.output("apt-cache", &["depends", pkg])?;
        Ok(out
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .map(|d| d.trim_matches(|c| c == '<' || c == '>').to_string())
            .collect())
    }

    fn version(&self, pkg: &str) -> Result<String> {
        let out = self.output("apt-cache", &["policy", pkg])?;
        out.lines()
            .find_map(|l| l.trim().strip_prefix("Candidate: "))
            .map(str::to_string)
            .with_context(|| format!("no candidate version of {pkg}"))
    }
}

/// The packages that make up the newest kernel of a line: the image named by
/// `linux-image-amd64`, and (since 7.x) the binary/modules packages it is
/// split into.
fn resolve(apt: &Apt) -> Result<Vec<String>> {
    let image = apt
        .depends("linux-image-amd64")?
        .into_iter()
        .find(|d| d.starts_with("linux-image-") && d.ends_with("-amd64"))
        .context("linux-image-amd64 depends on no linux-image-*-amd64")?;
    let abi = image.trim_start_matches("linux-image-").to_string();
    let mut pkgs = vec![image];
    let mut i = 0;
    while i < pkgs.len() {
        for d in apt.depends(&pkgs[i])? {
            if d.starts_with("linux-") && d.ends_with(&abi) && !pkgs.contains(&d) {
                pkgs.push(d);
            }
        }
        i += 1;
    }
    Ok(pkgs)
}

/// The kernel of `line`, downloading and extracting it the first time (or
/// with `refresh`, when a newer one may be in the archive).
pub fn ensure(cache: &Path, line: KernelLine, refresh: bool) -> Result<Kernel> {
    let dir = cache.join("kernels").join(line.id);
    let pinned = dir.join("packages");
    if refresh || !pinned.exists() || find(&dir, line).is_err() {
        let apt = Apt::new(cache, &line)?;
        eprintln!(
            "xtask: vm: resolving the {} kernel ({})",
            line.id, line.debian
        );
        apt.output("apt-get", &["-q", "update"])?;
        let pkgs = resolve(&apt)?;
        let debs = dir.join("debs");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&debs)?;
        let mut c = apt.cmd("apt-get");
        c.current_dir(&debs).args(["-q", "download"]).args(&pkgs);
        // apt's progress goes with the other progress lines, not into the table.
        c.stdout(std::io::stderr());
        crate::status(c)?;
        let mut listed = Vec::new();
        for p in &pkgs {
            listed.push(format!("{p}={}", apt.version(p)?));
        }
        for deb in fs::read_dir(&debs)? {
            let deb = deb?.path();
            let mut c = Command::new("dpkg-deb");
            c.arg("-x").arg(&deb).arg(dir.join("root"));
            crate::status(c)?;
        }
        fs::remove_dir_all(&debs)?;
        fs::write(&pinned, listed.join("\n") + "\n")?;
    }
    find(&dir, line)
}

fn find(dir: &Path, line: KernelLine) -> Result<Kernel> {
    let root = dir.join("root");
    let mut modules = None;
    for base in ["lib/modules", "usr/lib/modules"] {
        if let Ok(rd) = fs::read_dir(root.join(base)) {
            for e in rd.flatten() {
                modules = Some(e.path());
            }
        }
    }
    let modules = modules.context("no lib/modules in the kernel packages")?;
    let release = modules.file_name().unwrap().to_string_lossy().into_owned();
    let vmlinuz = [
        root.join(format!("boot/vmlinuz-{release}")),
        modules.join("vmlinuz"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .with_context(|| format!("no vmlinuz for {release}"))?;
    let packages = fs::read_to_string(dir.join("packages"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    Ok(Kernel {
        line,
        release,
        vmlinuz,
        modules,
        packages,
    })
}
