//! The `provisioning` process under faults: killed mid-load, terminated
//! mid-load, two processes on one PostgreSQL database, and secrets in logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod support;

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use provisioning_proto::pb::{self, audit_service_client::AuditServiceClient};
use serde_json::{Value, json};
use support::{ADMIN, Server, pg};

const SCIM: &str = "application/scim+json";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Creates account `acme` with SCIM on; returns its token.
fn scim_token(server: &Server, dir: &Path) -> String {
    server.admin_command(dir, Some(ADMIN), &["account", "create", "acme"]);
    let (token, _) = server.admin_command(dir, Some(ADMIN), &["scim", "enable", "acme"]);
    token.trim().to_owned()
}

fn user(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "name": {"givenName": "Load", "familyName": "Test"},
        "emails": [{"value": name, "primary": true, "type": "work"}],
        "password": "Pa55word-never-stored",
        "active": true
    })
}

/// Creates users from 8 tasks until the server goes away; returns the ids
/// answered 201 and the userNames of requests that failed other than by a
/// refused connection.
async fn create_load(scim_base: String, token: String) -> (Vec<String>, Vec<String>) {
    // A fresh connection per request: a refused connection is then the only
    // way a request can fail once the server is gone.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let broken = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (client, base, token) = (client.clone(), scim_base.clone(), token.clone());
        let (acked, broken) = (acked.clone(), broken.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..100_000 {
                let name = format!("load-{t}-{i}@example.com");
                let sent = client
                    .post(format!("{base}/Users"))
                    .bearer_auth(&token)
                    .header("content-type", SCIM)
                    .json(&user(&name))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 201 => {
                        let body: Value = response.json().await.unwrap();
                        acked
                            .lock()
                            .unwrap()
                            .push(body["id"].as_str().unwrap().to_owned());
                    }
                    Ok(response) => panic!("unexpected status {}", response.status()),
                    Err(err) if err.is_connect() => break,
                    Err(_) => {
                        broken.lock().unwrap().push(name);
                        break;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let ids = acked.lock().unwrap().clone();
    let broken = broken.lock().unwrap().clone();
    (ids, broken)
}

/// Waits until the account holds at least `count` users.
async fn wait_for_users(scim_base: &str, token: &str, count: u64) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let listed: Value = client
            .get(format!("{scim_base}/Users?count=0"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if listed["totalResults"].as_u64().unwrap() >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load made no progress"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Every acknowledged user is present after a restart, each with its
/// `user.created` audit event.
async fn assert_all_present(server: &Server, token: &str, ids: &[String]) {
    let client = reqwest::Client::new();
    for id in ids {
        let response = client
            .get(format!("{}/Users/{id}", server.scim_base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "acknowledged user {id} lost");
    }
    let channel = tonic::transport::Channel::from_shared(server.grpc_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut audit = AuditServiceClient::new(channel);
    let mut created = std::collections::HashSet::new();
    let mut page_token = String::new();
    loop {
        let mut request = tonic::Request::new(pb::ListEventsRequest {
            account: "acme".into(),
            page_size: 500,
            page_token: page_token.clone(),
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
        let page = audit.list_events(request).await.unwrap().into_inner();
        for event in page.events {
            if event.action == "user.created" {
                created.insert(event.target_id);
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    for id in ids {
        assert!(created.contains(id), "no audit event for {id}");
    }
}

fn kill_during_create_load(db: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--rate-limit", "0"];
    let server = Server::start(dir.path(), db, Some(ADMIN), &extra);
    let token = scim_token(&server, dir.path());
    let rt = runtime();
    let load = rt.spawn(create_load(server.scim_base.clone(), token.clone()));
    // Kill once the load is well under way: SIGKILL, no chance to flush.
    rt.block_on(wait_for_users(&server.scim_base, &token, 150));
    server.signal("-KILL");
    let (status, _, _) = server.wait();
    assert!(!status.success());
    let (ids, _) = rt.block_on(load).unwrap();
    assert!(ids.len() >= 150, "the load ran: {}", ids.len());

    let restarted = Server::start(dir.path(), db, Some(ADMIN), &extra);
    rt.block_on(assert_all_present(&restarted, &token, &ids));
}

#[test]
fn sqlite_kill_9_mid_load_loses_no_acknowledged_user() {
    kill_during_create_load(None);
}

#[test]
fn postgres_kill_9_mid_load_loses_no_acknowledged_user() {
    let rt = runtime();
    let (url, name) = rt.block_on(pg::create_database());
    kill_during_create_load(Some(&url));
    pg::drop_database(name);
}

#[test]
fn sigterm_mid_load_finishes_in_flight_requests_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, Some(ADMIN), &["--rate-limit", "0"]);
    let token = scim_token(&server, dir.path());
    let rt = runtime();
    let load = rt.spawn(create_load(server.scim_base.clone(), token.clone()));
    rt.block_on(wait_for_users(&server.scim_base, &token, 50));
    server.signal("-TERM");
    let (status, logs, _) = server.wait();
    assert!(status.success(), "exit status {status:?}");
    let (ids, broken) = rt.block_on(load).unwrap();
    assert!(!ids.is_empty());
    assert!(logs.iter().any(|l| l.contains("shutting down")));

    let restarted = Server::start(dir.path(), None, Some(ADMIN), &[]);
    rt.block_on(assert_all_present(&restarted, &token, &ids));
    // A request that got no answer was refused (a connection the kernel had
    // queued but the server no longer accepted), never cut off halfway: the
    // server did not create its user.
    rt.block_on(async {
        for name in &broken {
            let url = format!(
                "{}/Users?filter=userName%20eq%20%22{}%22",
                restarted.scim_base,
                name.replace('@', "%40")
            );
            let r: Value = reqwest::Client::new()
                .get(url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                r["totalResults"], 0,
                "{name} was created but its request got no answer"
            );
        }
    });
}

#[test]
fn two_processes_on_one_postgres_database_create_a_user_once() {
    let rt = runtime();
    let (url, name) = rt.block_on(pg::create_database());
    let dir = tempfile::tempdir().unwrap();
    let a = Server::start(dir.path(), Some(&url), Some(ADMIN), &["--rate-limit", "0"]);
    let b = Server::start(dir.path(), Some(&url), Some(ADMIN), &["--rate-limit", "0"]);
    let token = scim_token(&a, dir.path());
    let spellings = [
        "jane@example.com",
        "JANE@EXAMPLE.COM",
        "Jane@Example.com",
        "jAnE@example.COM",
        "JANE@example.com",
    ];
    let statuses = rt.block_on(async {
        let client = reqwest::Client::new();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let base = if i % 2 == 0 {
                a.scim_base.clone()
            } else {
                b.scim_base.clone()
            };
            let (client, token) = (client.clone(), token.clone());
            let name = spellings[i % spellings.len()];
            tasks.push(tokio::spawn(async move {
                client
                    .post(format!("{base}/Users"))
                    .bearer_auth(token)
                    .header("content-type", SCIM)
                    .json(&user(name))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        statuses
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        49,
        "{statuses:?}"
    );
    let total = rt.block_on(async {
        let r: Value = reqwest::Client::new()
            .get(format!(
                "{}/Users?filter=userName%20eq%20%22jane%40example.com%22",
                b.scim_base
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["totalResults"].as_u64().unwrap()
    });
    assert_eq!(total, 1);
    drop((a, b));
    pg::drop_database(name);
}

#[test]
fn no_secret_reaches_the_logs_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, Some(ADMIN), &[]);
    let token = scim_token(&server, dir.path());
    let passwords = ["1mz050nq-first-password", "second-Passw0rd-sync"];
    let rt = runtime();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let base = &server.scim_base;
        let token = token.as_str();
        let send = |request: reqwest::RequestBuilder| async move {
            let response = request
                .bearer_auth(token)
                .header("content-type", SCIM)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        };
        let (status, _) = send(client.get(format!("{base}/Users?startIndex=1&count=2"))).await;
        assert_eq!(status, 200);
        let (status, _) = send(client.get(format!(
            "{base}/Users?filter=userName+eq+%22jane%40example.com%22&startIndex=1&count=100"
        )))
        .await;
        assert_eq!(status, 200);
        let mut body = user("jane@example.com");
        body["password"] = json!(passwords[0]);
        let (status, created) = send(client.post(format!("{base}/Users")).json(&body)).await;
        assert_eq!(status, 201);
        let id = created["id"].as_str().unwrap().to_owned();
        let (_, mut current) = send(client.get(format!("{base}/Users/{id}"))).await;
        current["password"] = json!(passwords[1]);
        current["emails"] = json!([{"value": "jane.doe@example.com", "primary": true}]);
        let (status, _) = send(client.put(format!("{base}/Users/{id}")).json(&current)).await;
        assert_eq!(status, 200);
        let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"password": passwords[1]}},
                           {"op": "replace", "value": {"active": false}}]});
        let (status, _) = send(client.patch(format!("{base}/Users/{id}")).json(&patch)).await;
        assert_eq!(status, 200);
        // A bad token and the admin credential, too.
        let (status, _) = send(
            client
                .get(format!("{base}/Users"))
                .bearer_auth("scim_wrong-token-value"),
        )
        .await;
        assert_eq!(status, 401);
    });
    server.signal("-TERM");
    let (status, logs, _) = server.wait();
    assert!(status.success());
    let logs = logs.join("\n");
    assert!(
        logs.contains("TRACE"),
        "the logs were captured at TRACE level"
    );
    assert!(
        logs.contains("jane@example.com") || logs.len() > 10_000,
        "the flow was logged"
    );
    for secret in [
        token.as_str(),
        ADMIN,
        passwords[0],
        passwords[1],
        "scim_wrong-token-value",
        "Pa55word-never-stored",
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

#[test]
fn a_request_id_follows_from_the_response_to_the_logs_and_the_audit_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None, Some(ADMIN), &[]);
    let token = scim_token(&server, dir.path());
    let rt = runtime();
    let request_id = "okta-req-7f3a9c";
    let (echoed, id) = rt.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("{}/Users", server.scim_base))
            .bearer_auth(&token)
            .header("content-type", SCIM)
            .header("x-request-id", request_id)
            .json(&user("jane@example.com"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        (echoed, body["id"].as_str().unwrap().to_owned())
    });
    assert_eq!(echoed, request_id);
    let event = rt.block_on(async {
        let channel = tonic::transport::Channel::from_shared(server.grpc_url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut request = tonic::Request::new(pb::ListEventsRequest {
            account: "acme".into(),
            page_size: 1,
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
        AuditServiceClient::new(channel)
            .list_events(request)
            .await
            .unwrap()
            .into_inner()
            .events
            .remove(0)
    });
    assert_eq!(
        (event.action.as_str(), event.target_id.as_str()),
        ("user.created", id.as_str())
    );
    assert_eq!(event.request_id, request_id);
    server.signal("-TERM");
    let (_, logs, _) = server.wait();
    let tagged: Vec<&String> = logs.iter().filter(|l| l.contains(request_id)).collect();
    assert!(
        tagged.iter().any(|l| l.contains("handled")),
        "the access log line carries the id"
    );
    assert!(
        tagged.len() >= 2,
        "every log line of the request carries the id: {tagged:?}"
    );
}
