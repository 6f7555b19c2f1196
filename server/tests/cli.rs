#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `provisioning` binary as an operator uses it: `serve` on SQLite, then
//! the admin commands against it. Stdout carries only command output.
mod support;

use std::{os::unix::fs::PermissionsExt as _, process::Command};

use support::{BIN, Server};

#[test]
fn operator_flow_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, None, &[]);

    // A generated admin token, kept private.
    let token_file = dir.path().join("provisioning-admin-token");
    let admin = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(admin.len() > 40);
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        dir.path().join("provisioning.db").exists(),
        "default SQLite file"
    );

    let (out, _) = server.admin_command(
        dir.path(),
        None,
        &["account", "create", "acme", "--name", "Acme Inc"],
    );
    assert_eq!(out, "acme\n");
    let (out, err) = server.admin_command(dir.path(), None, &["scim", "enable", "acme"]);
    let token = out.trim_end().to_owned();
    assert!(
        token.starts_with("scim_") && !token.contains('\n'),
        "the token alone on stdout"
    );
    assert!(err.contains("shown only once"));
    let (out, _) = server.admin_command(dir.path(), None, &["scim", "enable", "acme"]);
    assert_eq!(out, "", "no new token while one is live");

    let (out, _) = server.admin_command(dir.path(), None, &["token", "list", "acme"]);
    assert!(out.contains(&token[..12]));
    assert!(!out.contains(&token));
    let (rotated, _) = server.admin_command(
        dir.path(),
        None,
        &["token", "rotate", "acme", "--grace", "10m"],
    );
    let rotated = rotated.trim_end().to_owned();
    assert!(rotated.starts_with("scim_") && rotated != token);
    let (out, _) = server.admin_command(dir.path(), None, &["token", "list", "acme"]);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2);
    let first_id = rows[0].split('\t').next().unwrap();
    let (out, err) = server.admin_command(dir.path(), None, &["token", "revoke", first_id]);
    assert_eq!(out, "");
    assert!(err.contains("revoked"));
    server.admin_command(dir.path(), None, &["scim", "disable", "acme"]);

    // Bad credentials fail with a clear message and a non-zero exit.
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env("PROVISIONING_ADMIN_TOKEN", "wrong")
        .args(["account", "create", "beta", "--grpc-url", &server.grpc_url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthenticated")
            || String::from_utf8_lossy(&out.stderr).contains("credential")
    );

    server.signal("-TERM");
    let (status, logs, stdout) = server.wait();
    assert!(status.success(), "SIGTERM shuts down cleanly: {status:?}");
    assert_eq!(stdout, "", "the server writes logs to stderr only");
    let logs = logs.join("\n");
    assert!(logs.contains("shutting down"));
    for secret in [&admin, &token, &rotated] {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
    }
}

#[test]
fn admin_commands_without_a_credential_explain_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env_remove("PROVISIONING_ADMIN_TOKEN")
        .args([
            "account",
            "create",
            "acme",
            "--grpc-url",
            "http://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach") || err.contains("PROVISIONING_ADMIN_TOKEN"),
        "{err}"
    );
}
