//! `provisioning backup`: a consistent copy of a SQLite database, taken while
//! the service runs (`VACUUM INTO` reads one snapshot and never blocks the
//! writer for long). PostgreSQL has its own tools.
use std::{path::Path, str::FromStr as _, time::Duration};

use sea_orm::sqlx::{
    self, Connection as _, Row as _,
    sqlite::{SqliteConnectOptions, SqliteConnection},
};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "{0} already exists; backup never overwrites a file: choose a new name or remove it first"
    )]
    Exists(String),
    #[error(
        "this is a PostgreSQL database: back it up with PostgreSQL's tools, e.g. `pg_dump --format=custom --file=provisioning.dump \"$DATABASE_URL\"` (restore with `pg_restore --clean --if-exists --dbname=\"$DATABASE_URL\" provisioning.dump`)"
    )]
    Postgres,
    #[error("unsupported database URL: use sqlite://FILE")]
    Unsupported,
    #[error("an in-memory database cannot be backed up")]
    InMemory,
    #[error("cannot open the database: {0}")]
    Open(String),
    #[error("the copy failed: {0}")]
    Copy(String),
    #[error("the copy is damaged ({0}); it was removed")]
    Check(String),
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub bytes: u64,
}

/// Copies the SQLite database at `url` to `target` (a file that must not
/// exist), then checks the copy's integrity.
pub async fn backup(url: &str, target: &Path) -> Result<Backup, BackupError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(BackupError::Postgres);
    }
    if !url.starts_with("sqlite:") {
        return Err(BackupError::Unsupported);
    }
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err(BackupError::InMemory);
    }
    if target.exists() {
        return Err(BackupError::Exists(target.display().to_string()));
    }
    let target_text = target
        .to_str()
        .ok_or_else(|| BackupError::Copy("the target path is not valid UTF-8".into()))?
        .to_owned();
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| BackupError::Open(e.to_string()))?
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| BackupError::Open(e.to_string()))?;
    // VACUUM INTO refuses a non-empty existing file itself, so a file that
    // appears after the check above is not overwritten either.
    let copied = sqlx::query("VACUUM INTO ?")
        .bind(&target_text)
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    copied.map_err(|e| BackupError::Copy(e.to_string()))?;

    let checked = check(target).await;
    if let Err(problem) = checked {
        let _ = std::fs::remove_file(target);
        return Err(BackupError::Check(problem));
    }
    let bytes = std::fs::metadata(target)
        .map(|m| m.len())
        .map_err(|e| BackupError::Copy(e.to_string()))?;
    Ok(Backup { bytes })
}

async fn check(path: &Path) -> Result<(), String> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| e.to_string())?;
    let row = sqlx::query("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let verdict: String = row.try_get(0).map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(verdict)
    }
}
