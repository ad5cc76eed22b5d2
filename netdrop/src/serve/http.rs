//! The HTTP side: `/metrics` (OpenMetrics when the scraper asks for it, else
//! the Prometheus text format), `/healthz`, and nothing else. Connections are
//! bounded in number and in how long they may take to send a request.

use std::{convert::Infallible, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{ACCEPT, CONTENT_TYPE},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::{encoding, registry::Registry};
use tokio::{net::TcpListener, sync::Semaphore};

use super::state::State;

/// Scrapes served at once; more wait for the listen backlog.
const MAX_CONNECTIONS: usize = 16;
/// A client that has not sent its request headers by then is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Server {
    pub registry: Registry,
    pub state: Arc<std::sync::Mutex<State>>,
}

/// Accepts and answers until the task is dropped.
pub async fn serve(listener: TcpListener, server: Arc<Server>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!("metrics endpoint: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let server = server.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(respond(&server, &req)) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                // One request per connection: an idle client holds no slot.
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!("metrics endpoint: connection: {e}");
            }
            drop(permit);
        });
    }
}

fn respond(server: &Server, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ty: &'static str, body: String| {
        Response::builder()
            .status(status)
            .header(CONTENT_TYPE, ty)
            .body(Full::new(Bytes::from(body)))
            .expect("static headers")
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let openmetrics = req
                .headers()
                .get(ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("application/openmetrics-text"));
            let mut body = String::new();
            let (ty, done) = if openmetrics {
                (
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    encoding::text::encode(&mut body, &server.registry),
                )
            } else {
                (
                    encoding::prometheus_text::CONTENT_TYPE,
                    encoding::prometheus_text::encode(&mut body, &server.registry),
                )
            };
            server
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .scraped();
            match done {
                Ok(()) => reply(StatusCode::OK, ty, body),
                Err(_) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "encoding failed\n".into(),
                ),
            }
        }
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        "/" => reply(
            StatusCode::OK,
            "text/html",
            "<html><body><h1>netdrop</h1><p><a href=\"/metrics\">metrics</a></p></body></html>\n"
                .into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics\n".into(),
        ),
    }
}
