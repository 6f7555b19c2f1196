//! The database: connection set-up for SQLite and PostgreSQL, entities and
//! migrations.
use std::{str::FromStr as _, time::Duration};

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, SqliteTransactionMode,
    SqlxPostgresConnector, SqlxSqliteConnector, TransactionOptions, TransactionTrait as _,
    sqlx::{
        postgres::{PgConnectOptions, PgPoolOptions},
        sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    },
};
use sea_orm_migration::MigratorTrait as _;

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
            let conn = SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
            Ok(Self {
                read: conn.clone(),
                write: conn,
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
            Ok(Self {
                read: SqlxSqliteConnector::from_sqlx_sqlite_pool(read_pool),
                write: SqlxSqliteConnector::from_sqlx_sqlite_pool(write_pool),
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
        self.write
            .begin_with_options(TransactionOptions {
                isolation_level: None,
                access_mode: None,
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            })
            .await
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
