//! Runs the matrix on one kernel: in a QEMU guest (TCG), or on the host.
//!
//! A guest gets the share folder `target/vm/<kernel>/share` over 9p: `bin/`
//! (netdrop, the test binaries, their helpers), `tests` (one line per test),
//! `paths` (host paths compiled into the tests → share paths), `run.sh`, and
//! `res/` where the results come back.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::{Binaries, Column, MatrixTest, Outcome, initramfs, kernels::Kernel, place};

const RUN_SH: &str = include_str!("../../vm/run.sh");
/// Memory and CPUs of a guest: two guests would not fit the 2 cores, so one at a time.
const GUEST_MEM_MB: u32 = 2048;
const GUEST_CPUS: u32 = 2;

fn share_layout(share: &Path, bins: &Binaries, tests: &[MatrixTest], timeout: u64) -> Result<()> {
    let _ = fs::remove_dir_all(share);
    fs::create_dir_all(share.join("bin"))?;
    fs::create_dir_all(share.join("res"))?;
    place(&bins.netdrop, &share.join("bin/netdrop"))?;
    let mut paths = String::new();
    for (name, exe) in &bins.tests {
        if tests.iter().any(|t| t.binary == name) {
            place(exe, &share.join("bin").join(name))?;
        }
    }
    for h in &bins.helpers {
        let name = h.file_name().unwrap().to_string_lossy().into_owned();
        place(h, &share.join("bin").join(&name))?;
        paths.push_str(&format!("{} bin/{name}\n", h.display()));
    }
    fs::write(share.join("paths"), paths)?;
    fs::write(share.join("tests"), test_lines(tests))?;
    fs::write(share.join("timeout"), format!("{timeout}\n"))?;
    fs::write(share.join("run.sh"), RUN_SH)?;
    Ok(())
}

fn test_lines(tests: &[MatrixTest]) -> String {
    tests
        .iter()
        .map(|t| {
            let env = if t.env.is_empty() {
                "-".to_string()
            } else {
                t.env.join(" ")
            };
            format!("{} {} {} {env}\n", t.name, t.binary, t.test)
        })
        .collect()
}

/// Boots `kernel` with the matrix and collects its column.
pub fn run_guest(
    work: &Path,
    kernel: &Kernel,
    bins: &Binaries,
    tests: &[MatrixTest],
    timeout: u64,
) -> Result<Column> {
    let dir = work.join(kernel.line.id);
    fs::create_dir_all(&dir)?;
    let share = dir.join("share");
    share_layout(&share, bins, tests, timeout)?;
    let initrd = dir.join("initramfs.cpio");
    initramfs::build(kernel, &initrd)?;
    let console = dir.join("console.log");
    // The whole guest may take every test's timeout, and boot.
    let limit = Duration::from_secs(timeout * tests.len() as u64 + 300);
    eprintln!(
        "xtask: vm: booting {} ({}, {}) under QEMU/TCG; console: {}",
        kernel.line.id,
        kernel.release,
        kernel.packages.join(" "),
        console.display()
    );
    let error = boot(kernel, &initrd, &share, &console, limit).err();
    let mut col = collect(kernel.line.id, &share.join("res"))?;
    if col.release.is_empty() {
        col.release = kernel.release.clone();
    }
    col.error = match (error, col.results.is_empty()) {
        (Some(e), _) => Some(format!("{e:#} (console: {})", console.display())),
        (None, true) => Some(format!(
            "the guest ran no test (console: {})",
            console.display()
        )),
        (None, false) => None,
    };
    Ok(col)
}

/// Boots `kernel` with `initrd` and `share` (9p) until it powers off; fails
/// on a timeout, a QEMU error or a guest that did not reach VM-END.
pub(super) fn boot(
    kernel: &Kernel,
    initrd: &Path,
    share: &Path,
    console: &Path,
    limit: Duration,
) -> Result<()> {
    let log = fs::File::create(console)?;
    let mut child = Command::new("qemu-system-x86_64")
        // TCG only: /dev/kvm on these machines does not run guests.
        .args(["-accel", "tcg,thread=multi", "-cpu", "max"])
        .args([
            "-smp",
            &GUEST_CPUS.to_string(),
            "-m",
            &GUEST_MEM_MB.to_string(),
        ])
        .args([
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
            "-serial",
            "stdio",
        ])
        .args(["-monitor", "none"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 loglevel=4 quiet"])
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=hostshare,security_model=none,id=hs",
            share.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log.try_clone()?)
        .spawn()
        .context("starting qemu-system-x86_64 (scripts/setup.sh installs it)")?;
    let out = child.stdout.take().expect("piped");
    let console_copy = console.to_path_buf();
    // The console goes to its log; progress lines (VM-...) to the terminal too.
    let reader = std::thread::spawn(move || {
        let mut log = fs::OpenOptions::new().append(true).open(console_copy).ok();
        let mut saw_end = false;
        for line in BufReader::new(out).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line).replace('\r', "");
            if let Some(f) = log.as_mut() {
                use std::io::Write;
                let _ = writeln!(f, "{text}");
            }
            if let Some(at) = text.find("VM-") {
                let msg = &text[at..];
                eprintln!("xtask: vm: {msg}");
                saw_end |= msg.starts_with("VM-END");
            }
        }
        saw_end
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
            bail!("the guest ran for more than {} s: killed", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let saw_end = reader.join().unwrap_or(false);
    if !status.success() {
        bail!("qemu exited with {status}");
    }
    if !saw_end {
        bail!("the guest did not reach the end of its /init (no VM-END line)");
    }
    Ok(())
}

/// Runs the matrix tests on this machine's kernel, one at a time.
pub fn run_host(
    work: &Path,
    bins: &Binaries,
    tests: &[MatrixTest],
    timeout: u64,
) -> Result<Column> {
    let res = work.join("host/res");
    let _ = fs::remove_dir_all(&res);
    fs::create_dir_all(&res)?;
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    fs::write(res.join("uname"), format!("{release}\n"))?;
    let mut results = String::new();
    for t in tests.iter().filter(|t| !t.needs_function_hooks) {
        let exe = bins
            .tests
            .get(t.binary)
            .with_context(|| format!("no test binary {}", t.binary))?;
        let log = res.join(format!("{}.log", t.name));
        eprintln!("xtask: vm: host: {}", t.name);
        let t0 = Instant::now();
        let mut c = Command::new("timeout");
        c.arg(timeout.to_string())
            .arg(exe)
            .args(["--exact", t.test, "--test-threads=1", "--nocapture"])
            .env("NETDROP_BIN", &bins.netdrop)
            .env("NO_COLOR", "1")
            .env("NETDROP_EXPECT_HOOKS", "raw_tracepoint:kfree_skb")
            .stdout(fs::File::create(&log)?)
            .stderr(fs::File::options().append(true).open(&log)?);
        for kv in t.env {
            let (k, v) = kv.split_once('=').expect("VAR=value");
            c.env(k, v);
        }
        let st = c.status().context("running a test")?;
        let mut rc = st.code().unwrap_or(-1);
        let text = fs::read_to_string(&log).unwrap_or_default();
        if rc == 0 && !text.contains("test result: ok. 1 passed") {
            rc = 99;
        }
        results.push_str(&format!(
            "{} {rc} {:.1}\n",
            t.name,
            t0.elapsed().as_secs_f64()
        ));
        eprintln!("xtask: vm: host: {} rc={rc}", t.name);
    }
    fs::write(res.join("results"), results)?;
    collect("host", &res)
}

/// Reads a results folder: `results` (NAME RC SECONDS) and each test's log.
fn collect(kernel: &str, res: &Path) -> Result<Column> {
    let release = fs::read_to_string(res.join("uname"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut results = BTreeMap::new();
    let text = fs::read_to_string(res.join("results")).unwrap_or_default();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let (Some(name), Some(rc), Some(secs)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        let log: PathBuf = res.join(format!("{name}.log"));
        let text = fs::read_to_string(&log).unwrap_or_default();
        let hooks = hooks_in(&text);
        let skip = skip_in(&text);
        results.insert(
            name.to_string(),
            Outcome {
                rc: rc.parse().unwrap_or(-1),
                seconds: secs.parse().unwrap_or(0.0),
                hooks,
                skip,
                log,
            },
        );
    }
    Ok(Column {
        kernel: kernel.to_string(),
        release,
        results,
        error: None,
        seconds: 0.0,
    })
}

/// The hooks of the first `netdrop: watching (a, b); ...` line in a log.
pub fn hooks_in(log: &str) -> Vec<String> {
    log.lines()
        .find_map(|l| {
            let rest = &l[l.find("netdrop: watching (")? + "netdrop: watching (".len()..];
            let list = &rest[..rest.find(')')?];
            Some(list.split(", ").map(str::to_string).collect())
        })
        .unwrap_or_default()
}

/// Why a test that passed did not test: the first `SKIP: why` line the
/// harness's `skip_loudly` printed, if any.
pub fn skip_in(log: &str) -> Option<String> {
    log.lines()
        .find_map(|l| l.strip_prefix("SKIP: "))
        .map(|why| why.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_come_from_the_watching_line() {
        let log = "noise\nnetdrop: watching (raw_tracepoint:kfree_skb, fentry:tcp_conn_request); Ctrl-C to stop\n";
        assert_eq!(
            hooks_in(log),
            ["raw_tracepoint:kfree_skb", "fentry:tcp_conn_request"]
        );
        assert!(hooks_in("nothing").is_empty());
    }

    #[test]
    fn skips_come_from_the_harness_banner() {
        let log = "running 1 test\n\n********\nSKIP: conntrack_full: this kernel gives no drop reasons\n********\ntest x ... ok\n";
        assert_eq!(
            skip_in(log).as_deref(),
            Some("conntrack_full: this kernel gives no drop reasons")
        );
        assert_eq!(skip_in("test x ... ok"), None);
    }

    #[test]
    fn test_lines_carry_the_environment() {
        let t = super::super::MATRIX
            .iter()
            .find(|t| t.name == "accept_queue_kprobe")
            .unwrap();
        let line = test_lines(&[*t]);
        assert_eq!(
            line,
            "accept_queue_kprobe drops accept_queue_full NETDROP_TEST_ARGS=--no-fentry NETDROP_EXPECT_HOOKS=raw_tracepoint:kfree_skb,kprobe:tcp_conn_request\n"
        );
    }
}
