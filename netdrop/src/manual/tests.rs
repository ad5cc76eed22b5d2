use super::*;

/// Every subcommand (but clap's `help`) with its long flags, globals included.
fn commands() -> Vec<(String, Vec<String>)> {
    let mut root = Cli::command();
    root.build();
    root.get_subcommands()
        .filter(|s| s.get_name() != "help")
        .map(|s| {
            let longs = s
                .get_arguments()
                .filter_map(|a| a.get_long())
                .map(str::to_string)
                .collect();
            (s.get_name().to_string(), longs)
        })
        .collect()
}

fn script(shell: Shell) -> String {
    let mut out = Vec::new();
    completions(shell, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn completions_name_every_subcommand_and_flag() {
    let cmds = commands();
    for want in [
        "watch",
        "diagnose",
        "record",
        "replay",
        "hist",
        "serve",
        "completions",
        "man",
    ] {
        assert!(cmds.iter().any(|(n, _)| n == want), "{want} missing");
    }
    for shell in Shell::ALL {
        let text = script(shell);
        for (name, longs) in &cmds {
            // How each shell's script spells a subcommand and a long flag.
            let sub = match shell {
                Shell::Bash => format!("netdrop,{name})"),
                Shell::Zsh => format!("({name})"),
                Shell::Fish => format!("-a \"{name}\""),
            };
            assert!(text.contains(&sub), "{shell:?}: {sub} missing");
            for long in longs {
                let flag = match shell {
                    Shell::Fish => format!("-l {long}"),
                    _ => format!("--{long}"),
                };
                assert!(text.contains(&flag), "{shell:?}: {name} {flag} missing");
            }
        }
        // The value lists clap knows are offered too.
        for value in ["always", "never", "accept_queue_full", "json"] {
            assert!(text.contains(value), "{shell:?}: value {value} missing");
        }
    }
}

#[test]
fn a_page_per_subcommand_with_exit_status_and_environment() {
    let pages = pages();
    let names: Vec<&str> = pages.iter().map(|p| p.file_name.as_str()).collect();
    let mut want = vec!["netdrop.1".to_string()];
    want.extend(commands().iter().map(|(n, _)| format!("netdrop-{n}.1")));
    assert_eq!(names, want);
    let main = &pages[0].roff;
    for (name, _) in commands() {
        assert!(
            main.contains(&format!("netdrop\\-{name}(1)")),
            "{name} in netdrop.1"
        );
    }
    for page in &pages {
        let r = &page.roff;
        for section in ["EXIT STATUS", "ENVIRONMENT", "SEE ALSO", "OPTIONS"] {
            assert!(
                r.contains(&format!(".SH \"{section}\"")) || r.contains(&format!(".SH {section}")),
                "{}: {section} section",
                page.file_name
            );
        }
        for var in ["NO_COLOR", "NETDROP_LOG", "NETDROP_KUBELET_LOG_DIR"] {
            assert!(r.contains(var), "{}: {var}", page.file_name);
        }
        for code in ["0", "1", "2"] {
            assert!(
                r.contains(&format!(".TP\n\\fB{code}\\fR")),
                "{}: exit {code}",
                page.file_name
            );
        }
        let damaged = r.contains(".TP\n\\fB3\\fR");
        let wants_3 = page.file_name == "netdrop.1" || page.file_name == "netdrop-replay.1";
        assert_eq!(
            damaged, wants_3,
            "{}: exit 3 only for replay",
            page.file_name
        );
    }
    for (name, longs) in commands() {
        let page = pages
            .iter()
            .find(|p| p.file_name == format!("netdrop-{name}.1"))
            .unwrap();
        for long in longs {
            let flag = format!("\\-\\-{}", long.replace('-', "\\-"));
            assert!(page.roff.contains(&flag), "{}: {flag}", page.file_name);
        }
    }
}

#[test]
fn pages_are_written_to_a_directory() {
    let dir = std::env::temp_dir().join(format!("netdrop-man-{}", std::process::id()));
    let paths = write_pages(&dir.join("man1")).unwrap();
    assert_eq!(paths.len(), pages().len());
    for p in &paths {
        assert!(
            std::fs::read_to_string(p).unwrap().starts_with(".ie"),
            "{}",
            p.display()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
