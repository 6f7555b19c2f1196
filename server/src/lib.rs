//! The provisioning core: a gRPC service that alone owns the data (accounts,
//! SCIM tokens, users and the audit trail) over SeaORM, on SQLite or
//! PostgreSQL. [`start`] runs it, with the SCIM facade beside it.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use provisioning_facade::FacadeConfig;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

pub mod clock;
pub mod db;
pub mod error;
pub mod grpc;
pub mod keys;
pub mod metrics;
pub mod seed;
pub mod service;

use clock::Clock;
use db::{Db, SqliteSync};
use service::{Core, Limits};

/// The longest a gRPC call may take; past it the caller gets an error well
/// before Okta's 60-second timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(25);
/// How often the database is checked for gRPC health.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// How often batched token last-used times are written.
pub const LAST_USED_FLUSH: Duration = Duration::from_secs(30);

/// How long open gRPC calls (watch streams whose callers do not read) may
/// hold up a shutdown before they are cut.
pub const GRPC_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The services whose health `grpc.health.v1` reports.
const SERVICES: [&str; 4] = [
    "provisioning.v1.AccountService",
    "provisioning.v1.TokenService",
    "provisioning.v1.UserService",
    "provisioning.v1.AuditService",
];

pub struct Options {
    pub database_url: String,
    pub sqlite_sync: SqliteSync,
    pub admin_token: String,
    pub clock: Arc<dyn Clock>,
    pub facade: FacadeConfig,
    /// The SCIM listener's limits and, optionally, TLS.
    pub scim_serve: provisioning_facade::ServeOptions,
    pub limits: Limits,
    /// Serve Prometheus metrics (`GET /metrics`) on this address (port 0:
    /// any free port; see [`Running::metrics_addr`]).
    pub metrics_addr: Option<SocketAddr>,
}

/// A running server; [`Running::shutdown`] stops it gracefully.
pub struct Running {
    pub grpc_addr: SocketAddr,
    pub scim_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    pub core: Arc<Core>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The SCIM listener stops first, so its in-flight requests can still
    /// call the core.
    scim: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

impl Running {
    pub async fn shutdown(self) {
        if let Some((stop, task)) = self.scim {
            let _ = stop.send(true);
            let _ = task.await;
        }
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let Err(err) = self.core.flush_last_used().await {
            tracing::warn!(%err, "could not record token use at shutdown");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("gRPC: {0}")]
    Grpc(String),
    #[error("metrics: {0}")]
    Metrics(String),
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Connects, migrates, and serves gRPC on `grpc` (and SCIM on `scim`, which
/// talks to the gRPC server over a real channel).
pub async fn start(
    options: Options,
    grpc: TcpListener,
    scim: Option<TcpListener>,
) -> Result<Running, StartError> {
    let db = Db::connect(&options.database_url, options.sqlite_sync).await?;
    db.migrate().await?;
    let core = Arc::new(Core::new(
        db,
        options.clock,
        &options.admin_token,
        &options.limits,
    ));
    let api = grpc::Api(core.clone());
    let (stop, stop_rx) = watch::channel(false);
    let grpc_addr = grpc
        .local_addr()
        .map_err(|e| StartError::Grpc(e.to_string()))?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    for name in SERVICES {
        health
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    let reflection = |v1: bool| {
        let builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(provisioning_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        if v1 {
            builder.build_v1().map(|s| (Some(s), None))
        } else {
            builder.build_v1alpha().map(|s| (None, Some(s)))
        }
    };
    let (reflection_v1, _) = reflection(true).map_err(|e| StartError::Grpc(e.to_string()))?;
    let (_, reflection_v1alpha) = reflection(false).map_err(|e| StartError::Grpc(e.to_string()))?;

    let router = tonic::transport::Server::builder()
        .timeout(REQUEST_TIMEOUT)
        .layer(metrics::GrpcMetricsLayer)
        .add_service(health_service)
        .add_optional_service(reflection_v1)
        .add_optional_service(reflection_v1alpha)
        .add_service(api.account_service())
        .add_service(api.token_service())
        .add_service(api.user_service())
        .add_service(api.audit_service());
    let mut tasks = Vec::new();
    let shutdown = stopped(stop_rx.clone());
    let grace = stopped(stop_rx.clone());
    tasks.push(tokio::spawn(async move {
        // TCP_NODELAY: without it small gRPC frames wait on Nagle's algorithm
        // and delayed ACKs (tens of milliseconds per call).
        let incoming = tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true));
        let serve = router.serve_with_incoming_shutdown(incoming, shutdown);
        tokio::select! {
            served = serve => {
                if let Err(err) = served {
                    tracing::error!(%err, "gRPC server failed");
                }
            }
            () = async {
                grace.await;
                tokio::time::sleep(GRPC_SHUTDOWN_GRACE).await;
            } => tracing::warn!("gRPC calls still open after the shutdown grace: cut"),
        }
    }));

    // Watchers: wake them for other replicas' events, end them at shutdown.
    let poller = core.clone();
    let mut poll_stop = stop_rx.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(service::watch::WATCH_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(err) = poller.poll_new_events().await {
                        tracing::debug!(%err, "could not look for new audit events");
                    }
                }
                _ = poll_stop.changed() => break,
            }
        }
        poller.close_watchers();
    }));

    let mut metrics_addr = None;
    if let Some(addr) = options.metrics_addr {
        let db = core.db.clone();
        let refresh: metrics::OnScrape = Arc::new(move || db.publish_pool_gauges());
        let (bound, task) = metrics::serve(addr, Some(refresh), stopped(stop_rx.clone()))
            .await
            .map_err(StartError::Metrics)?;
        metrics_addr = Some(bound);
        tasks.push(task);
    }

    let monitor = core.clone();
    let mut monitor_stop = stop_rx.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEALTH_INTERVAL);
        let mut serving = true;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let ok = monitor.db.ping().await.is_ok();
                    if ok != serving {
                        serving = ok;
                        let status = if ok {
                            tracing::info!("database reachable again: serving");
                            tonic_health::ServingStatus::Serving
                        } else {
                            tracing::warn!("database unreachable: not serving");
                            tonic_health::ServingStatus::NotServing
                        };
                        health.set_service_status("", status).await;
                        for name in SERVICES {
                            health.set_service_status(name, status).await;
                        }
                    }
                }
                _ = monitor_stop.changed() => break,
            }
        }
    }));

    let flusher = core.clone();
    let mut flush_stop = stop_rx.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(LAST_USED_FLUSH);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(err) = flusher.flush_last_used().await {
                        tracing::warn!(%err, "could not record token use");
                    }
                }
                _ = flush_stop.changed() => break,
            }
        }
    }));

    let mut scim_addr = None;
    let mut scim_task = None;
    if let Some(listener) = scim {
        scim_addr = Some(
            listener
                .local_addr()
                .map_err(|e| StartError::Grpc(e.to_string()))?,
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
            .map_err(|e| StartError::Grpc(e.to_string()))?
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .connect_lazy();
        let app = provisioning_facade::app(channel, options.facade);
        let (scim_stop, scim_stop_rx) = watch::channel(false);
        let shutdown = stopped(scim_stop_rx);
        let serve_options = options.scim_serve;
        let task = tokio::spawn(async move {
            if let Err(err) =
                provisioning_facade::serve_with(listener, app, serve_options, shutdown).await
            {
                tracing::error!(%err, "SCIM server failed");
            }
        });
        scim_task = Some((scim_stop, task));
    }

    Ok(Running {
        grpc_addr,
        scim_addr,
        metrics_addr,
        core,
        stop,
        tasks,
        scim: scim_task,
    })
}
