#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Operating the `provisioning` binary: JSON logs, the metrics listener, and
//! a backup of a SQLite database taken while the service writes to it.
mod support;

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::Path,
    process::{Command, Output},
};

use sea_orm::{ConnectionTrait as _, Database, Statement};
use serde_json::Value;

use support::{BIN, Server};
const ADMIN: &str = "operations-test-admin-credential-0123";

/// Every stderr line must be one JSON object.
fn json_line(line: &str) -> Value {
    let value: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
    assert!(value.is_object(), "{line}");
    assert!(
        value.get("level").is_some() && value.get("timestamp").is_some(),
        "{line}"
    );
    value
}

/// `provisioning serve` with JSON logs and a metrics listener.
fn start(dir: &Path, db: &str) -> Server {
    let extra = ["--metrics-addr", "127.0.0.1:0", "--log-format", "json"];
    Server::start(dir, Some(db), Some(ADMIN), &extra)
}

fn admin(server: &Server, args: &[&str]) -> Output {
    Command::new(BIN)
        .env("PROVISIONING_ADMIN_TOKEN", ADMIN)
        .args(args)
        .args(["--grpc-url", &server.grpc_url])
        .output()
        .unwrap()
}

fn scrape(server: &Server) -> String {
    let mut stream = TcpStream::connect(server.metrics_addr.as_deref().unwrap()).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// SIGTERM; returns every log line, each parsed (so each must be JSON).
fn terminate(server: Server) -> Vec<Value> {
    server.signal("-TERM");
    let (status, lines, _) = server.wait();
    assert!(status.success());
    lines.iter().map(|l| json_line(l)).collect()
}

fn backup(args: &[&str]) -> Output {
    Command::new(BIN)
        .env_remove("DATABASE_URL")
        .arg("backup")
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_metrics_and_a_backup_of_a_running_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.db");
    let db_url = format!("sqlite://{}", live.display());
    let server = start(dir.path(), &db_url);

    let out = admin(&server, &["account", "create", "acme"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics = scrape(&server);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("provisioning_grpc_requests_total{")
                && l.contains("method=\"CreateAccount\"")
                && l.contains("code=\"OK\"")),
        "{metrics}"
    );

    // Writes go on while the copy is taken.
    let writer = {
        let grpc_url = server.grpc_url.clone();
        std::thread::spawn(move || {
            for i in 0..8 {
                let out = Command::new(BIN)
                    .env("PROVISIONING_ADMIN_TOKEN", ADMIN)
                    .args([
                        "account",
                        "create",
                        &format!("busy{i}"),
                        "--grpc-url",
                        &grpc_url,
                    ])
                    .output()
                    .unwrap();
                assert!(out.status.success());
            }
        })
    };
    let copy = dir.path().join("copy.db");
    let copy_text = copy.to_str().unwrap();
    let out = backup(&[copy_text, "--db", &db_url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{copy_text}\n")
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("restore"));
    writer.join().unwrap();

    // Never overwrites; PostgreSQL is pointed at pg_dump, without echoing the URL.
    let out = backup(&[copy_text, "--db", &db_url]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = backup(&[
        dir.path().join("pg.dump").to_str().unwrap(),
        "--db",
        "postgres://app:s3cret-pw@db.internal/provisioning",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pg_dump") && !err.contains("s3cret-pw"),
        "{err}"
    );
    assert!(!dir.path().join("pg.dump").exists());

    // The copy is a database of its own with the data in it.
    let copied = Database::connect(format!("sqlite://{copy_text}?mode=ro"))
        .await
        .unwrap();
    let backend = copied.get_database_backend();
    let rows = copied
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT slug FROM accounts ORDER BY slug",
        ))
        .await
        .unwrap();
    let slugs: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "slug").unwrap())
        .collect();
    assert_eq!(slugs.first().map(String::as_str), Some("acme"));
    let events = copied
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT count(*) AS n FROM audit_events",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        events.try_get::<i64>("", "n").unwrap(),
        slugs.len() as i64,
        "one account.created event per account: a consistent snapshot"
    );
    copied.close().await.unwrap();

    let lines = terminate(server);
    assert!(lines.iter().any(|l| l["message"] == "shutting down"));
    assert!(!lines.iter().any(|l| l.to_string().contains(ADMIN)));
}
