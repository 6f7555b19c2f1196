//! The database: connection set-up for SQLite and PostgreSQL, entities and
//! migrations.
use std::{str::FromStr as _, time::Duration};

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqliteTransactionMode,
    SqlxPostgresConnector, SqlxSqliteConnector, TransactionOptions, TransactionTrait as _,
    sqlx::{
        PgPool, SqlitePool,
        postgres::{PgConnectOptions, PgPoolOptions},
        sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    },
};
use sea_orm_migration::MigratorTrait as _;

pub mod backup;
pub mod entities;
pub mod migration;

/// How hard SQLite flushes to disk: `normal` (default; WAL makes every
/// acknowledged write survive a crash of the process, a power loss may cost
/// the last transactions) or `full` (also survives power loss, slower).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SqliteSync {
    #[default]
    Normal,
    Full,
}

/// Connection pools: many readers, and writes that never fail with "database
/// is locked" (on SQLite a single writer connection with `BEGIN IMMEDIATE`).
#[derive(Clone, Debug)]
pub struct Db {
    pub read: DatabaseConnection,
    write: DatabaseConnection,
    /// The pools behind `read` and `write`, for their gauges.
    pools: Vec<(&'static str, Pool)>,
}

#[derive(Clone, Debug)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// One connection pool's use, for the metrics endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub name: &'static str,
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// Records every statement's latency (`provisioning_db_query_duration_seconds`).
fn observe(conn: &mut DatabaseConnection, pool: &'static str) {
    conn.set_metric_callback(move |info| {
        let kind = match info
            .statement
            .sql
            .trim_start()
            .get(..6)
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("SELECT") => "select",
            Some("INSERT") => "insert",
            Some("UPDATE") => "update",
            Some("DELETE") => "delete",
            _ => "other",
        };
        metrics::histogram!(
            "provisioning_db_query_duration_seconds",
            "pool" => pool,
            "statement" => kind,
            "outcome" => if info.failed { "error" } else { "ok" },
        )
        .record(info.elapsed.as_secs_f64());
    });
}

impl Db {
    pub async fn connect(url: &str, sync: SqliteSync) -> Result<Self, DbErr> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(conn_err)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(conn_err)?;
            let mut conn = SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone());
            observe(&mut conn, "main");
            Ok(Self {
                read: conn.clone(),
                write: conn,
                pools: vec![("main", Pool::Postgres(pool))],
            })
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(conn_err)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(match sync {
                    SqliteSync::Normal => SqliteSynchronous::Normal,
                    SqliteSync::Full => SqliteSynchronous::Full,
                })
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let write_pool = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(20))
                .connect_with(options.clone())
                .await
                .map_err(conn_err)?;
            let read_pool = SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options.read_only(true))
                .await
                .map_err(conn_err)?;
            let mut read = SqlxSqliteConnector::from_sqlx_sqlite_pool(read_pool.clone());
            let mut write = SqlxSqliteConnector::from_sqlx_sqlite_pool(write_pool.clone());
            observe(&mut read, "read");
            observe(&mut write, "write");
            Ok(Self {
                read,
                write,
                pools: vec![
                    ("read", Pool::Sqlite(read_pool)),
                    ("write", Pool::Sqlite(write_pool)),
                ],
            })
        } else {
            Err(DbErr::Custom(
                "unsupported database URL: use sqlite:// or postgres://".into(),
            ))
        }
    }

    /// Brings the schema up to date.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        migration::Migrator::up(&self.write, None).await
    }

    pub fn backend(&self) -> DbBackend {
        self.write.get_database_backend()
    }

    /// A write transaction. On SQLite it takes the write lock up front, so
    /// two writers never deadlock upgrading a read lock.
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        let start = std::time::Instant::now();
        let txn = self
            .write
            .begin_with_options(TransactionOptions {
                isolation_level: None,
                access_mode: None,
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            })
            .await;
        metrics::histogram!("provisioning_db_begin_write_duration_seconds")
            .record(start.elapsed().as_secs_f64());
        txn
    }

    /// Each pool's open, idle and maximum connections.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        self.pools
            .iter()
            .map(|(name, pool)| {
                let (open, idle, max) = match pool {
                    Pool::Postgres(p) => {
                        (p.size(), p.num_idle(), p.options().get_max_connections())
                    }
                    Pool::Sqlite(p) => (p.size(), p.num_idle(), p.options().get_max_connections()),
                };
                PoolStats {
                    name,
                    open,
                    idle: u32::try_from(idle).unwrap_or(u32::MAX),
                    max,
                }
            })
            .collect()
    }

    /// Publishes [`Db::pool_stats`] as gauges.
    pub fn publish_pool_gauges(&self) {
        for stats in self.pool_stats() {
            let open = f64::from(stats.open);
            let idle = f64::from(stats.idle.min(stats.open));
            metrics::gauge!("provisioning_db_pool_connections", "pool" => stats.name, "state" => "idle")
                .set(idle);
            metrics::gauge!("provisioning_db_pool_connections", "pool" => stats.name, "state" => "in_use")
                .set(open - idle);
            metrics::gauge!("provisioning_db_pool_max_connections", "pool" => stats.name)
                .set(f64::from(stats.max));
        }
    }

    /// A connection for statements outside transactions that write.
    pub fn writer(&self) -> &DatabaseConnection {
        &self.write
    }

    pub async fn ping(&self) -> Result<(), DbErr> {
        self.read.ping().await
    }
}

fn conn_err(err: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Conn(sea_orm::RuntimeErr::SqlxError(err.into()))
}
