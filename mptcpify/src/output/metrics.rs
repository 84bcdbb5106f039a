//! `--metrics [ADDRESS:]PORT`: Prometheus scrapes the instance at
//! `http://ADDRESS:PORT/metrics`. The address is bound before anything is
//! attached (a port in use is an error at start, exit 21); once attached,
//! each scrape reads the instance's counters from the kernel, through the
//! ids of its programs and their COUNTERS map, as `mptcpify status` reads
//! any instance's, and `mptcpify_core::output::metrics` writes them.
//! HTTP/1.1 by hyper, on the runtime mptcpify already runs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use aya::programs::ProgramInfo;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use mptcpify_core::output::metrics::{render, Snapshot, CONTENT_TYPE, PATH};

use crate::bpf::instances;
use crate::errors::Failure;

/// Listens on `address`, or says why not, with the fix.
pub fn bind(address: SocketAddr) -> Result<std::net::TcpListener, Failure> {
    let listener = std::net::TcpListener::bind(address).map_err(|e| {
        let fix = match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "Another program listens there (`ss -ltnp 'sport = :{}'` names it): choose \
                 another port, e.g. --metrics {}.",
                address.port(),
                address.port().wrapping_add(1).max(1024)
            ),
            std::io::ErrorKind::AddrNotAvailable => format!(
                "No interface of this network namespace has {}: give one of its addresses \
                 (`ip address`), 0.0.0.0 for all, or a port alone for loopback.",
                address.ip()
            ),
            _ => "Give another address or port (--metrics [ADDRESS:]PORT).".to_string(),
        };
        Failure::Metrics {
            what: format!("--metrics {address}: cannot listen there: {e}"),
            fix,
        }
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| anyhow::anyhow!("--metrics {address}: {e}"))?;
    Ok(listener)
}

/// What a scrape reads: the instance's programs, by id.
#[derive(Clone)]
pub struct Source {
    /// The upgrader: its COUNTERS map and its skipped calls.
    pub upgrader: u32,
    /// The outcome programs, by the kernel function each follows.
    pub outcomes: Vec<(&'static str, u32)>,
    pub kernel: String,
    /// The policy in force (a reload changes it).
    pub policy: Arc<RwLock<String>>,
}

impl Source {
    fn snapshot(&self) -> Snapshot {
        let mut wanted = vec![self.upgrader];
        wanted.extend(self.outcomes.iter().map(|(_, id)| *id));
        let programs = instances::programs(&wanted);
        let by_id = |id: u32| programs.iter().find(|p| p.id() == id);
        let upgrader = by_id(self.upgrader);
        let tallies = upgrader
            .map(|p| instances::read_tallies(&instances::instance_maps(p)))
            .unwrap_or_default();
        Snapshot {
            counters: upgrader
                .and_then(instances::counters_map)
                .map(|map| instances::read_counters(&map))
                .unwrap_or_default(),
            skipped_calls: upgrader.map(ProgramInfo::recursion_misses),
            missed_calls: self
                .outcomes
                .iter()
                .filter_map(|(function, id)| {
                    Some((function.to_string(), by_id(*id)?.recursion_misses()))
                })
                .collect(),
            kernel: self.kernel.clone(),
            policy: self.policy.read().map(|p| p.clone()).unwrap_or_default(),
            selectors: tallies.selectors,
            fallbacks: tallies.fallbacks,
            refused_options: tallies.refused_options,
        }
    }

    fn answer(&self, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let (status, content_type, body) = if request.uri().path() == PATH {
            (StatusCode::OK, CONTENT_TYPE, render(&self.snapshot()))
        } else {
            (
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                format!("mptcpify serves its metrics at {PATH}\n"),
            )
        };
        Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("a response of constant parts")
    }
}

/// Serves scrapes on `listener` until the runtime ends; a connection
/// that fails ends alone.
pub async fn serve(listener: std::net::TcpListener, source: Source) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors, a connection reset before accept: the
            // next scrape tries again.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let source = source.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = source.answer(&request);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
