//! The server under test: `provisioning serve` as a child process on a fresh
//! database, plus the bench's own direct database access for seeding.
use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait as _, Database};

/// A running `provisioning serve`; killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub grpc: SocketAddr,
    pub scim: SocketAddr,
    pub log: PathBuf,
}

pub struct Launch<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
    pub database_url: &'a str,
    pub admin_token: &'a str,
    pub rate_limit: Option<f64>,
    pub log_filter: &'a str,
    pub extra_args: &'a [String],
}

impl ServerProcess {
    /// Starts the server on `127.0.0.1:0` ports and reads the addresses it
    /// bound from its "provisioning is serving" log line.
    pub fn start(launch: &Launch<'_>) -> Result<Self, String> {
        let log = launch.dir.join("server.log");
        let log_file = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut command = Command::new(launch.bin);
        command
            .arg("serve")
            .arg("--db")
            .arg(launch.database_url)
            .args(["--grpc-addr", "127.0.0.1:0", "--scim-addr", "127.0.0.1:0"]);
        if let Some(limit) = launch.rate_limit {
            command.arg("--rate-limit").arg(limit.to_string());
        }
        command
            .args(launch.extra_args)
            .current_dir(launch.dir)
            .env("PROVISIONING_ADMIN_TOKEN", launch.admin_token)
            .env("RUST_LOG", launch.log_filter)
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", launch.bin.display()))?;
        let mut server = Self {
            child,
            grpc: SocketAddr::from(([127, 0, 0, 1], 0)),
            scim: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let started = Instant::now();
        loop {
            let text = fs::read_to_string(&server.log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("provisioning is serving")) {
                server.grpc = field(line, "grpc=")?;
                server.scim = field(line, "scim=")?;
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "the server exited ({status}) before serving; its log:\n{}",
                    tail(&text, 40)
                ));
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "the server did not report serving within 60 s; its log:\n{}",
                    tail(&text, 40)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak and current resident set size in KiB (VmHWM, VmRSS), as the OS
    /// reports them.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let read = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        (read("VmHWM:"), read("VmRSS:"))
    }

    /// CPU time (user + system, in clock ticks) and context switches (of
    /// all threads) the server has used so far.
    pub fn cpu(&self) -> (u64, u64) {
        process_cpu(&format!("/proc/{}", self.pid()))
    }

    /// Lines of the server log at WARN or above (to show with the results).
    pub fn warnings(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .map(str::to_owned)
            .collect()
    }

    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// (utime + stime in clock ticks, voluntary + involuntary context switches
/// over every thread) of the process at `proc_dir`.
pub fn process_cpu(proc_dir: &str) -> (u64, u64) {
    let stat = fs::read_to_string(format!("{proc_dir}/stat")).unwrap_or_default();
    let ticks = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // After the command: state is field 3, utime 14 and stime 15.
            let at = |i: usize| {
                fields
                    .get(i - 3)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            at(14) + at(15)
        })
        .unwrap_or(0);
    let mut switches = 0;
    if let Ok(tasks) = fs::read_dir(format!("{proc_dir}/task")) {
        for task in tasks.flatten() {
            let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
            for line in status.lines() {
                if let Some(v) = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    switches += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    (ticks, switches)
}

/// Clock ticks per second of `/proc/*/stat` times.
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

fn field(line: &str, key: &str) -> Result<SocketAddr, String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .ok_or_else(|| format!("no {key} in the serving line: {line}"))?
        .trim_matches(|c: char| !c.is_ascii_digit() && c != '.' && c != ':' && c != '[' && c != ']')
        .parse()
        .map_err(|e| format!("bad address after {key} in {line:?}: {e}"))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A PostgreSQL database of the bench's own, created from template0 on the
/// server `admin_url` names and dropped by [`PgDatabase::drop_now`].
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> Result<Self, String> {
        let admin = Database::connect(admin_url)
            .await
            .map_err(|e| format!("PostgreSQL at {admin_url}: {e}"))?;
        let name = format!("prov_bench_{}", uuid::Uuid::now_v7().simple());
        admin
            .execute_unprepared(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"
            ))
            .await
            .map_err(|e| format!("create database: {e}"))?;
        let _ = admin.close().await;
        let base = admin_url
            .split('?')
            .next()
            .and_then(|u| u.rsplit_once('/'))
            .map_or(admin_url, |(base, _)| base);
        Ok(Self {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }

    pub async fn drop_now(self) -> Result<(), String> {
        let admin = Database::connect(&self.admin_url)
            .await
            .map_err(|e| e.to_string())?;
        admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await
            .map_err(|e| format!("drop database {}: {e}", self.name))?;
        let _ = admin.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_serving_line() {
        let line = "2026-01-01T00:00:00Z  INFO provisioning: provisioning is serving (gRPC, and SCIM at /scim/v2) grpc=127.0.0.1:4100 scim=127.0.0.1:4101";
        assert_eq!(super::field(line, "grpc=").map(|a| a.port()), Ok(4100));
        assert_eq!(super::field(line, "scim=").map(|a| a.port()), Ok(4101));
    }
}
