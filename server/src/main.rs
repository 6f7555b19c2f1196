//! `provisioning`: runs the service, and administers it over gRPC.
use std::{
    io::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use clap::{Args, Parser, Subcommand};
use provisioning_facade::{FacadeConfig, ServeOptions};
use provisioning_proto::pb::{
    self, account_service_client::AccountServiceClient, token_service_client::TokenServiceClient,
};
use provisioning_server::{Options, clock::SystemClock, db::SqliteSync, keys, service::Limits};
use tonic::{Request, transport::Channel};

/// Where `serve` keeps a generated admin token when `PROVISIONING_ADMIN_TOKEN` is unset.
const ADMIN_TOKEN_FILE: &str = "provisioning-admin-token";

#[derive(Parser)]
#[command(
    name = "provisioning",
    version,
    about = "SCIM 2.0 user provisioning: gRPC core and SCIM facade"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC core and the SCIM facade in one process.
    Serve {
        /// Database URL: sqlite://FILE or postgres://…
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://provisioning.db")]
        db: String,
        #[arg(long, default_value = "127.0.0.1:50051")]
        grpc_addr: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:8080")]
        scim_addr: SocketAddr,
        /// SQLite durability: normal survives process crashes, full also power loss.
        #[arg(long, value_enum, default_value_t = SqliteSync::Normal)]
        sqlite_synchronous: SqliteSync,
        /// Requests per second allowed per SCIM token (bursts of twice that); 0 turns the limit off.
        #[arg(long, default_value_t = 100.0)]
        rate_limit: f64,
        #[command(flatten)]
        facade: FacadeArgs,
        #[command(flatten)]
        ops: OpsArgs,
    },
    /// Run the SCIM facade alone, in front of a core elsewhere.
    Facade {
        #[arg(long)]
        grpc_url: String,
        #[arg(long, default_value = "127.0.0.1:8080")]
        scim_addr: SocketAddr,
        #[command(flatten)]
        facade: FacadeArgs,
        #[command(flatten)]
        ops: OpsArgs,
    },
    /// Copy a SQLite database consistently, even while the service runs.
    Backup {
        /// Where to write the copy; an existing file is never overwritten.
        path: PathBuf,
        /// Database URL: sqlite://FILE (for PostgreSQL use pg_dump).
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://provisioning.db")]
        db: String,
    },
    /// Manage accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Turn SCIM provisioning on or off for an account.
    Scim {
        #[command(subcommand)]
        command: ScimCommand,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Manage SCIM tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(Args)]
struct FacadeArgs {
    /// Base URL used in Location and meta.location (default: the request's Host).
    #[arg(long)]
    public_url: Option<String>,
    /// Trust X-Forwarded-Proto and X-Forwarded-Host (only behind your own proxy).
    #[arg(long)]
    trust_forwarded_headers: bool,
    /// Serve SCIM over HTTPS with this certificate chain (PEM; needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl FacadeArgs {
    fn config(&self) -> FacadeConfig {
        FacadeConfig {
            public_url: self.public_url.clone(),
            trust_forwarded_headers: self.trust_forwarded_headers,
            ..FacadeConfig::default()
        }
    }

    fn serve_options(&self) -> Result<ServeOptions, AnyError> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(provisioning_facade::tls_config(cert, key)?),
            _ => None,
        };
        Ok(ServeOptions {
            tls,
            ..ServeOptions::default()
        })
    }
}

#[derive(Args)]
struct OpsArgs {
    /// Log lines as human-readable text or as JSON objects (for log collectors).
    #[arg(long, value_enum, env = "PROVISIONING_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Serve Prometheus metrics at http://ADDR/metrics (off unless given).
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args)]
struct AdminArgs {
    /// The core's gRPC URL.
    #[arg(long, global = true, default_value = "http://127.0.0.1:50051")]
    grpc_url: String,
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account.
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand)]
enum ScimCommand {
    /// Turn SCIM on; prints a new token alone on stdout when one is issued.
    Enable { slug: String },
    /// Turn SCIM off: the account's tokens stop working until it is on again.
    Disable { slug: String },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a new token (printed alone on stdout); the old ones stop after --grace.
    Rotate {
        slug: String,
        /// How long the old tokens keep working, e.g. 10m, 1h (default: not at all).
        #[arg(long, value_parser = humantime::parse_duration)]
        grace: Option<Duration>,
    },
    /// Revoke a token at once.
    Revoke { token_id: String },
    /// List an account's tokens (never their secrets).
    List { slug: String },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve { ops, .. } | Command::Facade { ops, .. } => ops.log_format,
        _ => LogFormat::Text,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

async fn run(cli: Cli) -> Result<(), AnyError> {
    match cli.command {
        Command::Serve {
            db,
            grpc_addr,
            scim_addr,
            sqlite_synchronous,
            rate_limit,
            facade,
            ops,
        } => {
            let limits = Limits {
                per_token_per_second: rate_limit.max(0.0),
                per_token_burst: rate_limit.max(0.0) * 2.0,
                ..Limits::default()
            };
            let addrs = (grpc_addr, scim_addr);
            serve(db, addrs, sqlite_synchronous, limits, &facade, &ops).await
        }
        Command::Facade {
            grpc_url,
            scim_addr,
            facade,
            ops,
        } => {
            let channel = tonic::transport::Endpoint::from_shared(grpc_url)?
                .tcp_nodelay(true)
                .connect_lazy();
            let listener = tokio::net::TcpListener::bind(scim_addr).await?;
            if let Some(addr) = ops.metrics_addr {
                let (bound, _task) =
                    provisioning_server::metrics::serve(addr, None, shutdown_signal()).await?;
                tracing::info!(addr = %bound, "metrics at /metrics");
            }
            tracing::info!(addr = %listener.local_addr()?, "SCIM facade listening");
            let app = provisioning_facade::app(channel, facade.config());
            let options = facade.serve_options()?;
            provisioning_facade::serve_with(listener, app, options, shutdown_signal()).await?;
            Ok(())
        }
        Command::Backup { path, db } => {
            let backup = provisioning_server::db::backup::backup(&db, &path).await?;
            println!("{}", path.display());
            eprintln!(
                "backed up to {} ({} bytes); to restore, stop the service and put this file in place of the database (removing its -wal and -shm files)",
                path.display(),
                backup.bytes
            );
            Ok(())
        }
        Command::Account { command, admin } => {
            let mut client = AccountServiceClient::new(connect(&admin).await?);
            match command {
                AccountCommand::Create { slug, name } => {
                    let account = client
                        .create_account(authed(pb::CreateAccountRequest {
                            slug,
                            display_name: name.unwrap_or_default(),
                            ..Default::default()
                        })?)
                        .await?
                        .into_inner();
                    println!("{}", account.slug);
                    eprintln!(
                        "created account {} (roles: {}; default role: {}); SCIM is off until `provisioning scim enable {}`",
                        account.slug,
                        account.roles.join(", "),
                        account.default_role,
                        account.slug
                    );
                }
            }
            Ok(())
        }
        Command::Scim { command, admin } => {
            let mut client = AccountServiceClient::new(connect(&admin).await?);
            let (account, enabled) = match command {
                ScimCommand::Enable { slug } => (slug, true),
                ScimCommand::Disable { slug } => (slug, false),
            };
            let reply = client
                .set_scim_enabled(authed(pb::SetScimEnabledRequest { account, enabled })?)
                .await?
                .into_inner();
            let slug = reply.account.map(|a| a.slug).unwrap_or_default();
            match reply.issued_token {
                Some(token) => {
                    println!("{}", token.secret);
                    eprintln!("SCIM enabled for {slug}; the token above is shown only once");
                }
                None if enabled => {
                    eprintln!("SCIM enabled for {slug} (it already has a live token)")
                }
                None => eprintln!("SCIM disabled for {slug}"),
            }
            Ok(())
        }
        Command::Token { command, admin } => {
            let mut client = TokenServiceClient::new(connect(&admin).await?);
            match command {
                TokenCommand::Rotate { slug, grace } => {
                    let grace = grace.map(|d| prost_types::Duration {
                        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                        nanos: 0,
                    });
                    let issued = client
                        .rotate_token(authed(pb::RotateTokenRequest {
                            account: slug,
                            grace,
                            ..Default::default()
                        })?)
                        .await?
                        .into_inner();
                    println!("{}", issued.secret);
                    eprintln!("new token issued; it is shown only once");
                }
                TokenCommand::Revoke { token_id } => {
                    let token = client
                        .revoke_token(authed(pb::RevokeTokenRequest { token_id })?)
                        .await?
                        .into_inner();
                    eprintln!("revoked token {} ({}…)", token.id, token.prefix);
                }
                TokenCommand::List { slug } => {
                    let tokens = client
                        .list_tokens(authed(pb::ListTokensRequest { account: slug })?)
                        .await?
                        .into_inner()
                        .tokens;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ID\tPREFIX\tCREATED\tEXPIRES\tREVOKED\tLAST USED")?;
                    let show = |t: &Option<prost_types::Timestamp>| {
                        t.as_ref().map_or("-".to_owned(), ToString::to_string)
                    };
                    for t in tokens {
                        writeln!(
                            out,
                            "{}\t{}…\t{}\t{}\t{}\t{}",
                            t.id,
                            t.prefix,
                            show(&t.created_at),
                            show(&t.expires_at),
                            show(&t.revoked_at),
                            show(&t.last_used_at)
                        )?;
                    }
                }
            }
            Ok(())
        }
    }
}

async fn serve(
    db: String,
    (grpc_addr, scim_addr): (SocketAddr, SocketAddr),
    sqlite_sync: SqliteSync,
    limits: Limits,
    facade: &FacadeArgs,
    ops: &OpsArgs,
) -> Result<(), AnyError> {
    let admin_token = match std::env::var("PROVISIONING_ADMIN_TOKEN") {
        Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
        _ => admin_token_file()?,
    };
    let grpc = tokio::net::TcpListener::bind(grpc_addr).await?;
    let scim = tokio::net::TcpListener::bind(scim_addr).await?;
    let options = Options {
        database_url: db,
        sqlite_sync,
        admin_token,
        clock: Arc::new(SystemClock),
        facade: facade.config(),
        scim_serve: facade.serve_options()?,
        limits,
        metrics_addr: ops.metrics_addr,
    };
    let running = provisioning_server::start(options, grpc, Some(scim)).await?;
    tracing::info!(
        grpc = %running.grpc_addr,
        scim = %running.scim_addr.map(|a| a.to_string()).unwrap_or_default(),
        metrics = %running.metrics_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        "provisioning is serving (gRPC, and SCIM at /scim/v2)"
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// Reads the admin token file, creating it (mode 0600) with a random token
/// on first start.
fn admin_token_file() -> Result<String, AnyError> {
    let path = PathBuf::from(ADMIN_TOKEN_FILE);
    if let Ok(token) = std::fs::read_to_string(&path)
        && !token.trim().is_empty()
    {
        tracing::info!(file = %path.display(), "using the admin token kept in the file");
        return Ok(token.trim().to_owned());
    }
    let token = format!("admin_{}", &keys::new_token()[keys::TOKEN_PREFIX.len()..]);
    write_private(&path, &token)?;
    tracing::info!(
        file = %path.display(),
        "PROVISIONING_ADMIN_TOKEN is unset: created an admin token and kept it in the file (mode 0600)"
    );
    Ok(token)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}

/// The admin credential for admin commands.
fn admin_token() -> Result<String, AnyError> {
    if let Ok(token) = std::env::var("PROVISIONING_ADMIN_TOKEN")
        && !token.trim().is_empty()
    {
        return Ok(token.trim().to_owned());
    }
    match std::fs::read_to_string(ADMIN_TOKEN_FILE) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
        _ => Err(format!(
            "no admin credential: set PROVISIONING_ADMIN_TOKEN or run from the directory holding ./{ADMIN_TOKEN_FILE}"
        )
        .into()),
    }
}

fn authed<T>(message: T) -> Result<Request<T>, AnyError> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", admin_token()?).parse()?,
    );
    Ok(request)
}

async fn connect(admin: &AdminArgs) -> Result<Channel, AnyError> {
    Ok(
        tonic::transport::Endpoint::from_shared(admin.grpc_url.clone())?
            .connect()
            .await
            .map_err(|e| format!("cannot reach the core at {}: {e}", admin.grpc_url))?,
    )
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
