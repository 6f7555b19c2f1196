//! The scenarios and the loop that drives them: N workers, each with one
//! connection of its own, each sending its next operation as soon as the
//! previous one is answered, for a fixed time (closed-loop load).
use std::{
    fmt,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use provisioning_proto::pb::{self, user_service_client::UserServiceClient};
use serde_json::{Value, json};
use tonic::{metadata::MetadataValue, transport::Channel};
use uuid::Uuid;

use crate::http::{Http, encode};

/// One request that takes longer than this counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Hard cap on operations per worker and run, so every loop is bounded in
/// count as well as in time.
pub const MAX_OPS_PER_WORKER: u64 = 5_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    Ceiling,
    Lookup,
    GrpcLookup,
    Login,
    PageShallow,
    PageDeep,
    Update,
    Deactivate,
    Push,
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::Ceiling,
        Scenario::Lookup,
        Scenario::GrpcLookup,
        Scenario::Login,
        Scenario::PageShallow,
        Scenario::PageDeep,
        Scenario::Update,
        Scenario::Deactivate,
        Scenario::Push,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Ceiling => "ceiling",
            Scenario::Lookup => "lookup",
            Scenario::GrpcLookup => "grpc-lookup",
            Scenario::Login => "login",
            Scenario::PageShallow => "page-shallow",
            Scenario::PageDeep => "page-deep",
            Scenario::Update => "update",
            Scenario::Deactivate => "deactivate",
            Scenario::Push => "push",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name.trim())
    }

    /// Over the SCIM facade (HTTP) rather than gRPC or the ceiling.
    pub fn is_scim(self) -> bool {
        !matches!(
            self,
            Scenario::Ceiling | Scenario::GrpcLookup | Scenario::Login
        )
    }

    pub fn is_grpc(self) -> bool {
        matches!(self, Scenario::GrpcLookup | Scenario::Login)
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// What every worker of a size shares.
pub struct Target {
    pub scim: SocketAddr,
    pub grpc_url: String,
    pub ceiling: SocketAddr,
    pub slug: String,
    pub token: String,
    pub admin_token: String,
    /// Ids of the seeded users; `ids[i]` is `user{first_seq + i}@bench.example`.
    pub ids: Vec<Uuid>,
    pub first_seq: i64,
    /// Makes pushed user names distinct across sizes and runs.
    pub nonce: String,
    pub pushed: AtomicU64,
    pub deactivated: AtomicU64,
    pub updated: AtomicU64,
}

impl Target {
    pub fn user_name(&self, index: usize) -> String {
        format!("user{}@bench.example", self.first_seq + index as i64)
    }
}

/// The seeded users' profile (see `provisioning_server::seed`).
pub fn seed_profile(seq: i64) -> provisioning_server::seed::SeedUser {
    provisioning_server::seed::SeedUser {
        user_name: format!("user{seq}@bench.example"),
        external_id: format!("ext{seq}"),
        given_name: "Bench".to_owned(),
        family_name: format!("User{seq}"),
        email: format!("user{seq}@bench.example"),
        role: String::new(),
        active: true,
    }
}

pub struct Worker {
    target: Arc<Target>,
    http: Option<Http>,
    grpc: Option<UserServiceClient<Channel>>,
    grpc_sent: u64,
    rng: u64,
    /// This worker's number and how many there are: updates touch only the
    /// users `i` with `i % workers == index`, so two workers never race on
    /// one user (a real conflict, answered 412, would count as an error).
    index: usize,
    workers: usize,
}

#[derive(Debug)]
pub enum Failure {
    Status(u16),
    Other(String),
}

impl Worker {
    pub async fn new(
        target: Arc<Target>,
        scenario: Scenario,
        index: usize,
        workers: usize,
    ) -> Result<Self, String> {
        let mut worker = Self {
            http: None,
            grpc: None,
            grpc_sent: 0,
            rng: (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            index,
            workers: workers.max(1),
            target,
        };
        if scenario.is_grpc() {
            let channel = tonic::transport::Endpoint::from_shared(worker.target.grpc_url.clone())
                .map_err(|e| e.to_string())?
                .tcp_nodelay(true)
                .connect_timeout(REQUEST_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .connect()
                .await
                .map_err(|e| format!("gRPC connect: {e}"))?;
            worker.grpc = Some(UserServiceClient::new(channel));
        } else {
            let addr = if scenario == Scenario::Ceiling {
                worker.target.ceiling
            } else {
                worker.target.scim
            };
            let mut http = Http::new(addr, &worker.target.token, REQUEST_TIMEOUT)?;
            http.connect().await?;
            worker.http = Some(http);
        }
        Ok(worker)
    }

    /// Requests sent so far on this worker's connection.
    pub fn sent(&self) -> u64 {
        self.http.as_ref().map_or(0, |h| h.sent) + self.grpc_sent
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn random_user(&mut self) -> usize {
        let n = self.target.ids.len().max(1) as u64;
        (self.next_random() % n) as usize
    }

    /// A random user of this worker's share.
    fn own_random_user(&mut self) -> usize {
        let n = self.target.ids.len();
        let share = n.saturating_sub(self.index).div_ceil(self.workers);
        let k = (self.next_random() % share.max(1) as u64) as usize;
        (k * self.workers + self.index).min(n.saturating_sub(1))
    }

    async fn http(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), Failure> {
        let Some(http) = self.http.as_mut() else {
            return Err(Failure::Other("no HTTP connection".to_owned()));
        };
        http.call(method, path, body).await.map_err(Failure::Other)
    }

    fn grpc_request<T>(&mut self, message: T, admin: bool) -> Result<tonic::Request<T>, Failure> {
        let token = if admin {
            &self.target.admin_token
        } else {
            &self.target.token
        };
        let value: MetadataValue<_> = format!("Bearer {token}")
            .parse()
            .map_err(|_| Failure::Other("bad token".to_owned()))?;
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert("authorization", value);
        self.grpc_sent += 1;
        Ok(request)
    }

    fn grpc_client(&self) -> Result<UserServiceClient<Channel>, Failure> {
        // Cloning a client shares its connection.
        self.grpc
            .clone()
            .ok_or_else(|| Failure::Other("no gRPC connection".to_owned()))
    }

    /// One operation of the scenario.
    pub async fn op(&mut self, scenario: Scenario) -> Result<(), Failure> {
        match scenario {
            Scenario::Ceiling | Scenario::Lookup => {
                let i = self.random_user();
                let (status, body) = self
                    .http(Method::GET, &filter_path(&self.target.user_name(i)), None)
                    .await?;
                expect(status, &[StatusCode::OK])?;
                expect_total(&body, 1)
            }
            Scenario::PageShallow | Scenario::PageDeep => {
                let n = self.target.ids.len() as u64;
                let start = if scenario == Scenario::PageShallow {
                    1
                } else {
                    // A full page in the last tenth of the account.
                    let low = (n * 9 / 10).max(1);
                    let high = n.saturating_sub(99).max(low);
                    low + self.next_random() % (high - low + 1)
                };
                let path = format!("/scim/v2/Users?startIndex={start}&count=100");
                let (status, _) = self.http(Method::GET, &path, None).await?;
                expect(status, &[StatusCode::OK])
            }
            Scenario::Update => {
                let i = self.own_random_user();
                let id = self.target.ids.get(i).copied().unwrap_or_default();
                let path = format!("/scim/v2/Users/{id}");
                let (status, body) = self.http(Method::GET, &path, None).await?;
                expect(status, &[StatusCode::OK])?;
                let k = self.target.updated.fetch_add(1, Ordering::Relaxed);
                let email = format!("user{}+{k}@bench.example", self.target.first_seq + i as i64);
                let mut user: Value = serde_json::from_slice(&body)
                    .map_err(|e| Failure::Other(format!("GET answer is not JSON: {e}")))?;
                let object = user
                    .as_object_mut()
                    .ok_or_else(|| Failure::Other("GET answer is not an object".to_owned()))?;
                object.insert(
                    "emails".to_owned(),
                    json!([{"value": email, "type": "work", "primary": true}]),
                );
                let body = serde_json::to_vec(&user).map_err(|e| Failure::Other(e.to_string()))?;
                let (status, _) = self.http(Method::PUT, &path, Some(body.into())).await?;
                expect(status, &[StatusCode::OK])
            }
            Scenario::Deactivate => {
                // Walks the users in order; each pass over all of them flips
                // `active` (deactivate, then reactivate), so every PATCH is a
                // real change and a durable write.
                let k = self.target.deactivated.fetch_add(1, Ordering::Relaxed);
                let n = self.target.ids.len().max(1) as u64;
                let id = self
                    .target
                    .ids
                    .get((k % n) as usize)
                    .copied()
                    .unwrap_or_default();
                let active = (k / n) % 2 == 1;
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "value": {"active": active}}]
                });
                let body = serde_json::to_vec(&body).map_err(|e| Failure::Other(e.to_string()))?;
                let (status, _) = self
                    .http(
                        Method::PATCH,
                        &format!("/scim/v2/Users/{id}"),
                        Some(body.into()),
                    )
                    .await?;
                expect(status, &[StatusCode::OK, StatusCode::NO_CONTENT])
            }
            Scenario::Push => {
                let k = self.target.pushed.fetch_add(1, Ordering::Relaxed);
                let name = format!("push{}-{k}@bench.example", self.target.nonce);
                let (status, body) = self.http(Method::GET, &filter_path(&name), None).await?;
                expect(status, &[StatusCode::OK])?;
                expect_total(&body, 0)?;
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": name,
                    "name": {"givenName": "Pushed", "familyName": format!("User{k}")},
                    "emails": [{"primary": true, "value": name, "type": "work"}],
                    "displayName": format!("Pushed User{k}"),
                    "locale": "en-US",
                    "externalId": format!("00u{}{k}", self.target.nonce),
                    "groups": [],
                    "password": "1mz050nq",
                    "active": true
                });
                let body = serde_json::to_vec(&body).map_err(|e| Failure::Other(e.to_string()))?;
                let (status, _) = self
                    .http(Method::POST, "/scim/v2/Users", Some(body.into()))
                    .await?;
                expect(status, &[StatusCode::CREATED])
            }
            Scenario::Login => {
                let i = self.random_user();
                let request = self.grpc_request(
                    pb::CheckLoginRequest {
                        account: self.target.slug.clone(),
                        user: Some(pb::check_login_request::User::UserName(
                            self.target.user_name(i),
                        )),
                    },
                    true,
                )?;
                let answer = self
                    .grpc_client()?
                    .check_login(request)
                    .await
                    .map_err(grpc_failure)?
                    .into_inner();
                if answer.reason == "unknown_user" {
                    return Err(Failure::Other("CheckLogin: unknown user".to_owned()));
                }
                Ok(())
            }
            Scenario::GrpcLookup => {
                let i = self.random_user();
                let filter = pb::Filter {
                    kind: Some(pb::filter::Kind::Compare(pb::Comparison {
                        attribute: pb::Attribute::UserName as i32,
                        op: pb::Operator::Eq as i32,
                        value: Some(pb::comparison::Value::StringValue(self.target.user_name(i))),
                    })),
                };
                let request = self.grpc_request(
                    pb::ListUsersRequest {
                        account: String::new(),
                        filter: Some(filter),
                        start_index: 1,
                        count: 100,
                    },
                    false,
                )?;
                let answer = self
                    .grpc_client()?
                    .list_users(request)
                    .await
                    .map_err(grpc_failure)?
                    .into_inner();
                if answer.total_results != 1 {
                    return Err(Failure::Other(format!(
                        "ListUsers found {} users",
                        answer.total_results
                    )));
                }
                Ok(())
            }
        }
    }
}

fn grpc_failure(status: tonic::Status) -> Failure {
    if status.code() == tonic::Code::ResourceExhausted {
        Failure::Status(429)
    } else {
        Failure::Other(format!("gRPC {:?}: {}", status.code(), status.message()))
    }
}

/// `/scim/v2/Users?filter=userName eq "…"&startIndex=1&count=100`, encoded
/// as Okta encodes it.
pub fn filter_path(user_name: &str) -> String {
    format!(
        "/scim/v2/Users?filter={}&startIndex=1&count=100",
        encode(&format!("userName eq \"{user_name}\""))
    )
}

fn expect(status: StatusCode, wanted: &[StatusCode]) -> Result<(), Failure> {
    if wanted.contains(&status) {
        Ok(())
    } else {
        Err(Failure::Status(status.as_u16()))
    }
}

fn expect_total(body: &[u8], total: i64) -> Result<(), Failure> {
    let needle = format!("\"totalResults\":{total}");
    let found = body.windows(needle.len()).any(|w| w == needle.as_bytes())
        || serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("totalResults").and_then(Value::as_i64))
            == Some(total);
    if found {
        Ok(())
    } else {
        Err(Failure::Other(format!("expected totalResults {total}")))
    }
}

/// What one worker measured in one run.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Latency of every operation, in microseconds.
    pub latencies: Vec<u32>,
    pub ok: u64,
    pub failed: u64,
    pub rate_limited: u64,
    pub requests: u64,
    pub first_error: Option<String>,
}

/// One run of one scenario, all workers together.
#[derive(Debug, Clone)]
pub struct RunStats {
    pub ops_per_sec: f64,
    pub requests_per_sec: f64,
    pub p50_us: u32,
    pub p99_us: u32,
    pub max_us: u32,
    pub failed: u64,
    pub rate_limited: u64,
    pub first_error: Option<String>,
    /// Server CPU time per successful operation, µs (the bench process's
    /// own for the ceiling, which it serves).
    pub server_cpu_us: f64,
    /// Load tool CPU time per successful operation, µs.
    pub client_cpu_us: f64,
    /// Server context switches (all threads) per successful operation.
    pub switches: f64,
}

/// Runs `scenario` on every worker for `duration` and returns the workers
/// (connections kept for the next run) with what they measured.
pub async fn drive(
    workers: Vec<Worker>,
    scenario: Scenario,
    duration: Duration,
) -> Result<(Vec<Worker>, RunStats), String> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(workers.len());
    for mut worker in workers {
        tasks.push(tokio::spawn(async move {
            let mut stats = WorkerStats {
                latencies: Vec::with_capacity(1 << 16),
                ..WorkerStats::default()
            };
            let sent_before = worker.sent();
            let mut ops = 0u64;
            while ops < MAX_OPS_PER_WORKER && Instant::now() < deadline {
                ops += 1;
                let t = Instant::now();
                let result = worker.op(scenario).await;
                let micros = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
                stats.latencies.push(micros);
                match result {
                    Ok(()) => stats.ok += 1,
                    Err(failure) => {
                        stats.failed += 1;
                        if matches!(failure, Failure::Status(429)) {
                            stats.rate_limited += 1;
                        }
                        if stats.first_error.is_none() {
                            stats.first_error = Some(match failure {
                                Failure::Status(code) => format!("HTTP status {code}"),
                                Failure::Other(text) => text,
                            });
                        }
                    }
                }
            }
            stats.requests = worker.sent() - sent_before;
            (worker, stats)
        }));
    }
    let mut workers = Vec::with_capacity(tasks.len());
    let mut latencies = Vec::new();
    let (mut ok, mut failed, mut rate_limited, mut requests) = (0, 0, 0, 0);
    let mut first_error = None;
    for task in tasks {
        let (worker, stats) = task.await.map_err(|e| format!("load worker: {e}"))?;
        workers.push(worker);
        latencies.extend_from_slice(&stats.latencies);
        ok += stats.ok;
        failed += stats.failed;
        rate_limited += stats.rate_limited;
        requests += stats.requests;
        if first_error.is_none() {
            first_error = stats.first_error;
        }
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    latencies.sort_unstable();
    let quantile = |q: f64| -> u32 {
        if latencies.is_empty() {
            return 0;
        }
        let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index]
    };
    Ok((
        workers,
        RunStats {
            ops_per_sec: ok as f64 / elapsed,
            requests_per_sec: requests as f64 / elapsed,
            p50_us: quantile(0.50),
            p99_us: quantile(0.99),
            max_us: latencies.last().copied().unwrap_or(0),
            failed,
            rate_limited,
            first_error,
            server_cpu_us: 0.0,
            client_cpu_us: 0.0,
            switches: 0.0,
        },
    ))
}

/// The median of each figure over several runs (errors are summed).
pub fn median(runs: &[RunStats]) -> Option<RunStats> {
    fn mid<T: Copy + PartialOrd>(mut values: Vec<T>) -> Option<T> {
        values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        values.get(values.len() / 2).copied()
    }
    Some(RunStats {
        ops_per_sec: mid(runs.iter().map(|r| r.ops_per_sec).collect())?,
        requests_per_sec: mid(runs.iter().map(|r| r.requests_per_sec).collect())?,
        p50_us: mid(runs.iter().map(|r| r.p50_us).collect())?,
        p99_us: mid(runs.iter().map(|r| r.p99_us).collect())?,
        max_us: mid(runs.iter().map(|r| r.max_us).collect())?,
        failed: runs.iter().map(|r| r.failed).sum(),
        rate_limited: runs.iter().map(|r| r.rate_limited).sum(),
        first_error: runs.iter().find_map(|r| r.first_error.clone()),
        server_cpu_us: mid(runs.iter().map(|r| r.server_cpu_us).collect())?,
        client_cpu_us: mid(runs.iter().map(|r| r.client_cpu_us).collect())?,
        switches: mid(runs.iter().map(|r| r.switches).collect())?,
    })
}
