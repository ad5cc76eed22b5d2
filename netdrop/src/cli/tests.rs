use super::*;

#[test]
fn flags_parse_and_bad_values_are_refused() {
    let cli =
        Cli::try_parse_from(["netdrop", "watch", "--output", "json", "--duration", "2.5"]).unwrap();
    let Command::Watch(w) = cli.command else {
        panic!("not watch")
    };
    assert_eq!(
        (w.output, w.duration, w.kernel.ring_buffer_kib),
        (OutputFormat::Json, Some(2.5), 1024)
    );
    let cli = Cli::try_parse_from(["netdrop", "diagnose", "-o", "json"]).unwrap();
    let Command::Diagnose(d) = cli.command else {
        panic!("not diagnose")
    };
    assert_eq!((d.output, d.duration), (OutputFormat::Json, 10.0));
    for bad in [
        vec!["netdrop", "watch", "--duration", "0"],
        vec!["netdrop", "watch", "--duration", "-1"],
        vec!["netdrop", "watch", "--ring-buffer-kib", "3"],
        vec!["netdrop", "watch", "--output", "xml"],
        vec!["netdrop", "watch", "--bogus"],
        vec!["netdrop"],
        vec!["netdrop", "diagnose", "--duration", "0"],
        vec!["netdrop", "diagnose", "--snapshot-interval", "x"],
        vec!["netdrop", "watch", "--cause", "bogus"],
        vec!["netdrop", "watch", "--pid", "-3"],
        vec!["netdrop", "watch", "--addr", "not-an-ip"],
        vec!["netdrop", "serve", "--listen", "9617"],
        vec!["netdrop", "serve", "--listen", "localhost:x"],
        vec!["netdrop", "serve", "--top", "0"],
        vec!["netdrop", "serve", "--top", "1001"],
        vec!["netdrop", "serve", "--retain", "-1"],
    ] {
        assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
    }
}

#[test]
fn hook_choice_flags_are_on_every_observing_subcommand() {
    for sub in [
        &["watch"][..],
        &["diagnose"],
        &["hist"],
        &["record", "-o", "x"],
        &["serve"],
    ] {
        let argv = [&["netdrop"], sub, &["--no-fentry", "--no-raw-tracepoint"]].concat();
        let k = match Cli::try_parse_from(&argv).unwrap().command {
            Command::Watch(a) => a.kernel,
            Command::Diagnose(a) => a.kernel,
            Command::Hist(a) => a.kernel,
            Command::Record(a) => a.kernel,
            Command::Serve(a) => a.kernel,
            Command::Replay(_) | Command::Completions(_) | Command::Man(_) => unreachable!(),
        };
        assert!(k.no_fentry && k.no_raw_tracepoint, "{argv:?}");
    }
    assert!(Cli::try_parse_from(["netdrop", "replay", "x", "--no-fentry"]).is_err());
}

/// The error clap prints for `args`: (its first line, its kind).
fn refused(args: &[&str]) -> (String, clap::error::ErrorKind) {
    let e = Cli::try_parse_from(args).expect_err(&format!("{args:?} accepted"));
    let text = e.to_string();
    (text.lines().next().unwrap_or("").to_string(), e.kind())
}

#[test]
fn time_flags_are_bounded() {
    use clap::error::ErrorKind::ValueValidation;
    let duration = "expected seconds from 0.001 to 31536000 (365 days)";
    let interval = "expected seconds from 0.01 to 3600 (1 hour)";
    let gap = "expected milliseconds from 0.001 to 3600000 (1 hour)";
    let lines = "expected lines per second from 0.001 to 1000000";
    let cases: &[(&[&str], &str, &str)] = &[
        (&["watch", "--duration"], "1e308", duration),
        (&["watch", "--duration"], "nan", duration),
        (&["watch", "--duration"], "NaN", duration),
        (&["watch", "--duration"], "inf", duration),
        (&["watch", "--duration"], "-1", duration),
        (&["watch", "--duration"], "0", duration),
        (&["watch", "--duration"], "1e-9", duration),
        (&["watch", "--duration"], "31536001", duration),
        (&["watch", "--duration"], "ten", duration),
        (&["watch", "--duration"], "", duration),
        (&["diagnose", "--duration"], "1e308", duration),
        (&["record", "-o", "x.ndr", "--duration"], "inf", duration),
        (&["hist", "--duration"], "-5", duration),
        (&["watch", "--interval"], "0", interval),
        (&["watch", "--interval"], "3601", interval),
        (&["watch", "--interval"], "1e-12", interval),
        (&["watch", "--interval"], "nan", interval),
        (&["record", "-o", "x.ndr", "--interval"], "1e308", interval),
        (&["replay", "x.ndr", "--interval"], "0", interval),
        (&["replay", "x.ndr", "--interval"], "inf", interval),
        (&["watch", "--snapshot-interval"], "0.001", interval),
        (&["diagnose", "--snapshot-interval"], "86400", interval),
        (&["hist", "--snapshot-interval"], "-1", interval),
        (&["hist", "--burst-gap-ms"], "0", gap),
        (&["hist", "--burst-gap-ms"], "nan", gap),
        (&["hist", "--burst-gap-ms"], "3600001", gap),
        (&["replay", "x.ndr", "--hist", "--burst-gap-ms"], "-1", gap),
        (&["watch", "--lines-per-sec"], "nan", lines),
        (&["watch", "--lines-per-sec"], "0", lines),
        (&["watch", "--lines-per-sec"], "-1", lines),
        (&["replay", "x.ndr", "--lines-per-sec"], "inf", lines),
        (&["replay", "x.ndr", "--lines-per-sec"], "1e7", lines),
    ];
    for (args, value, want) in cases {
        let argv: Vec<&str> = ["netdrop"]
            .iter()
            .chain(args.iter())
            .chain([value])
            .copied()
            .collect();
        let (line, kind) = refused(&argv);
        assert_eq!(kind, ValueValidation, "{argv:?}: {line}");
        let flag = args.last().unwrap();
        assert_eq!(
            line,
            format!(
                "error: invalid value '{value}' for '{flag} <{}>': {want}",
                if *flag == "--burst-gap-ms" {
                    "MS"
                } else if *flag == "--lines-per-sec" {
                    "N"
                } else {
                    "SECONDS"
                }
            ),
            "{argv:?}"
        );
    }
    // "-inf" looks like flags to clap: refused all the same.
    assert!(Cli::try_parse_from(["netdrop", "watch", "--duration", "-inf"]).is_err());
    // The bounds themselves, and everyday values, are accepted.
    for ok in [
        &[
            "netdrop",
            "watch",
            "--duration",
            "0.001",
            "--interval",
            "0.01",
        ][..],
        &[
            "netdrop",
            "watch",
            "--duration",
            "31536000",
            "--interval",
            "3600",
        ],
        &[
            "netdrop",
            "watch",
            "--snapshot-interval",
            "3600",
            "--lines-per-sec",
            "0.5",
        ],
        &[
            "netdrop",
            "diagnose",
            "--duration",
            "1e1",
            "--snapshot-interval",
            "0.25",
        ],
        &[
            "netdrop",
            "hist",
            "--burst-gap-ms",
            "0.001",
            "--duration",
            "60",
        ],
        &[
            "netdrop",
            "replay",
            "x.ndr",
            "--interval",
            "1",
            "--lines-per-sec",
            "1000000",
        ],
        &[
            "netdrop",
            "record",
            "-o",
            "x.ndr",
            "--duration",
            "86400",
            "--interval",
            "5",
        ],
    ] {
        Cli::try_parse_from(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
}

#[test]
fn filter_flags_are_checked() {
    use clap::error::ErrorKind::ValueValidation;
    let dev = "expected an interface name: 1 to 15 bytes, not \".\" or \"..\", without '/', ':' or whitespace";
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "eth0:1",
        "eth 0",
        "tab\tx",
        "sixteen-bytes-xx",
        "new\nline",
        "nb\u{a0}sp",
    ] {
        let e = Cli::try_parse_from(["netdrop", "watch", "--dev", bad]).unwrap_err();
        assert_eq!(e.kind(), ValueValidation, "{bad:?}: {e}");
        assert!(e.to_string().contains(dev), "{bad:?}: {e}");
    }
    for ok in ["eth0", "fifteen-bytes-x", "veth1234@if5", "ndt-1-0", "é"] {
        let cli = Cli::try_parse_from(["netdrop", "watch", "--dev", ok]).unwrap();
        let Command::Watch(w) = cli.command else {
            panic!()
        };
        assert_eq!(w.filters.dev.as_deref(), Some(ok));
    }
    let (line, _) = refused(&["netdrop", "watch", "--pid", "0"]);
    assert!(line.contains("'0' for '--pid <PID>'"), "{line}");
    let (line, _) = refused(&["netdrop", "watch", "--netns", ""]);
    assert!(line.contains("expected an inode number"), "{line}");
    // Kept as they were: ports 0..=65535, any IP address.
    for bad in [
        &["--port", "65536"][..],
        &["--port", "-1"],
        &["--addr", "198.18.0.256"],
        &["--pid", "x"],
    ] {
        let argv: Vec<&str> = ["netdrop", "watch"].iter().chain(bad).copied().collect();
        assert!(Cli::try_parse_from(&argv).is_err(), "{argv:?}");
    }
    Cli::try_parse_from([
        "netdrop", "watch", "--port", "0", "--addr", "::1", "--pid", "1",
    ])
    .unwrap();
}

/// `-o json` on every subcommand whose results go to stdout; `record -o` is its
/// FILE (progress goes to stderr), and serve, completions and man have none.
#[test]
fn json_output_on_every_command_that_reports() {
    for sub in [
        &["watch"][..],
        &["diagnose"],
        &["hist"],
        &["replay", "x"],
        &["replay", "x", "--report"],
        &["replay", "x", "--hist"],
    ] {
        for flag in ["-o", "--output"] {
            let argv = [&["netdrop"], sub, &[flag, "json"]].concat();
            let output = match Cli::try_parse_from(&argv).unwrap().command {
                Command::Watch(a) => a.output,
                Command::Diagnose(a) => a.output,
                Command::Hist(a) => a.output,
                Command::Replay(a) => a.output,
                _ => unreachable!(),
            };
            assert_eq!(output, OutputFormat::Json, "{argv:?}");
        }
    }
    let Command::Record(r) = Cli::try_parse_from(["netdrop", "record", "-o", "json"])
        .unwrap()
        .command
    else {
        panic!("not record")
    };
    assert_eq!(r.output, PathBuf::from("json"), "record -o stays the FILE");
    for sub in [&["serve"][..], &["completions", "bash"], &["man"]] {
        let argv = [&["netdrop"], sub, &["-o", "json"]].concat();
        assert!(Cli::try_parse_from(&argv).is_err(), "{argv:?}");
    }
}

#[test]
fn color_is_global_and_completions_take_three_shells() {
    use crate::style::ColorChoice;
    for (argv, want) in [
        (&["netdrop", "watch"][..], ColorChoice::Auto),
        (
            &["netdrop", "--color", "always", "watch"],
            ColorChoice::Always,
        ),
        (&["netdrop", "watch", "--color=never"], ColorChoice::Never),
        (
            &["netdrop", "replay", "x", "--color", "always"],
            ColorChoice::Always,
        ),
    ] {
        assert_eq!(Cli::try_parse_from(argv).unwrap().color, want, "{argv:?}");
    }
    assert!(Cli::try_parse_from(["netdrop", "--color", "sometimes", "watch"]).is_err());
    for shell in ["bash", "zsh", "fish"] {
        let cli = Cli::try_parse_from(["netdrop", "completions", shell]).unwrap();
        assert!(matches!(cli.command, Command::Completions(_)), "{shell}");
    }
    assert!(Cli::try_parse_from(["netdrop", "completions", "tcsh"]).is_err());
    let Command::Man(m) = Cli::try_parse_from(["netdrop", "man", "--dir", "/tmp/m"])
        .unwrap()
        .command
    else {
        panic!("not man")
    };
    assert_eq!(m.dir, Some(PathBuf::from("/tmp/m")));
}
