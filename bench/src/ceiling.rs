//! The ceiling: a bare axum handler that answers every `GET /scim/v2/Users`
//! with the same small SCIM ListResponse (one user), served from a runtime
//! of its own with two worker threads — like the server process, and beside
//! the same load tool — so the most this machine can serve is measured in
//! the same run.
use std::net::SocketAddr;

use axum::{
    Router,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use tokio::runtime::Runtime;

/// One user, shaped like the facade's answer to a `userName eq` lookup.
pub const BODY: &str = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":1,"startIndex":1,"itemsPerPage":1,"Resources":[{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"0190a0b4-7c2e-7d3a-9f10-2b9c1d4e5f60","externalId":"ext1","userName":"user1@bench.example","name":{"givenName":"Bench","familyName":"User1"},"displayName":"Bench User1","emails":[{"value":"user1@bench.example","type":"work","primary":true}],"active":true,"roles":[{"value":"rep","primary":true}],"meta":{"resourceType":"User","created":"2026-01-01T00:00:00Z","lastModified":"2026-01-01T00:00:00Z","version":"W/\"1\"","location":"http://127.0.0.1/scim/v2/Users/0190a0b4-7c2e-7d3a-9f10-2b9c1d4e5f60"}}]}"#;

pub struct Ceiling {
    runtime: Option<Runtime>,
    pub addr: SocketAddr,
}

impl Ceiling {
    pub fn start() -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ceiling")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let app = Router::new().route("/scim/v2/Users", get(users));
        runtime.spawn(async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => {
                    if let Err(e) = axum::serve(listener, app).await {
                        eprintln!("ceiling server failed: {e}");
                    }
                }
                Err(e) => eprintln!("ceiling listener: {e}"),
            }
        });
        Ok(Self {
            runtime: Some(runtime),
            addr,
        })
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn users() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/scim+json")],
        BODY,
    )
}
