//! The live screen's `/` filter: `proc:nginx netns:web dev:eth0 port:8080`,
//! or bare words matched against every field. Pure.

/// What a drop line or a group offers to the filter (raw strings: the
/// filter compares, the screen escapes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The socket owner's (else the task's) pid and comm.
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Namespace inode and name (`ip netns` name, container, pod).
    pub netns: Option<u64>,
    pub netns_name: Option<String>,
    pub dev: Option<String>,
    /// Source and destination ports (a listener's port).
    pub ports: Vec<u16>,
    /// The whole line as shown, for bare words.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    /// `proc:` a comm substring, or a pid.
    Proc(String),
    /// `netns:` an inode, or a name substring.
    Netns(String),
    Dev(String),
    Port(u16),
    /// Anywhere in the line.
    Word(String),
}

/// A parsed filter: every term must match (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    terms: Vec<Term>,
    /// What was typed, shown in the status line.
    pub source: String,
}

impl Filter {
    /// `proc:X` (`comm:`, `pid:`), `netns:X`, `dev:X`, `port:N`, or bare
    /// words; an empty text is no filter.
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut terms = Vec::new();
        for word in text.split_whitespace() {
            let term = match word.split_once(':') {
                Some((key, value)) if !value.is_empty() => match key {
                    "proc" | "comm" | "pid" => Term::Proc(value.into()),
                    "netns" | "ns" => Term::Netns(value.into()),
                    "dev" => Term::Dev(value.into()),
                    "port" => Term::Port(value.parse().map_err(|_| {
                        format!("port:{value}: expected a port number (0 to 65535)")
                    })?),
                    _ => {
                        return Err(format!(
                            "{key}: unknown key (proc:, netns:, dev:, port:, or a word)"
                        ));
                    }
                },
                Some((key, _)) => return Err(format!("{key}: expects a value ({key}:VALUE)")),
                None => Term::Word(word.into()),
            };
            terms.push(term);
        }
        Ok(Filter {
            terms,
            source: text.trim().to_string(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Every term matches; a term about a field the facts lack does not.
    pub fn matches(&self, f: &Facts) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Proc(v) => match v.parse::<u32>() {
                Ok(pid) => f.pid == Some(pid),
                Err(_) => f.comm.as_deref().is_some_and(|c| c.contains(v.as_str())),
            },
            Term::Netns(v) => match v.parse::<u64>() {
                Ok(ino) => f.netns == Some(ino),
                Err(_) => f
                    .netns_name
                    .as_deref()
                    .is_some_and(|n| n.contains(v.as_str())),
            },
            Term::Dev(v) => f.dev.as_deref() == Some(v.as_str()),
            Term::Port(p) => f.ports.contains(p),
            Term::Word(w) => f.text.contains(w.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nginx() -> Facts {
        Facts {
            pid: Some(4242),
            comm: Some("nginx".into()),
            netns: Some(4026532177),
            netns_name: Some("web pod prod/web-1".into()),
            dev: Some("eth0".into()),
            ports: vec![40212, 8080],
            text: "rp_filter IP_RPFILTER ip_rcv_finish_core+0x2f5".into(),
        }
    }

    #[test]
    fn parses_keys_and_words() {
        let f = Filter::parse("  proc:nginx netns:web dev:eth0 port:8080 RPFILTER ").unwrap();
        assert_eq!(f.terms.len(), 5);
        assert_eq!(f.source, "proc:nginx netns:web dev:eth0 port:8080 RPFILTER");
        assert!(f.matches(&nginx()));
        assert!(Filter::parse("").unwrap().is_empty());
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        assert!(
            Filter::parse("port:http")
                .unwrap_err()
                .contains("port number")
        );
        assert!(Filter::parse("port:70000").is_err());
        assert!(
            Filter::parse("user:root")
                .unwrap_err()
                .contains("unknown key")
        );
        assert!(Filter::parse("dev:").unwrap_err().contains("dev:VALUE"));
    }

    #[test]
    fn each_term_narrows() {
        let n = nginx();
        for (text, want) in [
            ("proc:4242", true),
            ("pid:4243", false),
            ("comm:ngi", true),
            ("proc:apache", false),
            ("netns:4026532177", true),
            ("netns:4026532178", false),
            ("netns:prod/web", true),
            ("dev:eth0", true),
            ("dev:eth", false),
            ("port:40212", true),
            ("port:53", false),
            ("ip_rcv", true),
            ("proc:nginx port:53", false),
        ] {
            assert_eq!(Filter::parse(text).unwrap().matches(&n), want, "{text}");
        }
        // A group of no namespace (the neighbour table) is not in netns:web.
        let table = Facts {
            text: "table ipv4".into(),
            ..Facts::default()
        };
        assert!(!Filter::parse("netns:web").unwrap().matches(&table));
        assert!(Filter::parse("ipv4").unwrap().matches(&table));
    }
}
