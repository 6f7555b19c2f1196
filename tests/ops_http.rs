//! `/healthz` and `/readyz` on the SCIM listener: no token, outside `/scim/v2`.
mod common;

use std::time::Duration;

use common::{Backend, Settings, TestEnv};
use serde_json::Value;

fn root(env: &TestEnv) -> String {
    env.scim_base.trim_end_matches("/scim/v2").to_owned()
}

async fn get(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn health_endpoints_need_no_token(b: Backend) {
    let env = TestEnv::start(b).await;
    let (status, body) = get(format!("{}/healthz", root(&env))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("alive")));
    let (status, body) = get(format!("{}/readyz", root(&env))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
    // Still SCIM errors for everything else.
    let (status, body) = get(format!("{}/nope", root(&env))).await;
    assert_eq!(status, 404);
    assert_eq!(body["status"], "404");
}

/// Polls `/readyz` until it answers `want`.
async fn wait_for_ready(env: &TestEnv, want: u16) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(format!("{}/readyz", root(env))).await;
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never answered {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_unready_while_the_database_is_gone() {
    let env = TestEnv::start_with(
        Backend::Postgres,
        Settings {
            through_proxy: true,
            ..Default::default()
        },
    )
    .await;
    wait_for_ready(&env, 200).await;
    env.proxy.as_ref().unwrap().cut();
    let body = wait_for_ready(&env, 503).await;
    assert_eq!(body["status"], "unready");
    assert!(body["reason"].as_str().unwrap().contains("database"));
    // /healthz only says the process is alive.
    assert_eq!(get(format!("{}/healthz", root(&env))).await.0, 200);
    env.proxy.as_ref().unwrap().restore();
    wait_for_ready(&env, 200).await;
}

backend_tests!(health_endpoints_need_no_token);
