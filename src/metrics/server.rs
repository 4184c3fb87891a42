//! Floor L4 (`metrics`). The `/metrics` endpoint: one thread running a `tiny_http` server.
//! `GET /metrics` (or `HEAD`) answers the text exposition format 0.0.4; any
//! other path is 404, any other method 405. A scrape renders the registry on
//! this thread: capture and workers never wait for it (they publish into
//! atomics; histograms are merged with `try_lock`).

use super::{Metrics, CONTENT_TYPE};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Why the endpoint did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("--metrics-listen {addr}: {detail}")]
    Bind { addr: String, detail: String },
    #[error("cannot start the metrics thread: {0}")]
    Spawn(std::io::Error),
}

/// A running endpoint; [`stop`](Self::stop) ends it.
pub struct MetricsServer {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Bind `addr` (`host:port`; port 0 = any free port) and serve `m`.
    pub fn start(addr: &str, m: Arc<Metrics>) -> Result<MetricsServer, ServerError> {
        let server = tiny_http::Server::http(addr).map_err(|e| ServerError::Bind {
            addr: addr.to_string(),
            detail: e.to_string(),
        })?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| ServerError::Bind {
                addr: addr.to_string(),
                detail: "not an IP address".into(),
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let server = Arc::new(server);
        let srv = server.clone();
        let thread = std::thread::Builder::new()
            .name("zw-metrics".into())
            .spawn(move || serve(&srv, &m, &s))
            .map_err(ServerError::Spawn)?;
        Ok(MetricsServer {
            addr: bound,
            server,
            stop,
            thread: Some(thread),
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop serving and join the thread (a scrape in progress finishes first).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(server: &tiny_http::Server, m: &Metrics, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let req = match server.recv() {
            Ok(r) => r,
            // `unblock` (stop), or a broken connection: the loop condition decides.
            Err(_) => continue,
        };
        let path = req.url().split('?').next().unwrap_or("");
        let method = req.method().clone();
        let resp = if path != "/metrics" {
            tiny_http::Response::from_data(b"not found; try /metrics\n".to_vec())
                .with_status_code(404)
        } else if !matches!(method, tiny_http::Method::Get | tiny_http::Method::Head) {
            tiny_http::Response::from_data(b"method not allowed\n".to_vec()).with_status_code(405)
        } else {
            let mut r = tiny_http::Response::from_data(m.render());
            if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], CONTENT_TYPE) {
                r = r.with_header(h);
            }
            r
        };
        let _ = req.respond(resp);
    }
}
