//! What operators see of the facade: `/healthz`, `/readyz` (outside
//! `/scim/v2`, no token) and SCIM request metrics in the process's global
//! `metrics` recorder.
use std::time::{Duration, Instant};

use axum::{
    Json, Router,
    extract::{MatchedPath, Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// How long `/readyz` waits for the core.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `/healthz`: the process is alive. `/readyz`: the core answers and reports
/// its database reachable.
pub fn router(channel: Channel) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(channel)
}

async fn healthz() -> Response {
    (StatusCode::OK, Json(json!({"status": "alive"}))).into_response()
}

async fn readyz(State(channel): State<Channel>) -> Response {
    let mut health = HealthClient::new(channel);
    let check = health.check(HealthCheckRequest {
        service: String::new(),
    });
    let (status, reason) = match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(reply)) if reply.get_ref().status == ServingStatus::Serving as i32 => {
            return (StatusCode::OK, Json(json!({"status": "ready"}))).into_response();
        }
        Ok(Ok(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the core cannot reach its database",
        ),
        Ok(Err(_)) => (StatusCode::SERVICE_UNAVAILABLE, "the core is unreachable"),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the core did not answer in time",
        ),
    };
    (status, Json(json!({"status": "unready", "reason": reason}))).into_response()
}

/// Counts every SCIM request by route, method and status, with its latency.
pub async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    // Known methods only, so clients cannot grow the label set.
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "provisioning_scim_requests_total",
        "route" => route.clone(), "method" => method.clone(), "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "provisioning_scim_request_duration_seconds",
        "route" => route, "method" => method
    )
    .record(started.elapsed().as_secs_f64());
    response
}
