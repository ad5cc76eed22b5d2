//! Shell completions and manual pages, generated from the clap definitions in
//! [`crate::cli`] (`netdrop completions SHELL`, `netdrop man`), so they always
//! name the flags the binary takes.
//!
//! The pages: `netdrop.1` (global options, the subcommands) and one per
//! subcommand, `netdrop-watch.1` … (its options), each with EXIT STATUS,
//! ENVIRONMENT and SEE ALSO sections written here.

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_mangen::{
    Man,
    roff::{Roff, bold, italic, roman},
};

use crate::cli::Cli;

/// The shells `netdrop completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    pub const ALL: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

    fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// The completion script for `shell`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    let mut buf = Vec::new();
    clap_complete::generate(shell.generator(), &mut Cli::command(), "netdrop", &mut buf);
    out.write_all(&buf)
}

/// `replay` of a damaged or truncated recording (everything intact was shown).
pub const EXIT_DAMAGED: u8 = 3;

/// (code, meaning, only for this subcommand).
const EXIT_STATUS: &[(u8, &str, Option<&str>)] = &[
    (
        0,
        "Success; also after --help and --version, and when the reader of the output \
         went away (netdrop watch | head -1).",
        None,
    ),
    (
        1,
        "An error, said in one line on stderr, netdrop: error: ... (not root, a --netns \
         that names no network namespace, a file that cannot be read or written, a \
         kernel without what netdrop needs).",
        None,
    ),
    (
        2,
        "Bad usage: the command line was refused (an unknown flag, a value out of range) \
         before anything was read or loaded.",
        None,
    ),
    (
        EXIT_DAMAGED,
        "replay: the recording is damaged or truncated. Everything intact was shown; \
         the damage is described on stderr.",
        Some("replay"),
    ),
];

/// (variable, meaning).
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        crate::style::NO_COLOR,
        "Any non-empty value turns colour off where --color is auto (the default); \
         --color always still colours.",
    ),
    (
        "NETDROP_LOG",
        "Log filter for stderr, in tracing's EnvFilter syntax (netdrop=debug); \
         replaces the level -v and -vv choose.",
    ),
    (
        crate::container::KUBELET_LOG_DIR_ENV,
        "Replaces /var/log as the directory holding the kubelet's pods/ and containers/, \
         where pod and container names are read.",
    ),
];

/// One manual page: its file name (`netdrop-watch.1`) and roff source.
pub struct Page {
    pub file_name: String,
    pub roff: String,
}

/// `netdrop.1` first, then a page per subcommand.
pub fn pages() -> Vec<Page> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let subs: Vec<clap::Command> = root
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let names: Vec<String> = subs.iter().map(page_name).collect();
    let mut out = vec![page(&root, None, &names)];
    for sub in &subs {
        out.push(page(sub, Some(sub.get_name()), &["netdrop".to_string()]));
    }
    out
}

/// Writes every page into `dir` (created if missing); returns their paths.
pub fn write_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating {}", crate::text::safe_path(dir)))?;
    pages()
        .into_iter()
        .map(|p| {
            let path = dir.join(&p.file_name);
            std::fs::write(&path, p.roff)
                .with_context(|| format!("writing {}", crate::text::safe_path(&path)))?;
            Ok(path)
        })
        .collect()
}

/// `netdrop-watch` for `watch` (clap's display name once the root is built).
fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string()
}

/// clap_mangen's sections, then ours, then the version (as `Man::render` orders them).
fn page(cmd: &clap::Command, sub: Option<&str>, see_also: &[String]) -> Page {
    let man = Man::new(cmd.clone());
    let mut buf = Vec::new();
    let w: &mut dyn Write = &mut buf;
    // Writing into a Vec cannot fail.
    let _ = man.render_title(w);
    let _ = man.render_name_section(w);
    let _ = man.render_synopsis_section(w);
    let _ = man.render_description_section(w);
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        let _ = man.render_options_section(w);
    }
    if cmd.has_subcommands() {
        let _ = man.render_subcommands_section(w);
    }
    let _ = extra_sections(sub, see_also).to_writer(w);
    let _ = man.render_version_section(w);
    Page {
        file_name: man.get_filename(),
        roff: String::from_utf8_lossy(&buf).into_owned(),
    }
}

fn extra_sections(sub: Option<&str>, see_also: &[String]) -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    for (code, meaning, only) in EXIT_STATUS {
        if only.is_some_and(|o| sub.is_some_and(|s| s != o)) {
            continue;
        }
        r.control("TP", []);
        r.text([bold(code.to_string())]);
        r.text([roman(*meaning)]);
    }
    r.control("SH", ["ENVIRONMENT"]);
    for (name, meaning) in ENVIRONMENT {
        r.control("TP", []);
        r.text([bold(*name)]);
        r.text([roman(*meaning)]);
    }
    r.control("SH", ["SEE ALSO"]);
    let mut refs = Vec::new();
    for (i, name) in see_also.iter().enumerate() {
        refs.push(bold(name.as_str()));
        refs.push(roman(if i + 1 < see_also.len() {
            "(1), "
        } else {
            "(1)"
        }));
    }
    r.text(refs);
    r.control("PP", []);
    r.text([
        roman("The README of netdrop's source, "),
        italic("README.md"),
        roman(", explains the causes, the output and the fleet set-up."),
    ]);
    r
}

#[cfg(test)]
mod tests;
