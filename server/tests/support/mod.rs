//! Runs the real `provisioning` binary as a child process.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::Duration,
};

#[path = "../../../tests/common/pg.rs"]
pub mod pg;

pub const BIN: &str = env!("CARGO_BIN_EXE_provisioning");
pub const ADMIN: &str = "process-test-admin-credential-42";

pub struct Server {
    child: Child,
    pub grpc_url: String,
    pub scim_base: String,
    /// With `--metrics-addr`: where the metrics listener bound.
    pub metrics_addr: Option<String>,
    logs: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Server {
    /// `provisioning serve` in `dir` on ports it picks; `db` defaults to
    /// SQLite in `dir`; `admin` None leaves the admin credential to the file.
    pub fn start(dir: &Path, db: Option<&str>, admin: Option<&str>, extra: &[&str]) -> Self {
        let mut command = Command::new(BIN);
        command
            .current_dir(dir)
            .env_remove("PROVISIONING_ADMIN_TOKEN")
            .env_remove("DATABASE_URL")
            .env(
                "RUST_LOG",
                std::env::var("SERVER_LOG").unwrap_or_else(|_| "trace".into()),
            )
            .args([
                "serve",
                "--grpc-addr",
                "127.0.0.1:0",
                "--scim-addr",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(db) = db {
            command.args(["--db", db]);
        }
        if let Some(admin) = admin {
            command.env("PROVISIONING_ADMIN_TOKEN", admin);
        }
        let mut child = command.spawn().unwrap();
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
        let line = loop {
            let line = logs
                .recv_timeout(Duration::from_secs(60))
                .expect("server starts");
            seen.push(line.clone());
            if line.contains("provisioning is serving") {
                break line;
            }
        };
        Self {
            child,
            grpc_url: format!("http://{}", log_field(&line, "grpc").unwrap()),
            scim_base: format!("http://{}/scim/v2", log_field(&line, "scim").unwrap()),
            metrics_addr: log_field(&line, "metrics"),
            logs,
            seen,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits for the exit; returns the status, every log line and stdout.
    pub fn wait(mut self) -> (ExitStatus, Vec<String>, String) {
        let status = self.child.wait().unwrap();
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut self.child.stdout.take().unwrap(), &mut stdout).unwrap();
        let mut seen = std::mem::take(&mut self.seen);
        seen.extend(self.logs.try_iter());
        (status, seen, stdout)
    }

    /// Runs an admin command against this server.
    pub fn admin_command(
        &self,
        dir: &Path,
        admin: Option<&str>,
        args: &[&str],
    ) -> (String, String) {
        let mut command = Command::new(BIN);
        command
            .current_dir(dir)
            .env_remove("PROVISIONING_ADMIN_TOKEN");
        if let Some(admin) = admin {
            command.env("PROVISIONING_ADMIN_TOKEN", admin);
        }
        let out = command
            .args(args)
            .args(["--grpc-url", &self.grpc_url])
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "{args:?} failed: {stderr}");
        (stdout, stderr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of a log line, in the text format (`name=value`) or the JSON one.
pub fn log_field(line: &str, name: &str) -> Option<String> {
    if line.trim_start().starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        return value[name].as_str().map(str::to_owned);
    }
    let value = line
        .split(&format!("{name}="))
        .nth(1)?
        .split_whitespace()
        .next()?;
    Some(value.to_owned())
}
