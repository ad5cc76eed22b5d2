//! `netdrop serve`: the exporter. The same observation as `watch` (hooks,
//! snapshots, diagnosis), into a [`MetricsSink`] whose state Prometheus
//! scrapes at `/metrics`: drops by cause, namespace and group, the kernel's
//! counters beside them, saturation gauges that move before the drops, the
//! advice, and the agent's own health.

mod encode;
mod http;
pub mod state;
#[cfg(test)]
mod tests;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use anyhow::{Context, Result};
use prometheus_client::registry::Registry;

use crate::session::{SessionOptions, observe};
pub use state::{MetricsSink, State};

/// The exporter's port (unassigned in Prometheus' port allocations list).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9617";

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Series per cause for namespaces and groups (`--top`).
    pub top: usize,
    /// Seconds a gone namespace's series are kept (`--retain`).
    pub retain_s: f64,
    pub session: SessionOptions,
}

/// Binds first (a taken port is an error before anything is loaded), then
/// observes until SIGINT/SIGTERM while the endpoint answers.
pub async fn run(opts: ServeOptions) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("listening on {}", opts.listen))?;
    let mut state = State::new(opts.top);
    state.retain_s = opts.retain_s;
    let state = Arc::new(Mutex::new(state));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(encode::Exposition(state.clone())));
    let server = Arc::new(http::Server {
        registry,
        state: state.clone(),
    });
    eprintln!(
        "netdrop: serving metrics at http://{}/metrics",
        listener.local_addr().unwrap_or(opts.listen)
    );
    let http = tokio::spawn(http::serve(listener, server));
    let mut sink = MetricsSink { state };
    let result = observe(&opts.session, &mut sink).await;
    http.abort();
    let out = result?;
    eprintln!(
        "netdrop: stopped after {:.0} s: {} drops",
        out.session.duration_s, out.summary.total_drops
    );
    Ok(())
}
