#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `provisioning` binary as an operator uses it: `serve` on SQLite, then
//! the admin commands against it. Stdout carries only command output.
use std::{
    io::{BufRead as _, BufReader},
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

const BIN: &str = env!("CARGO_BIN_EXE_provisioning");

struct Server {
    child: Child,
    grpc_url: String,
    logs: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(BIN)
            .current_dir(dir)
            .env_remove("PROVISIONING_ADMIN_TOKEN")
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "trace")
            .args(["serve", "--grpc-addr", "127.0.0.1:0", "--scim-addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let grpc_url = loop {
            let line = logs.recv_timeout(Duration::from_secs(60)).expect("server starts");
            seen.push(line.clone());
            if line.contains("provisioning is serving") {
                let addr = line.split("grpc=").nth(1).unwrap().split_whitespace().next().unwrap();
                break format!("http://{addr}");
            }
        };
        Self { child, grpc_url, logs, seen }
    }

    fn run(&self, dir: &Path, args: &[&str]) -> (String, String) {
        let out = Command::new(BIN)
            .current_dir(dir)
            .env_remove("PROVISIONING_ADMIN_TOKEN")
            .args(args)
            .args(["--grpc-url", &self.grpc_url])
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "{args:?} failed: {stderr}");
        (stdout, stderr)
    }

    /// Sends SIGTERM; returns the exit status and every log line.
    fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = self.child.wait().unwrap();
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut self.child.stdout.take().unwrap(), &mut stdout).unwrap();
        self.seen.extend(self.logs.try_iter());
        (status, self.seen, stdout)
    }
}

#[test]
fn operator_flow_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());

    // A generated admin token, kept private.
    let token_file = dir.path().join("provisioning-admin-token");
    let admin = std::fs::read_to_string(&token_file).unwrap().trim().to_owned();
    assert!(admin.len() > 40);
    assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(dir.path().join("provisioning.db").exists(), "default SQLite file");

    let (out, _) = server.run(dir.path(), &["account", "create", "acme", "--name", "Acme Inc"]);
    assert_eq!(out, "acme\n");
    let (out, err) = server.run(dir.path(), &["scim", "enable", "acme"]);
    let token = out.trim_end().to_owned();
    assert!(token.starts_with("scim_") && !token.contains('\n'), "the token alone on stdout");
    assert!(err.contains("shown only once"));
    let (out, _) = server.run(dir.path(), &["scim", "enable", "acme"]);
    assert_eq!(out, "", "no new token while one is live");

    let (out, _) = server.run(dir.path(), &["token", "list", "acme"]);
    assert!(out.contains(&token[..12]));
    assert!(!out.contains(&token));
    let (rotated, _) = server.run(dir.path(), &["token", "rotate", "acme", "--grace", "10m"]);
    let rotated = rotated.trim_end().to_owned();
    assert!(rotated.starts_with("scim_") && rotated != token);
    let (out, _) = server.run(dir.path(), &["token", "list", "acme"]);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2);
    let first_id = rows[0].split('\t').next().unwrap();
    let (out, err) = server.run(dir.path(), &["token", "revoke", first_id]);
    assert_eq!(out, "");
    assert!(err.contains("revoked"));
    server.run(dir.path(), &["scim", "disable", "acme"]);

    // Bad credentials fail with a clear message and a non-zero exit.
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env("PROVISIONING_ADMIN_TOKEN", "wrong")
        .args(["account", "create", "beta", "--grpc-url", &server.grpc_url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unauthenticated") || String::from_utf8_lossy(&out.stderr).contains("credential"));

    let (status, logs, stdout) = server.terminate();
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
        .args(["account", "create", "acme", "--grpc-url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach") || err.contains("PROVISIONING_ADMIN_TOKEN"), "{err}");
}
