//! `provisioning-bench`: the load benchmark of issue 4.
//!
//! For each account size it starts `provisioning serve` (a child process)
//! on a fresh database in a temp dir, creates an account and a SCIM token
//! through the gRPC admin API, seeds the users through the bulk path
//! (`provisioning_server::seed`, which uses the server's own id and key
//! code; seeded users get no audit events), starts the ceiling (a bare
//! axum handler), drives every scenario over loopback with N concurrent
//! connections, and prints one table. Only 127.0.0.1 is ever contacted
//! (and the PostgreSQL server `--db` names); every load loop stops by
//! itself after `--duration-secs`.
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, atomic::AtomicU64},
    time::{Duration, Instant},
};

use clap::Parser;
use provisioning_proto::pb::{self, account_service_client::AccountServiceClient};
use provisioning_server::db::{Db, SqliteSync};
use sea_orm::ConnectionTrait as _;

mod ceiling;
mod http;
mod load;
mod server;

use load::{RunStats, Scenario, Target, Worker};
use server::{Launch, PgDatabase, ServerProcess};

const SLUG: &str = "bench";
const ADMIN_TOKEN: &str = "bench-admin-credential-0123456789abcdef";

#[derive(Parser, Debug)]
#[command(
    name = "provisioning-bench",
    about = "Load benchmark of the provisioning service over loopback (issue 4)"
)]
struct Cli {
    /// Account sizes (users seeded), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
    sizes: Vec<u64>,
    /// Measured seconds per scenario and run.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Unmeasured seconds before the first run of each scenario.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Concurrent connections (one load worker each).
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Runs per scenario; each figure is the median.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// `sqlite` (a file in the temp dir) or a PostgreSQL URL: the bench
    /// creates a fresh database on that server for each size and drops it.
    #[arg(long, default_value = "sqlite")]
    db: String,
    /// The `provisioning` binary (default: beside this one, else
    /// target/release/provisioning).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Scenarios to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// The server's per-token rate limit (`serve --rate-limit`); 0 turns it
    /// off, a negative value leaves the server's default.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    rate_limit: f64,
    /// RUST_LOG for the server.
    #[arg(long, default_value = "info")]
    server_log: String,
    /// Extra arguments for `provisioning serve` (repeatable).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Keep the temp dirs (database, server log) and print where they are.
    #[arg(long)]
    keep: bool,
}

struct Row {
    scenario: Scenario,
    outcome: Result<RunStats, String>,
    /// Server VmHWM (KiB) after the scenario's runs.
    peak_rss_kib: u64,
}

struct SizeResult {
    size: u64,
    /// /proc/loadavg before and after (other work on the machine skews
    /// the figures).
    load: (String, String),
    seed_secs: f64,
    batch_rows: usize,
    rows: Vec<Row>,
    facade: Result<(), String>,
    warnings: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let scenarios: Vec<Scenario> = if cli.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        let mut chosen = Vec::new();
        for name in &cli.scenarios {
            let scenario = Scenario::parse(name).ok_or_else(|| {
                format!(
                    "unknown scenario {name:?}; known: {}",
                    Scenario::ALL.map(Scenario::name).join(", ")
                )
            })?;
            chosen.push(scenario);
        }
        // The ceiling is what every ratio is against.
        if !chosen.contains(&Scenario::Ceiling) {
            chosen.insert(0, Scenario::Ceiling);
        }
        chosen
    };
    if cli.connections == 0 || cli.runs == 0 || cli.duration_secs == 0 {
        return Err("--connections, --runs and --duration-secs must be at least 1".to_owned());
    }
    if cli.sizes.iter().any(|&s| s < 200) {
        return Err("each size must be at least 200 users".to_owned());
    }
    let bin = match &cli.bin {
        Some(bin) => bin.clone(),
        None => default_bin(),
    };
    if !bin.exists() {
        return Err(format!(
            "no server binary at {}: build it with `cargo build --release -p provisioning-server` or pass --bin",
            bin.display()
        ));
    }
    eprintln!("server binary: {}", bin.display());
    let mut results = Vec::new();
    for &size in &cli.sizes {
        eprintln!("== {size} users");
        results.push(run_size(&cli, &bin, size, &scenarios).await?);
    }
    print_report(&cli, &results);
    Ok(())
}

fn default_bin() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("provisioning")));
    match beside {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("target/release/provisioning"),
    }
}

async fn run_size(
    cli: &Cli,
    bin: &Path,
    size: u64,
    scenarios: &[Scenario],
) -> Result<SizeResult, String> {
    let dir = tempfile::Builder::new()
        .prefix("provisioning-bench-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let (database_url, pg) = if cli.db == "sqlite" {
        (
            format!("sqlite://{}", dir.path().join("bench.db").display()),
            None,
        )
    } else if cli.db.starts_with("postgres://") || cli.db.starts_with("postgresql://") {
        let pg = PgDatabase::create(&cli.db).await?;
        (pg.url.clone(), Some(pg))
    } else {
        return Err("--db is `sqlite` or a postgres:// URL".to_owned());
    };
    let result = run_size_on(cli, bin, size, scenarios, dir.path(), &database_url).await;
    if let Some(pg) = pg
        && let Err(e) = pg.drop_now().await
    {
        eprintln!("warning: {e}");
    }
    if cli.keep {
        let kept = dir.keep();
        eprintln!("kept {}", kept.display());
    }
    result
}

async fn run_size_on(
    cli: &Cli,
    bin: &Path,
    size: u64,
    scenarios: &[Scenario],
    dir: &Path,
    database_url: &str,
) -> Result<SizeResult, String> {
    let launch = Launch {
        bin,
        dir,
        database_url,
        admin_token: ADMIN_TOKEN,
        rate_limit: (cli.rate_limit >= 0.0).then_some(cli.rate_limit),
        log_filter: &cli.server_log,
        extra_args: &cli.server_args,
    };
    let load_before = loadavg();
    let server = ServerProcess::start(&launch)?;
    eprintln!(
        "server pid {} grpc={} scim={}",
        server.pid(),
        server.grpc,
        server.scim
    );
    let grpc_url = format!("http://{}", server.grpc);
    let token = create_account(&grpc_url).await?;

    // Seed straight into the database while the server idles (WAL and the
    // busy timeout make that safe on SQLite). Afterwards: a checkpoint on
    // SQLite; VACUUM ANALYZE on PostgreSQL, so that autovacuum of the fresh
    // rows does not run during the measurements.
    let started = Instant::now();
    let db = Db::connect(database_url, SqliteSync::Normal)
        .await
        .map_err(|e| format!("seed connection: {e}"))?;
    let seeded = provisioning_server::seed::bulk_users(&db, SLUG, size, load::seed_profile)
        .await
        .map_err(|e| format!("seeding: {e}"))?;
    if database_url.starts_with("sqlite:") {
        db.writer()
            .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .map_err(|e| format!("checkpoint: {e}"))?;
    } else {
        db.writer()
            .execute_unprepared("VACUUM ANALYZE")
            .await
            .map_err(|e| format!("vacuum: {e}"))?;
    }
    drop(db);
    let seed_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "seeded {size} users in {seed_secs:.1} s ({:.0} users/s, {} rows per batch)",
        size as f64 / seed_secs.max(1e-9),
        seeded.batch_rows
    );

    let ceiling = ceiling::Ceiling::start()?;
    let target = Arc::new(Target {
        scim: server.scim,
        grpc_url,
        ceiling: ceiling.addr,
        slug: SLUG.to_owned(),
        token,
        admin_token: ADMIN_TOKEN.to_owned(),
        ids: seeded.ids,
        first_seq: seeded.first_seq,
        nonce: format!("{:x}", uuid::Uuid::now_v7().as_u128() & 0xffff_ffff),
        pushed: AtomicU64::new(0),
        deactivated: AtomicU64::new(0),
        updated: AtomicU64::new(0),
    });
    let facade = facade_ready(&target).await;
    if let Err(e) = &facade {
        eprintln!("the SCIM facade does not answer yet ({e}): SCIM scenarios are skipped");
    }

    let mut rows = Vec::new();
    for &scenario in scenarios {
        let outcome = if scenario.is_scim()
            && let Err(e) = &facade
        {
            Err(format!("skipped: facade not ready ({e})"))
        } else {
            run_scenario(cli, &target, scenario, &server).await
        };
        let (peak_rss_kib, _) = server.memory_kib();
        match &outcome {
            Ok(stats) => eprintln!(
                "  {scenario:<13} {:>9.0} op/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}  server CPU {:.0} µs/op  load-tool CPU {:.0} µs/op  {:.1} server context switches/op  peak RSS {:.1} MB{}",
                stats.ops_per_sec,
                ms(stats.p50_us),
                ms(stats.p99_us),
                stats.failed,
                stats.server_cpu_us,
                stats.client_cpu_us,
                stats.switches,
                peak_rss_kib as f64 / 1024.0,
                stats
                    .first_error
                    .as_ref()
                    .map(|e| format!("  (first error: {e})"))
                    .unwrap_or_default()
            ),
            Err(e) => eprintln!("  {scenario:<13} {e}"),
        }
        rows.push(Row {
            scenario,
            outcome,
            peak_rss_kib,
        });
    }
    drop(ceiling);
    let warnings = server.warnings();
    server.stop();
    Ok(SizeResult {
        size,
        load: (load_before, loadavg()),
        seed_secs,
        batch_rows: seeded.batch_rows,
        rows,
        facade,
        warnings,
    })
}

async fn create_account(grpc_url: &str) -> Result<String, String> {
    let channel = tonic::transport::Endpoint::from_shared(grpc_url.to_owned())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| format!("gRPC connect: {e}"))?;
    let mut accounts = AccountServiceClient::new(channel);
    let admin = |message| -> Result<tonic::Request<_>, String> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {ADMIN_TOKEN}")
                .parse()
                .map_err(|_| "bad admin token".to_owned())?,
        );
        Ok(request)
    };
    accounts
        .create_account(admin(pb::CreateAccountRequest {
            slug: SLUG.to_owned(),
            display_name: "Benchmark".to_owned(),
            ..Default::default()
        })?)
        .await
        .map_err(|e| format!("CreateAccount: {e}"))?;
    let mut request = tonic::Request::new(pb::SetScimEnabledRequest {
        account: SLUG.to_owned(),
        enabled: true,
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}")
            .parse()
            .map_err(|_| "bad admin token".to_owned())?,
    );
    let reply = accounts
        .set_scim_enabled(request)
        .await
        .map_err(|e| format!("SetScimEnabled: {e}"))?
        .into_inner();
    reply
        .issued_token
        .map(|t| t.secret)
        .ok_or_else(|| "SetScimEnabled issued no token".to_owned())
}

/// Does `GET /scim/v2/Users` answer 200 with a ListResponse?
async fn facade_ready(target: &Target) -> Result<(), String> {
    let mut http = http::Http::new(target.scim, &target.token, Duration::from_secs(5))?;
    let (status, body) = http
        .call(
            hyper::Method::GET,
            "/scim/v2/Users?startIndex=1&count=1",
            None,
        )
        .await?;
    let listed = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("totalResults").and_then(serde_json::Value::as_i64));
    match (status.as_u16(), listed) {
        (200, Some(_)) => Ok(()),
        (code, _) => Err(format!("GET /scim/v2/Users answered {code}")),
    }
}

async fn run_scenario(
    cli: &Cli,
    target: &Arc<Target>,
    scenario: Scenario,
    server: &ServerProcess,
) -> Result<RunStats, String> {
    let ticks = server::clock_ticks();
    let mut workers = Vec::with_capacity(cli.connections);
    for i in 0..cli.connections {
        workers.push(Worker::new(target.clone(), scenario, i, cli.connections).await?);
    }
    if cli.warmup_secs > 0 {
        let (kept, _) =
            load::drive(workers, scenario, Duration::from_secs(cli.warmup_secs)).await?;
        workers = kept;
    }
    let mut runs = Vec::with_capacity(cli.runs);
    for _ in 0..cli.runs {
        let (server_before, switches_before) = server.cpu();
        let (client_before, _) = server::process_cpu("/proc/self");
        let (kept, mut stats) =
            load::drive(workers, scenario, Duration::from_secs(cli.duration_secs)).await?;
        let (server_after, switches_after) = server.cpu();
        let (client_after, _) = server::process_cpu("/proc/self");
        let ops = (stats.ops_per_sec * cli.duration_secs as f64).max(1.0);
        let per_op = |ticks_used: u64| ticks_used as f64 / ticks * 1e6 / ops;
        stats.client_cpu_us = per_op(client_after.saturating_sub(client_before));
        stats.server_cpu_us = if scenario == Scenario::Ceiling {
            stats.client_cpu_us
        } else {
            per_op(server_after.saturating_sub(server_before))
        };
        stats.switches = switches_after.saturating_sub(switches_before) as f64 / ops;
        workers = kept;
        runs.push(stats);
    }
    load::median(&runs).ok_or_else(|| "no runs".to_owned())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn ms(micros: u32) -> f64 {
    f64::from(micros) / 1000.0
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!("{cores} cores ({model}), {mem_gib:.0} GiB RAM, Linux; load tool on the same machine")
}

fn print_report(cli: &Cli, results: &[SizeResult]) {
    let backend = if cli.db == "sqlite" {
        "SQLite (WAL, synchronous=normal)".to_owned()
    } else {
        "PostgreSQL (fresh database per size)".to_owned()
    };
    let rate = if cli.rate_limit == 0.0 {
        "per-token rate limit switched off (`serve --rate-limit 0`)".to_owned()
    } else if cli.rate_limit < 0.0 {
        "per-token rate limit at the server's default".to_owned()
    } else {
        format!("per-token rate limit {} req/s", cli.rate_limit)
    };
    println!();
    println!("Machine: {}", machine());
    println!(
        "Database: {backend}; {} connections; {} s per run after {} s warm-up; median of {} runs; {rate}.",
        cli.connections, cli.duration_secs, cli.warmup_secs, cli.runs
    );
    for r in results {
        println!(
            "Seeded {} users through the bulk path (server's id and key code, no audit events) in {:.1} s ({:.0} users/s, {} rows per transaction).",
            r.size,
            r.seed_secs,
            r.size as f64 / r.seed_secs.max(1e-9),
            r.batch_rows
        );
        println!(
            "{} users: load average (1/5/15 min) {} before, {} after.",
            r.size, r.load.0, r.load.1
        );
    }
    println!();
    println!(
        "| scenario | users | op/s | req/s | p50 ms | p99 ms | max ms | errors | server peak RSS | × ceiling | server CPU µs/op |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let ceiling = ceiling_rps(r);
        for row in &r.rows {
            match &row.outcome {
                Ok(s) => {
                    let ratio = ceiling.map_or("-".to_owned(), |c| {
                        format!("{:.1} %", 100.0 * s.ops_per_sec / c)
                    });
                    let errors = if s.rate_limited > 0 {
                        format!("{} ({} × 429)", s.failed, s.rate_limited)
                    } else {
                        s.failed.to_string()
                    };
                    let rss = if row.scenario == Scenario::Ceiling {
                        "-".to_owned()
                    } else {
                        format!("{:.0} MB", row.peak_rss_kib as f64 / 1024.0)
                    };
                    println!(
                        "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1} | {errors} | {rss} | {ratio} | {:.0} |",
                        row.scenario,
                        r.size,
                        s.ops_per_sec,
                        s.requests_per_sec,
                        ms(s.p50_us),
                        ms(s.p99_us),
                        ms(s.max_us),
                        s.server_cpu_us,
                    );
                }
                Err(e) => println!("| {} | {} | {e} | | | | | | | | |", row.scenario, r.size),
            }
        }
    }
    println!();
    println!(
        "op/s counts successful operations: push is a GET filter + POST, update a GET + PUT (2 requests each); the others are 1 request. \
         × ceiling compares op/s with the bare axum handler's. Peak RSS is the server's VmHWM since it started (one server per size). \
         login is gRPC CheckLogin by userName with the admin credential; grpc-lookup is gRPC ListUsers (userName eq) with the SCIM token. \
         Deactivate walks the users in order and flips active on each pass, so every PATCH is a write. \
         Server CPU µs/op is the server process's user+system time per operation (for the ceiling: the bench process's, which serves it and also runs the load)."
    );
    for r in results {
        if let Err(e) = &r.facade {
            println!(
                "{} users: SCIM facade not answering ({e}); SCIM rows skipped.",
                r.size
            );
        }
        for row in &r.rows {
            if let Ok(s) = &row.outcome
                && let Some(e) = &s.first_error
            {
                println!(
                    "{} users, {}: {} errors; first: {e}",
                    r.size, row.scenario, s.failed
                );
            }
        }
        if !r.warnings.is_empty() {
            println!(
                "{} users: the server logged {} warnings/errors; first: {}",
                r.size,
                r.warnings.len(),
                r.warnings.first().map_or("", String::as_str)
            );
        }
    }
    print_targets(results);
}

fn ceiling_rps(r: &SizeResult) -> Option<f64> {
    stats(r, Scenario::Ceiling).map(|s| s.ops_per_sec)
}

fn stats(r: &SizeResult, scenario: Scenario) -> Option<&RunStats> {
    r.rows
        .iter()
        .find(|row| row.scenario == scenario)
        .and_then(|row| row.outcome.as_ref().ok())
}

fn print_targets(results: &[SizeResult]) {
    println!();
    println!("Targets (issue 4):");
    let verdict = |ok: bool| if ok { "holds" } else { "MISSES" };
    for r in results {
        let Some(ceiling) = ceiling_rps(r) else {
            continue;
        };
        let share = |s: Scenario| stats(r, s).map(|x| x.ops_per_sec / ceiling);
        if let (Some(share), Some(lookup)) = (share(Scenario::Lookup), stats(r, Scenario::Lookup)) {
            let ok = share >= 0.20 && lookup.p99_us <= 5_000;
            println!(
                "- {} users: lookup {:.1} % of ceiling (≥ 20 %), p99 {:.2} ms (≤ 5 ms): {}",
                r.size,
                100.0 * share,
                ms(lookup.p99_us),
                verdict(ok)
            );
        }
        for (scenario, floor) in [
            (Scenario::Push, 0.05),
            (Scenario::Update, 0.05),
            (Scenario::Deactivate, 0.05),
        ] {
            if let Some(share) = share(scenario) {
                println!(
                    "- {} users: {scenario} {:.1} % of ceiling (≥ {:.0} %): {}",
                    r.size,
                    100.0 * share,
                    100.0 * floor,
                    verdict(share >= floor)
                );
            }
        }
        if let (Some(facade), Some(grpc)) =
            (stats(r, Scenario::Lookup), stats(r, Scenario::GrpcLookup))
        {
            let ratio = facade.ops_per_sec / grpc.ops_per_sec.max(1e-9);
            println!(
                "- {} users: facade lookup {:.0} % of gRPC lookup (≥ 60 %): {}",
                r.size,
                100.0 * ratio,
                verdict(ratio >= 0.60)
            );
        }
        if let (Some(shallow), Some(deep)) = (
            stats(r, Scenario::PageShallow),
            stats(r, Scenario::PageDeep),
        ) {
            let ratio = f64::from(deep.p50_us) / f64::from(shallow.p50_us.max(1));
            println!(
                "- {} users: deep page p50 {:.2}× the shallow one (≤ 2×): {}",
                r.size,
                ratio,
                verdict(ratio <= 2.0)
            );
        }
        let peak = r.rows.iter().map(|row| row.peak_rss_kib).max().unwrap_or(0);
        println!(
            "- {} users: server peak RSS {:.0} MB (≤ 150 MB at 1,000,000 users){}",
            r.size,
            peak as f64 / 1024.0,
            if r.size >= 1_000_000 {
                format!(": {}", verdict(peak <= 150 * 1024))
            } else {
                String::new()
            }
        );
    }
    if let (Some(small), Some(large)) = (
        results.iter().min_by_key(|r| r.size),
        results.iter().max_by_key(|r| r.size),
    ) && large.size > small.size
    {
        for scenario in Scenario::ALL {
            if scenario == Scenario::Ceiling {
                continue;
            }
            if let (Some(a), Some(b)) = (stats(small, scenario), stats(large, scenario)) {
                let kept = b.ops_per_sec / a.ops_per_sec.max(1e-9);
                println!(
                    "- {scenario} at {} users keeps {:.0} % of its {}-user throughput (≥ 80 %): {}",
                    large.size,
                    100.0 * kept,
                    small.size,
                    verdict(kept >= 0.80)
                );
            }
        }
    }
}
