//! The Prometheus endpoint (`--metrics-addr`), scraped over HTTP while the
//! server works: its counters move. Every server of this test process
//! records into one global recorder, so the checks compare before and after.
mod common;

use std::time::Duration;

use common::{Backend, Settings, TestEnv, with_token};
use provisioning_proto::pb;
use tonic::Code;

async fn scrape(env: &TestEnv) -> String {
    let response = env.http().get(env.metrics_url()).send().await.unwrap();
    assert!(response.status().is_success());
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

/// The sum of the samples of `name` whose labels include all of `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, sample) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| sample.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

async fn metrics_endpoint_counts_calls_failures_queries_and_watch_events(b: Backend) {
    let env = TestEnv::start_with(
        b,
        Settings {
            metrics: true,
            ..Settings::default()
        },
    )
    .await;
    let before = scrape(&env).await;
    let create_ok = [
        ("service", "provisioning.v1.AccountService"),
        ("method", "CreateAccount"),
        ("code", "OK"),
    ];
    let list_unauthenticated = [
        ("service", "provisioning.v1.UserService"),
        ("method", "ListUsers"),
        ("code", "UNAUTHENTICATED"),
    ];

    let token = env.account_with_token("acme").await;
    let mut users = env.users().await;
    users
        .list_users(with_token(pb::ListUsersRequest::default(), &token))
        .await
        .unwrap();
    let err = users
        .list_users(with_token(
            pb::ListUsersRequest::default(),
            "scim_not-a-real-token",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = users
        .list_users(tonic::Request::new(pb::ListUsersRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let mut audit = env.audit().await;
    let mut stream = audit
        .watch_events(env.admin(pb::WatchEventsRequest {
            account: "acme".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    let during = scrape(&env).await;
    assert!(value(&during, "provisioning_watchers", &[]) >= 1.0);
    drop(stream);

    let after = scrape(&env).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert!(
        moved("provisioning_grpc_requests_total", &create_ok) >= 1.0,
        "{after}"
    );
    assert!(moved("provisioning_grpc_requests_total", &list_unauthenticated) >= 2.0);
    assert!(
        moved(
            "provisioning_grpc_request_duration_seconds_count",
            &[("method", "CreateAccount")]
        ) >= 1.0
    );
    assert!(
        moved(
            "provisioning_auth_failures_total",
            &[("reason", "invalid_token")]
        ) >= 1.0
    );
    assert!(
        moved(
            "provisioning_auth_failures_total",
            &[("reason", "missing_credential")]
        ) >= 1.0
    );
    assert!(moved("provisioning_watch_events_delivered_total", &[]) >= 3.0);
    assert!(
        moved(
            "provisioning_db_query_duration_seconds_count",
            &[("statement", "insert"), ("outcome", "ok")]
        ) >= 3.0
    );
    assert!(moved("provisioning_db_begin_write_duration_seconds_count", &[]) >= 2.0);
    let pool = match b {
        Backend::Sqlite => "write",
        Backend::Postgres => "main",
    };
    assert!(
        value(
            &after,
            "provisioning_db_pool_max_connections",
            &[("pool", pool)]
        ) >= 1.0
    );
    assert!(
        value(
            &after,
            "provisioning_db_pool_connections",
            &[("pool", pool), ("state", "idle")]
        ) + value(
            &after,
            "provisioning_db_pool_connections",
            &[("pool", pool), ("state", "in_use")]
        ) >= 1.0
    );
    assert!(after.contains("# TYPE provisioning_grpc_request_duration_seconds histogram"));
}

async fn scim_requests_are_counted_by_route_method_and_status(b: Backend) {
    let env = TestEnv::start_with(
        b,
        Settings {
            metrics: true,
            ..Settings::default()
        },
    )
    .await;
    let token = env.account_with_token("acme").await;
    let listed = [
        ("route", "/scim/v2/Users"),
        ("method", "GET"),
        ("status", "200"),
    ];
    let refused = [
        ("route", "/scim/v2/Users"),
        ("method", "GET"),
        ("status", "401"),
    ];
    let odd = [("route", "/scim/v2/Users"), ("method", "other")];
    let before = scrape(&env).await;
    let http = env.http();
    for _ in 0..3 {
        let r = http
            .get(format!("{}/Users?count=1", env.scim_base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = http
        .get(format!("{}/Users", env.scim_base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let method = reqwest::Method::from_bytes(b"BREW").unwrap();
    http.request(method, format!("{}/Users", env.scim_base))
        .send()
        .await
        .unwrap();
    let after = scrape(&env).await;
    let counted = |labels: &[(&str, &str)]| {
        value(&after, "provisioning_scim_requests_total", labels)
            - value(&before, "provisioning_scim_requests_total", labels)
    };
    assert!(counted(&listed) >= 3.0, "{after}");
    assert!(counted(&refused) >= 1.0);
    assert!(counted(&odd) >= 1.0, "unknown methods share one label");
    assert!(!after.contains("BREW"));
    assert!(after.contains("# TYPE provisioning_scim_request_duration_seconds histogram"));
}

backend_tests!(
    metrics_endpoint_counts_calls_failures_queries_and_watch_events,
    scim_requests_are_counted_by_route_method_and_status,
);
