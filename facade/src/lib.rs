//! SCIM 2.0 facade: speaks RFC 7643/7644 on `/scim/v2` and turns each request
//! into gRPC calls to the provisioning core. It never touches the database:
//! the caller's bearer token goes to the core as gRPC metadata, and the core
//! decides which account the request belongs to.

pub mod filter;

mod core;
mod discovery;
mod error;
mod extract;
mod ops;
pub mod patch;
mod routes;
mod serve;
mod user;

use std::{sync::Arc, time::Duration};

pub use error::{ScimError, ScimType};
pub use extract::ArrivedOverTls;
pub use serve::{ServeOptions, serve, serve_with, tls_config};

/// Largest request body accepted (413 above).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How the facade builds URLs, treats proxies and waits for the core.
#[derive(Clone, Debug)]
pub struct FacadeConfig {
    /// Base used in `Location` and `meta.location` (e.g.
    /// `https://scim.example.com`, with or without `/scim/v2`); without it
    /// the request's `Host` is used.
    pub public_url: Option<String>,
    /// Trust `X-Forwarded-Proto` / `X-Forwarded-Host` (only behind a proxy
    /// you run).
    pub trust_forwarded_headers: bool,
    /// A core call not answered within this time is answered 503 with
    /// `Retry-After` (well within Okta's 60-second timeout).
    pub core_timeout: Duration,
    /// A request not answered within this time (all its core calls, retries
    /// included) is answered 503 with `Retry-After`.
    pub request_timeout: Duration,
}

impl Default for FacadeConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            trust_forwarded_headers: false,
            core_timeout: Duration::from_secs(25),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Shared by every handler.
#[derive(Clone, Debug)]
struct AppState {
    core: core::Core,
    config: Arc<FacadeConfig>,
    /// The SCIM base derived from `public_url`, computed once.
    public_base: Option<String>,
}

/// The SCIM router (routes under `/scim/v2`, plus `/healthz` and `/readyz`),
/// talking to the core over `channel`.
pub fn app(channel: tonic::transport::Channel, config: FacadeConfig) -> axum::Router {
    let ops = ops::router(channel.clone());
    let state = AppState {
        core: core::Core::new(channel, config.core_timeout),
        public_base: config
            .public_url
            .as_deref()
            .map(extract::base_from_public_url),
        config: Arc::new(config),
    };
    let inner = routes::router(state);
    // Tolerate a base URL entered with a trailing slash (`/scim/v2//Users`).
    ops.fallback_service(tower::ServiceExt::map_request(
        inner,
        routes::normalize_path,
    ))
}
