//! A real Prometheus server (Debian's `prometheus`) on loopback, scraping
//! `netdrop serve`, and the few HTTP requests the tests make (std only: a
//! GET over a TcpStream).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::TempDir;

/// A loopback address with a port free now.
pub fn free_addr() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// `GET path` → (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: text/plain\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a query parameter.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sample values of one series family on a metrics page: (labels, value).
pub fn samples(page: &str, metric: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = match name_labels.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (name_labels, ""),
        };
        if let (true, Ok(v)) = (name == metric, value.parse()) {
            out.push((labels.to_string(), v));
        }
    }
    out
}

/// Series on a metrics page: its sample lines (neither comments nor blank).
pub fn series_count(page: &str) -> usize {
    page.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count()
}

pub fn prometheus_bin() -> Option<PathBuf> {
    ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

pub fn promtool_bin() -> Option<PathBuf> {
    ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A Prometheus server scraping `targets` every second, with `rules`
/// evaluated every second; killed and its data removed on Drop.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    _dir: TempDir,
}

impl Prometheus {
    pub fn start(targets: &[SocketAddr], rules: Option<&Path>) -> Result<Prometheus> {
        let bin = prometheus_bin().context("prometheus is not installed (scripts/setup.sh)")?;
        let dir = TempDir::new()?;
        let addr = free_addr()?;
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let rule_files = match rules {
            Some(r) => format!("rule_files: ['{}']\n", r.display()),
            None => String::new(),
        };
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n{rule_files}scrape_configs:\n  - job_name: netdrop\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting prometheus")?;
        let mut p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = http_get(addr, "/-/ready") {
                return Ok(p);
            }
            if let Some(status) = p.child.try_wait()? {
                bail!("prometheus exited ({status}): {}", p.log());
            }
            if Instant::now() > deadline {
                bail!("prometheus not ready within 30 s: {}", p.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An API call's `data`.
    pub fn api(&self, path_and_query: &str) -> Result<Value> {
        let (status, body) = http_get(self.addr, path_and_query)?;
        let v: Value = serde_json::from_str(&body)
            .with_context(|| format!("{path_and_query}: HTTP {status}: {body}"))?;
        if v["status"] != "success" {
            bail!("{path_and_query}: {body}");
        }
        Ok(v["data"].clone())
    }

    /// An instant query's result vector.
    pub fn query(&self, expr: &str) -> Result<Vec<Value>> {
        let data = self.api(&format!("/api/v1/query?query={}", urlencode(expr)))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The value of an instant query that gives one series (None: no series).
    pub fn value(&self, expr: &str) -> Result<Option<f64>> {
        let r = self.query(expr)?;
        Ok(r.first().and_then(|s| s["value"][1].as_str()?.parse().ok()))
    }

    /// The raw samples (unix seconds, value) of `selector` over the last `range`.
    pub fn raw_samples(&self, selector: &str, range: &str) -> Result<Vec<(f64, f64)>> {
        let r = self.query(&format!("{selector}[{range}]"))?;
        let mut out = Vec::new();
        for series in r {
            for pair in series["values"].as_array().cloned().unwrap_or_default() {
                let t = pair[0].as_f64().unwrap_or(0.0);
                let v = pair[1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                out.push((t, v));
            }
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(out)
    }

    /// Waits until `expr` gives a value `ok` accepts; returns it.
    pub fn wait_for(&self, expr: &str, timeout: Duration, ok: impl Fn(f64) -> bool) -> Result<f64> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.value(expr)?
                && ok(v)
            {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!(
                    "{expr}: not as expected within {timeout:?} (now {:?})",
                    self.value(expr)?
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_the_sample_lines() {
        let page = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\na_total{x=\"2\"} 3\n\nb 1\n# EOF\n";
        assert_eq!(series_count(page), 3);
        assert_eq!(samples(page, "a_total").len(), 2);
    }
}
