//! Limits, token caching across replicas, and database outages.
mod common;

use std::time::Duration;

use common::{Backend, Settings, TestEnv, with_token};
use provisioning_proto::pb;
use provisioning_server::service::Limits;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_types::StatusExt as _;

fn list() -> pb::ListUsersRequest {
    pb::ListUsersRequest {
        count: 1,
        ..Default::default()
    }
}

fn with_ip<T>(mut request: tonic::Request<T>, ip: &str) -> tonic::Request<T> {
    request
        .metadata_mut()
        .insert("x-client-ip", ip.parse().unwrap());
    request
}

async fn per_token_rate_limit(b: Backend) {
    let limits = Limits {
        per_token_per_second: 1.0,
        per_token_burst: 3.0,
        ..Limits::default()
    };
    let env = TestEnv::start_with(
        b,
        Settings {
            limits,
            ..Settings::default()
        },
    )
    .await;
    let acme = env.account_with_token("acme").await;
    let other = env.account_with_token("other").await;
    let mut users = env.users().await;
    for _ in 0..3 {
        users.list_users(with_token(list(), &acme)).await.unwrap();
    }
    let err = users
        .list_users(with_token(list(), &acme))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(err.get_details_error_info().unwrap().reason, "RATE_LIMITED");
    let retry = err
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .unwrap();
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_secs(1),
        "{retry:?}"
    );
    // Other accounts are unaffected.
    users.list_users(with_token(list(), &other)).await.unwrap();
    // The bucket refills with time.
    env.clock.advance(chrono::Duration::seconds(1));
    users.list_users(with_token(list(), &acme)).await.unwrap();
}

async fn failed_authentication_is_limited_per_client(b: Backend) {
    let limits = Limits {
        auth_failures_per_minute: 5.0,
        ..Limits::default()
    };
    let env = TestEnv::start_with(
        b,
        Settings {
            limits,
            ..Settings::default()
        },
    )
    .await;
    let token = env.account_with_token("acme").await;
    let mut users = env.users().await;
    for i in 0..5 {
        let bad = format!("scim_random-guess-{i}");
        let err = users
            .list_users(with_ip(with_token(list(), &bad), "203.0.113.7"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    // Past the limit the address is refused before any token lookup, even
    // with a valid token; other addresses are unaffected.
    let err = users
        .list_users(with_ip(with_token(list(), "scim_another"), "203.0.113.7"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let err = users
        .list_users(with_ip(with_token(list(), &token), "203.0.113.7"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    users
        .list_users(with_ip(with_token(list(), &token), "198.51.100.1"))
        .await
        .unwrap();
    // A minute later the address may try again.
    env.clock.advance(chrono::Duration::seconds(60));
    users
        .list_users(with_ip(with_token(list(), &token), "203.0.113.7"))
        .await
        .unwrap();
}

async fn token_changes_reach_other_replicas_within_the_cache_ttl(b: Backend) {
    let env = TestEnv::start(b).await;
    let token = env.account_with_token("acme").await;
    let replica = env.replica().await;
    let replica_channel =
        tonic::transport::Channel::from_shared(format!("http://{}", replica.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut on_replica = pb::user_service_client::UserServiceClient::new(replica_channel);
    let mut on_primary = env.users().await;
    on_replica
        .list_users(with_token(list(), &token))
        .await
        .unwrap();
    on_primary
        .list_users(with_token(list(), &token))
        .await
        .unwrap();

    // Revoked on the primary: refused there at once.
    let id = env
        .tokens()
        .await
        .list_tokens(env.admin(pb::ListTokensRequest {
            account: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .tokens[0]
        .id
        .clone();
    env.tokens()
        .await
        .revoke_token(env.admin(pb::RevokeTokenRequest { token_id: id }))
        .await
        .unwrap();
    assert_eq!(
        on_primary
            .list_users(with_token(list(), &token))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    // The replica's cache may serve it until the TTL (5 s) ends, no longer.
    on_replica
        .list_users(with_token(list(), &token))
        .await
        .expect("cached within the stated bound");
    env.clock.advance(chrono::Duration::seconds(5));
    assert_eq!(
        on_replica
            .list_users(with_token(list(), &token))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    replica.shutdown().await;
}

/// Follows grpc.health.v1 Watch until the status is `want`.
async fn wait_for_health(channel: tonic::transport::Channel, want: ServingStatus) {
    let mut health = HealthClient::new(channel);
    let mut updates = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(update) = updates.message().await.unwrap() {
            if update.status == want as i32 {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "health never became {want:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_unavailable_then_recovers_without_restart() {
    let env = TestEnv::start_with(
        Backend::Postgres,
        Settings {
            through_proxy: true,
            ..Settings::default()
        },
    )
    .await;
    let token = env.account_with_token("acme").await;
    let mut users = env.users().await;
    users
        .create_user(with_token(
            pb::CreateUserRequest {
                user_name: "a@example.com".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap();
    let proxy = env.proxy.as_ref().unwrap();
    proxy.cut();
    let err = users
        .create_user(with_token(
            pb::CreateUserRequest {
                user_name: "b@example.com".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(err.get_details_error_info().unwrap().reason, "UNAVAILABLE");
    assert!(
        err.get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .is_some()
    );
    wait_for_health(env.channel().await, ServingStatus::NotServing).await;

    proxy.restore();
    wait_for_health(env.channel().await, ServingStatus::Serving).await;
    users
        .create_user(with_token(
            pb::CreateUserRequest {
                user_name: "b@example.com".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("recovered without a restart");
    let listed = users
        .list_users(with_token(
            pb::ListUsersRequest {
                count: 10,
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap();
    assert_eq!(listed.into_inner().total_results, 2);
}

/// Past the failed-authentication limit an address is refused before any
/// database read: with the database cut off, its attempts still get
/// RESOURCE_EXHAUSTED, while another address's attempt needs the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_addresses_never_reach_the_database() {
    let limits = Limits {
        auth_failures_per_minute: 3.0,
        ..Limits::default()
    };
    let env = TestEnv::start_with(
        Backend::Postgres,
        Settings {
            limits,
            through_proxy: true,
            ..Settings::default()
        },
    )
    .await;
    let mut users = env.users().await;
    for i in 0..3 {
        let bad = format!("scim_flood-{i}");
        let err = users
            .list_users(with_ip(with_token(list(), &bad), "203.0.113.9"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    env.proxy.as_ref().unwrap().cut();
    for i in 0..20 {
        let bad = format!("scim_flood-more-{i}");
        let err = users
            .list_users(with_ip(with_token(list(), &bad), "203.0.113.9"))
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Code::ResourceExhausted,
            "attempt {i} reached the database"
        );
    }
    let err = users
        .list_users(with_ip(
            with_token(list(), "scim_someone-else"),
            "198.51.100.7",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::Unavailable,
        "an address under the limit does read the database"
    );
    env.proxy.as_ref().unwrap().restore();
}

backend_tests!(
    per_token_rate_limit,
    failed_authentication_is_limited_per_client,
    token_changes_reach_other_replicas_within_the_cache_ttl,
);
