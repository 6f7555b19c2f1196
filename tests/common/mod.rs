//! Test harness: a real server (gRPC core + SCIM facade) on port 0 with a
//! fresh database — a temp-file SQLite, or a PostgreSQL database of its own
//! created from template0 and dropped afterwards.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{TimeZone as _, Utc};
use provisioning_proto::pb::{
    self, account_service_client::AccountServiceClient, audit_service_client::AuditServiceClient,
    token_service_client::TokenServiceClient, user_service_client::UserServiceClient,
};
pub use provisioning_server::clock::ManualClock;
use provisioning_server::{Options, Running, db::SqliteSync};
use sea_orm::{ConnectionTrait as _, Database, DatabaseConnection};
use tokio::net::TcpListener;
use tonic::{Request, transport::Channel};

#[path = "pg.rs"]
mod pg;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const ADMIN_TOKEN: &str = "test-admin-credential-0123456789";

pub struct TestEnv {
    pub backend: Backend,
    pub database_url: String,
    pub grpc_url: String,
    /// `http://127.0.0.1:PORT/scim/v2`
    pub scim_base: String,
    pub admin_token: String,
    pub clock: Arc<ManualClock>,
    /// A direct connection, for tests that check what is stored.
    pub db: DatabaseConnection,
    running: Option<Running>,
    _dir: Option<tempfile::TempDir>,
    pg_database: Option<String>,
    settings: Settings,
    /// The cuttable proxy in front of PostgreSQL, with `Settings::through_proxy`.
    pub proxy: Option<TcpProxy>,
    /// The URL the server uses (through the proxy, if any).
    server_url: String,
}

/// What a test may change about the server it starts.
#[derive(Default, Clone)]
pub struct Settings {
    pub limits: provisioning_server::service::Limits,
    /// PostgreSQL only: reach the database through a proxy the test can cut.
    pub through_proxy: bool,
    /// Serve Prometheus metrics on a port of its own (`TestEnv::metrics_url`).
    pub metrics: bool,
}

impl TestEnv {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, Settings::default()).await
    }

    pub async fn start_with(backend: Backend, settings: Settings) -> Self {
        // `TEST_LOG=debug cargo test …` shows the server's logs.
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let (database_url, dir, pg_database) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let (url, name) = pg::create_database().await;
                (url, None, Some(name))
            }
        };
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap());
        let mut proxy = None;
        let mut server_url = database_url.clone();
        if settings.through_proxy {
            assert_eq!(backend, Backend::Postgres, "the proxy is for PostgreSQL");
            let p = TcpProxy::start(pg_host_port(&database_url)).await;
            server_url =
                database_url.replacen(&pg_host_port(&database_url), &p.addr.to_string(), 1);
            proxy = Some(p);
        }
        let running = Self::start_server(&server_url, clock.clone(), &settings).await;
        let db = Database::connect(&database_url)
            .await
            .expect("test connection");
        let grpc_url = format!("http://{}", running.grpc_addr);
        let scim_base = format!(
            "http://{}/scim/v2",
            running.scim_addr.expect("scim listener")
        );
        Self {
            backend,
            database_url,
            grpc_url,
            scim_base,
            admin_token: ADMIN_TOKEN.to_owned(),
            clock,
            db,
            running: Some(running),
            _dir: dir,
            pg_database,
            settings,
            proxy,
            server_url,
        }
    }

    async fn start_server(
        database_url: &str,
        clock: Arc<ManualClock>,
        settings: &Settings,
    ) -> Running {
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scim = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let options = Options {
            database_url: database_url.to_owned(),
            sqlite_sync: SqliteSync::Normal,
            admin_token: ADMIN_TOKEN.to_owned(),
            clock,
            facade: Default::default(),
            scim_serve: Default::default(),
            limits: settings.limits.clone(),
            metrics_addr: settings.metrics.then(|| "127.0.0.1:0".parse().unwrap()),
        };
        provisioning_server::start(options, grpc, Some(scim))
            .await
            .expect("server starts")
    }

    /// A second server process-alike on the same database (another replica).
    pub async fn replica(&self) -> Running {
        Self::start_server(&self.database_url, self.clock.clone(), &self.settings).await
    }

    /// Stops the server gracefully and starts a new one on the same
    /// database (new ports: `grpc_url` and `scim_base` change).
    pub async fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        let running =
            Self::start_server(&self.server_url, self.clock.clone(), &self.settings).await;
        self.grpc_url = format!("http://{}", running.grpc_addr);
        self.scim_base = format!(
            "http://{}/scim/v2",
            running.scim_addr.expect("scim listener")
        );
        self.running = Some(running);
    }

    /// `http://127.0.0.1:PORT/metrics`, with `Settings::metrics`.
    pub fn metrics_url(&self) -> String {
        let addr = self
            .running()
            .metrics_addr
            .expect("Settings::metrics is on");
        format!("http://{addr}/metrics")
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.grpc_url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn accounts(&self) -> AccountServiceClient<Channel> {
        AccountServiceClient::new(self.channel().await)
    }
    pub async fn tokens(&self) -> TokenServiceClient<Channel> {
        TokenServiceClient::new(self.channel().await)
    }
    pub async fn users(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(self.channel().await)
    }
    pub async fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel().await)
    }

    /// A request carrying the admin credential.
    pub fn admin<T>(&self, message: T) -> Request<T> {
        with_token(message, &self.admin_token)
    }

    /// Creates an account, turns SCIM on and returns its token.
    pub async fn account_with_token(&self, slug: &str) -> String {
        let mut accounts = self.accounts().await;
        accounts
            .create_account(self.admin(pb::CreateAccountRequest {
                slug: slug.to_owned(),
                ..Default::default()
            }))
            .await
            .expect("create account");
        let reply = accounts
            .set_scim_enabled(self.admin(pb::SetScimEnabledRequest {
                account: slug.to_owned(),
                enabled: true,
            }))
            .await
            .expect("enable scim")
            .into_inner();
        reply.issued_token.expect("a token is issued").secret
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    /// Every value of a table as text, to check what is stored.
    pub async fn dump_table(&self, table: &str) -> String {
        let backend = self.db.get_database_backend();
        let sql = match self.backend {
            Backend::Postgres => format!("SELECT row_to_json(t)::text AS row FROM {table} t"),
            Backend::Sqlite => {
                let columns = self
                    .db
                    .query_all_raw(sea_orm::Statement::from_string(
                        backend,
                        format!("SELECT name FROM pragma_table_info('{table}')"),
                    ))
                    .await
                    .expect("columns");
                let quoted: Vec<String> = columns
                    .iter()
                    .map(|c| {
                        let name: String = c.try_get("", "name").unwrap();
                        format!("'{name}=' || quote({name})")
                    })
                    .collect();
                format!("SELECT {} AS row FROM {table}", quoted.join(" || ' ' || "))
            }
        };
        let rows = self
            .db
            .query_all_raw(sea_orm::Statement::from_string(backend, sql))
            .await
            .expect("dump");
        let mut out = String::new();
        for row in rows {
            let text: String = row.try_get("", "row").unwrap();
            out.push_str(&text);
            out.push('\n');
        }
        out
    }

    /// The raw bytes of the SQLite database and its WAL (empty on PostgreSQL).
    pub fn sqlite_file_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        if let Some(dir) = &self._dir {
            for name in ["test.db", "test.db-wal"] {
                if let Ok(mut b) = std::fs::read(dir.path().join(name)) {
                    bytes.append(&mut b);
                }
            }
        }
        bytes
    }

    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(name) = self.pg_database.take() {
            pg::drop_database(name);
        }
    }
}

pub fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// For each `async fn name(backend: Backend)`, generates `sqlite::name` and
/// `postgres::name` tests.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

fn pg_host_port(url: &str) -> String {
    let after_at = url.rsplit_once('@').map(|(_, rest)| rest).unwrap_or(url);
    after_at.split('/').next().unwrap_or(after_at).to_owned()
}

/// A TCP proxy that a test can cut (every connection dropped, new ones
/// refused) and restore, to take a database away without stopping it.
pub struct TcpProxy {
    pub addr: std::net::SocketAddr,
    up: Arc<tokio::sync::watch::Sender<bool>>,
}

impl TcpProxy {
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = tokio::sync::watch::channel(true);
        let up = Arc::new(up);
        let state = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    break;
                };
                if !*state.borrow() {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut watch = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}
