//! Kernel addresses → `symbol+0xoffset`, from /proc/kallsyms (read once at start).

use std::{fs, io, path::Path};

/// Sorted text symbols of the running kernel (and its modules).
#[derive(Debug, Default)]
pub struct Kallsyms {
    /// (address, name), sorted by address.
    syms: Vec<(u64, Box<str>)>,
}

impl Kallsyms {
    pub fn load(path: &Path) -> io::Result<Kallsyms> {
        Ok(Kallsyms::parse(&fs::read_to_string(path)?))
    }

    /// Parses kallsyms text; keeps function symbols only. All-zero addresses
    /// (kptr_restrict for an unprivileged reader) yield an empty table.
    pub fn parse(text: &str) -> Kallsyms {
        let mut syms: Vec<(u64, Box<str>)> = text
            .lines()
            .filter_map(|line| {
                let mut it = line.split_ascii_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let ty = it.next()?;
                let name = it.next()?;
                (addr != 0 && matches!(ty, "t" | "T" | "w" | "W")).then(|| (addr, name.into()))
            })
            .collect();
        syms.sort_unstable_by_key(|(a, _)| *a);
        Kallsyms { syms }
    }

    /// Every function as (start, end, name): it ends where the next symbol starts.
    pub fn functions(&self) -> impl Iterator<Item = (u64, u64, &str)> {
        self.syms
            .windows(2)
            .map(|w| (w[0].0, w[1].0, &*w[0].1))
            .filter(|(s, e, _)| e > s)
    }

    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// `name+0xoff` of the symbol containing `addr`, or the raw address.
    pub fn resolve(&self, addr: u64) -> String {
        if addr == 0 {
            return String::new();
        }
        match self.syms.partition_point(|(a, _)| *a <= addr) {
            0 => format!("{addr:#x}"),
            i => {
                let (start, name) = &self.syms[i - 1];
                format!("{name}+{:#x}", addr - start)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
ffffffff81000000 T _stext
ffffffff81a00000 t neigh_resolve_output
ffffffff81a00400 T ip_finish_output2
ffffffff81a00800 d some_data
ffffffffc0000000 t veth_xmit\t[veth]
";

    #[test]
    fn resolves_to_containing_symbol() {
        let k = Kallsyms::parse(TEXT);
        assert_eq!(k.resolve(0xffffffff81a00123), "neigh_resolve_output+0x123");
        assert_eq!(k.resolve(0xffffffff81a00400), "ip_finish_output2+0x0");
        // data symbols are skipped: an address after it still belongs to the function
        assert_eq!(k.resolve(0xffffffff81a00900), "ip_finish_output2+0x500");
        assert_eq!(k.resolve(0xffffffffc0000010), "veth_xmit+0x10");
        assert_eq!(k.resolve(0x1000), "0x1000");
        assert_eq!(k.resolve(0), "");
    }

    #[test]
    fn restricted_kallsyms_is_empty() {
        let k = Kallsyms::parse("0000000000000000 T _stext\n0000000000000000 t foo\n");
        assert!(k.is_empty());
    }
}
