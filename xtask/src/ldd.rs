//! The shared libraries a dynamically linked program loads, from `ldd`: what
//! the kernel matrix's initramfs and the container image copy beside a program.

use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result, bail};

/// Shared libraries `prog` loads, the loader included, as ldd prints them.
pub fn libraries(prog: &str) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(prog)
        .output()
        .with_context(|| format!("ldd {prog}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not found") {
        bail!("ldd {prog}: a library is missing:\n{text}");
    }
    Ok(parse(&text))
}

fn parse(text: &str) -> Vec<PathBuf> {
    let mut libs = Vec::new();
    for l in text.lines() {
        let l = l.trim();
        if let Some((_, rest)) = l.split_once("=> ") {
            if let Some(path) = rest.split_whitespace().next()
                && path.starts_with('/')
            {
                libs.push(PathBuf::from(path));
            }
        } else if let Some(path) = l.split_whitespace().next()
            && path.starts_with('/')
        {
            libs.push(PathBuf::from(path)); // the loader itself
        }
    }
    libs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_and_the_loader_not_the_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }
}
