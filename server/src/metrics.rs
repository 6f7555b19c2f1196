//! Prometheus metrics: one global recorder per process (the SCIM facade
//! records into it too, with the `metrics` macros), rendered on a listener of
//! its own (`GET /metrics`), plus the gRPC layer that counts calls.
use std::{
    collections::HashSet,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{Router, http::header, routing::get};
use http_body::{Body, Frame, SizeHint};
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use prost::Message as _;
use tokio::net::TcpListener;

/// Latency buckets (seconds) of every histogram.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global recorder, once;
/// later calls return the same handle.
pub fn install() -> Result<PrometheusHandle, String> {
    RECORDER
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .map_err(|e| e.to_string())?
                .install_recorder()
                .map_err(|e| e.to_string())?;
            describe();
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .map_err(|e| e.to_string())?;
            Ok(handle)
        })
        .clone()
}

fn describe() {
    describe_counter!(
        "provisioning_grpc_requests_total",
        "gRPC calls handled, by service, method and status code (CANCELLED: the caller left or the call timed out)"
    );
    describe_histogram!(
        "provisioning_grpc_request_duration_seconds",
        Unit::Seconds,
        "gRPC call latency, by service and method (for streams: until the stream ended)"
    );
    describe_counter!(
        "provisioning_auth_failures_total",
        "Refused credentials, by reason"
    );
    describe_histogram!(
        "provisioning_db_query_duration_seconds",
        Unit::Seconds,
        "Database statement latency, by pool, statement kind and outcome"
    );
    describe_histogram!(
        "provisioning_db_begin_write_duration_seconds",
        Unit::Seconds,
        "Time to open a write transaction (waiting for the writer on SQLite)"
    );
    describe_gauge!(
        "provisioning_db_pool_connections",
        "Open database connections, by pool and state (idle or in_use)"
    );
    describe_gauge!(
        "provisioning_db_pool_max_connections",
        "Most connections each pool may open"
    );
    describe_gauge!("provisioning_watchers", "Open WatchEvents streams");
    describe_counter!(
        "provisioning_watch_events_delivered_total",
        "Audit events handed to WatchEvents streams"
    );
    describe_counter!(
        "provisioning_watch_lagging_total",
        "WatchEvents streams ended because the caller stopped reading"
    );
}

/// What a scrape refreshes before rendering (e.g. pool gauges).
pub type OnScrape = Arc<dyn Fn() + Send + Sync>;

/// Binds `addr` and serves `GET /metrics` until `shutdown`; returns the
/// bound address and the serving task.
pub async fn serve(
    addr: SocketAddr,
    on_scrape: Option<OnScrape>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    let handle = install()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            if let Some(refresh) = &on_scrape {
                refresh();
            }
            let body = handle.render();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    let task = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%err, "metrics listener failed");
        }
    });
    Ok((bound, task))
}

/// `/package.Service/Method` paths this server implements; anything else is
/// counted as `unknown`, so callers cannot grow the label set.
fn known_methods() -> &'static HashSet<String> {
    static KNOWN: OnceLock<HashSet<String>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut known = HashSet::new();
        for set in [
            provisioning_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
                continue;
            };
            for file in set.file {
                for service in &file.service {
                    for method in &service.method {
                        known.insert(format!(
                            "/{}.{}/{}",
                            file.package(),
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
        }
        for reflection in ["v1", "v1alpha"] {
            known.insert(format!(
                "/grpc.reflection.{reflection}.ServerReflection/ServerReflectionInfo"
            ));
        }
        known
    })
}

fn code_name(code: &[u8]) -> &'static str {
    match code {
        b"0" => "OK",
        b"1" => "CANCELLED",
        b"2" => "UNKNOWN",
        b"3" => "INVALID_ARGUMENT",
        b"4" => "DEADLINE_EXCEEDED",
        b"5" => "NOT_FOUND",
        b"6" => "ALREADY_EXISTS",
        b"7" => "PERMISSION_DENIED",
        b"8" => "RESOURCE_EXHAUSTED",
        b"9" => "FAILED_PRECONDITION",
        b"10" => "ABORTED",
        b"11" => "OUT_OF_RANGE",
        b"12" => "UNIMPLEMENTED",
        b"13" => "INTERNAL",
        b"14" => "UNAVAILABLE",
        b"15" => "DATA_LOSS",
        b"16" => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// Counts one call once: when its status is known, or as CANCELLED when it
/// is dropped before (the caller left, or the server's timeout hit).
struct Call {
    service: String,
    method: String,
    start: Instant,
    done: bool,
}

impl Call {
    fn new(path: &str) -> Self {
        let (service, method) = if known_methods().contains(path) {
            let trimmed = path.trim_start_matches('/');
            let (service, method) = trimmed.split_once('/').unwrap_or((trimmed, ""));
            (service.to_owned(), method.to_owned())
        } else {
            ("unknown".to_owned(), "unknown".to_owned())
        };
        Self {
            service,
            method,
            start: Instant::now(),
            done: false,
        }
    }

    fn finish(&mut self, code: &'static str) {
        if self.done {
            return;
        }
        self.done = true;
        counter!(
            "provisioning_grpc_requests_total",
            "service" => self.service.clone(),
            "method" => self.method.clone(),
            "code" => code,
        )
        .increment(1);
        histogram!(
            "provisioning_grpc_request_duration_seconds",
            "service" => self.service.clone(),
            "method" => self.method.clone(),
        )
        .record(self.start.elapsed().as_secs_f64());
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish("CANCELLED");
    }
}

/// A tower layer for the tonic server: counts calls by method and code.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body + Unpin + Send + 'static,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let mut call = Call::new(request.uri().path());
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(request).await?;
            // Errors are trailers-only responses: the status is in the headers.
            if let Some(code) = response.headers().get("grpc-status") {
                call.finish(code_name(code.as_bytes()));
            }
            Ok(response.map(|inner| MeteredBody { inner, call }))
        })
    }
}

/// A response body that counts its call when the trailers carry the status.
pub struct MeteredBody<B> {
    inner: B,
    call: Call,
}

impl<B: Body + Unpin> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(|t| t.get("grpc-status")) {
                    this.call.finish(code_name(code.as_bytes()));
                }
            }
            Poll::Ready(Some(Err(_))) => this.call.finish("INTERNAL"),
            Poll::Ready(None) => this.call.finish("UNKNOWN"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
