//! `AuditService.WatchEvents` over real gRPC, on SQLite and PostgreSQL:
//! resume from a cursor across a restart, live delivery, delivery across
//! replicas, a watcher that stops reading, and commit order on PostgreSQL.
mod common;

use std::time::{Duration, Instant};

use common::{Backend, Settings, TestEnv, with_token};
use provisioning_proto::pb::{self, audit_service_client::AuditServiceClient};
use provisioning_server::{db::entities::audit_event, service::AUDIT_ORDER_LOCK, service::Limits};
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait as _, ConnectionTrait as _,
    EntityTrait as _, QueryFilter as _, QueryOrder as _, TransactionTrait as _,
};
use tonic::{Code, Streaming, transport::Channel};
use tonic_types::StatusExt as _;

async fn audit_at(url: &str) -> AuditServiceClient<Channel> {
    AuditServiceClient::new(
        Channel::from_shared(url.to_owned())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
}

async fn watch(
    client: &mut AuditServiceClient<Channel>,
    env: &TestEnv,
    account: &str,
    cursor: i64,
    from_now: bool,
) -> Streaming<pb::AuditEvent> {
    client
        .watch_events(env.admin(pb::WatchEventsRequest {
            account: account.to_owned(),
            cursor,
            from_now,
        }))
        .await
        .expect("watch starts")
        .into_inner()
}

/// The next event, which must come within `within`.
async fn next(stream: &mut Streaming<pb::AuditEvent>, within: Duration) -> pb::AuditEvent {
    tokio::time::timeout(within, stream.message())
        .await
        .expect("an event in time")
        .expect("the stream stays open")
        .expect("the stream does not end")
}

/// Asserts that nothing arrives for a while (no duplicate, no stray event).
async fn quiet(stream: &mut Streaming<pb::AuditEvent>) {
    if let Ok(got) = tokio::time::timeout(Duration::from_millis(600), stream.message()).await {
        panic!("expected nothing more, got {got:?}");
    }
}

async fn create_users(env: &TestEnv, account: &str, names: impl IntoIterator<Item = String>) {
    let mut users = env.users().await;
    for name in names {
        users
            .create_user(env.admin(pb::CreateUserRequest {
                account: account.to_owned(),
                user_name: name,
                ..Default::default()
            }))
            .await
            .unwrap();
    }
}

/// Every stored event id after `after`, oldest first.
async fn stored_ids(env: &TestEnv, after: i64) -> Vec<i64> {
    audit_event::Entity::find()
        .filter(audit_event::Column::Id.gt(after))
        .order_by_asc(audit_event::Column::Id)
        .all(&env.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

async fn newest_id(env: &TestEnv) -> i64 {
    stored_ids(env, 0).await.last().copied().unwrap_or(0)
}

async fn watch_resumes_from_its_cursor_across_a_restart(b: Backend) {
    let mut env = TestEnv::start(b).await;
    env.account_with_token("acme").await;
    create_users(&env, "acme", (0..3).map(|i| format!("u{i}@acme.test"))).await;
    let before_restart = stored_ids(&env, 0).await;
    assert_eq!(
        before_restart.len(),
        6,
        "account, SCIM switch, token, 3 users"
    );

    let mut client = env.audit().await;
    let mut first = watch(&mut client, &env, "acme", 0, false).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next(&mut first, Duration::from_secs(5)).await);
    }
    assert_eq!(seen[0].action, "account.created");
    assert_eq!(seen[0].account, "acme");
    let cursor = seen[3].id;
    drop(first);
    // A watcher still connected when the server stops is told to resume.
    let mut open = watch(&mut client, &env, "", cursor, false).await;
    next(&mut open, Duration::from_secs(5)).await;

    env.restart().await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match open.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    })
    .await
    .expect("the open stream ends at shutdown");
    let status = ended.expect("the stream ends with a status, not silently");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("cursor"));

    create_users(&env, "acme", (3..5).map(|i| format!("u{i}@acme.test"))).await;
    let mut client = env.audit().await;
    let mut resumed = watch(&mut client, &env, "acme", cursor, false).await;
    for _ in 0..4 {
        seen.push(next(&mut resumed, Duration::from_secs(5)).await);
    }
    quiet(&mut resumed).await;
    let ids: Vec<i64> = seen.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        stored_ids(&env, 0).await,
        "no gap, no duplicate, in order"
    );
    let actions: Vec<&str> = seen.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "account.created",
            "account.scim_enabled",
            "token.issued",
            "user.created",
            "user.created",
            "user.created",
            "user.created",
            "user.created",
        ]
    );
}

async fn watch_delivers_events_as_they_are_committed(b: Backend) {
    let env = TestEnv::start(b).await;
    let token = env.account_with_token("acme").await;
    let mut client = env.audit().await;

    // Only admins watch; the account must exist; cursors are not negative.
    let err = client
        .watch_events(with_token(pb::WatchEventsRequest::default(), &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client
        .watch_events(env.admin(pb::WatchEventsRequest {
            account: "nope".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client
        .watch_events(env.admin(pb::WatchEventsRequest {
            cursor: -1,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let mut everything = watch(&mut client, &env, "", 0, true).await;
    let mut acme_only = watch(&mut client, &env, "acme", 0, true).await;
    let mut accounts = env.accounts().await;
    let started = Instant::now();
    accounts
        .create_account(env.admin(pb::CreateAccountRequest {
            slug: "beta".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let event = next(&mut everything, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a local commit reaches watchers at once"
    );
    assert_eq!(
        (event.account.as_str(), event.action.as_str()),
        ("beta", "account.created")
    );
    assert_eq!(event.actor, "admin");

    let mut users = env.users().await;
    let mut request = with_token(
        pb::CreateUserRequest {
            user_name: "ann@acme.test".into(),
            ..Default::default()
        },
        &token,
    );
    request
        .metadata_mut()
        .insert("x-request-id", "req-watch-1".parse().unwrap());
    let ann = users.create_user(request).await.unwrap().into_inner();
    let event = next(&mut acme_only, Duration::from_secs(5)).await;
    assert_eq!(event.action, "user.created");
    assert_eq!(event.target_id, ann.id);
    assert_eq!(event.request_id, "req-watch-1");
    assert!(event.actor.starts_with("token:"));
    let same = next(&mut everything, Duration::from_secs(5)).await;
    assert_eq!(same, event);
    quiet(&mut acme_only).await;
}

async fn watch_on_one_replica_sees_events_committed_through_another(b: Backend) {
    let env = TestEnv::start(b).await;
    env.account_with_token("acme").await;
    let replica = env.replica().await;
    let mut on_replica = audit_at(&format!("http://{}", replica.grpc_addr)).await;
    let mut stream = watch(&mut on_replica, &env, "acme", 0, true).await;
    for i in 0..3 {
        create_users(&env, "acme", [format!("r{i}@acme.test")]).await;
        let committed = Instant::now();
        let event = next(&mut stream, Duration::from_secs(5)).await;
        let waited = committed.elapsed();
        assert!(
            waited < Duration::from_secs(1),
            "another replica's event took {waited:?}"
        );
        assert_eq!(event.action, "user.created");
    }
    quiet(&mut stream).await;
    replica.shutdown().await;
}

async fn a_watcher_that_stops_reading_is_bounded_and_resumes(b: Backend) {
    let limits = Limits {
        watch_buffer: 8,
        watch_stall: Duration::from_secs(1),
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
    env.account_with_token("acme").await;
    let start = newest_id(&env).await;
    // A small HTTP/2 window, so that the client's own buffers hold little.
    let channel = tonic::transport::Endpoint::from_shared(env.grpc_url.clone())
        .unwrap()
        .initial_stream_window_size(Some(1024))
        .connect()
        .await
        .unwrap();
    let mut client = AuditServiceClient::new(channel);
    let mut stalled = watch(&mut client, &env, "acme", start, false).await;
    let core = env.running().core.clone();
    assert_eq!(core.watcher_count(), 1);

    const WRITTEN: usize = 300;
    create_users(
        &env,
        "acme",
        (0..WRITTEN).map(|i| format!("s{i}@acme.test")),
    )
    .await;
    // The server gives the watcher up instead of buffering for it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while core.watcher_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled watcher is never released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut received = Vec::new();
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(5), stalled.message())
            .await
            .expect("the stream ends")
        {
            Ok(Some(event)) => received.push(event.id),
            Ok(None) => panic!("the stream must end with an error"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "WATCH_LAGGING"
    );
    assert!(status.message().contains("cursor"));
    assert!(
        received.len() < 100,
        "only a bounded number of events was in flight: {}",
        received.len()
    );

    let cursor = received.last().copied().unwrap_or(start);
    let mut resumed = watch(&mut env.audit().await, &env, "acme", cursor, false).await;
    while received.len() < WRITTEN {
        received.push(next(&mut resumed, Duration::from_secs(5)).await.id);
    }
    quiet(&mut resumed).await;
    assert_eq!(
        received,
        stored_ids(&env, start).await,
        "no gap, no duplicate"
    );
}

/// Inserts an audit event the way `Core::record` does on PostgreSQL: the
/// advisory lock first, then the row; returns its id.
async fn insert_event(conn: &impl sea_orm::ConnectionTrait, action: &str) -> i64 {
    conn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({AUDIT_ORDER_LOCK})"))
        .await
        .unwrap();
    let event = audit_event::ActiveModel {
        account_id: Set(None),
        actor: Set("test".into()),
        action: Set(action.into()),
        target_type: Set("test".into()),
        target_id: Set(String::new()),
        changed_fields: Set(String::new()),
        ignored_fields: Set(String::new()),
        request_id: Set(None),
        at: Set(0),
        ..Default::default()
    }
    .insert(conn)
    .await
    .unwrap();
    event.id
}

async fn advisory_lock_waiters(env: &TestEnv) -> i64 {
    let row = env
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            env.db.get_database_backend(),
            "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

async fn wait_for_lock_waiters(env: &TestEnv, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while advisory_lock_waiters(env).await != want {
        assert!(
            Instant::now() < deadline,
            "no transaction waits for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// On PostgreSQL ids come from a sequence and could commit out of order; the
/// advisory lock in `Core::record` makes a later transaction wait, so a
/// watcher never moves its cursor past an event that commits late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_events_are_delivered_in_commit_order() {
    let env = TestEnv::start(Backend::Postgres).await;
    env.account_with_token("acme").await;
    let mut client = env.audit().await;
    let mut stream = watch(&mut client, &env, "", 0, true).await;

    // A transaction takes an id and stays open; a server write starts after.
    let early = env.db.begin().await.unwrap();
    let early_id = insert_event(&early, "test.early").await;
    let mut accounts = env.accounts().await;
    let request = env.admin(pb::CreateAccountRequest {
        slug: "late".into(),
        ..Default::default()
    });
    let late = tokio::spawn(async move { accounts.create_account(request).await });
    wait_for_lock_waiters(&env, 1).await;
    assert!(
        !late.is_finished(),
        "the server write waits for the open one"
    );
    quiet(&mut stream).await;
    early.commit().await.unwrap();
    late.await.unwrap().unwrap();

    let first = next(&mut stream, Duration::from_secs(5)).await;
    let second = next(&mut stream, Duration::from_secs(5)).await;
    assert_eq!((first.id, first.action.as_str()), (early_id, "test.early"));
    assert_eq!(
        (second.account.as_str(), second.action.as_str()),
        ("late", "account.created")
    );
    assert!(second.id > first.id);
    quiet(&mut stream).await;

    // Two raw transactions the same way: the second waits, then commits last.
    let one = env.db.begin().await.unwrap();
    let one_id = insert_event(&one, "test.one").await;
    let db = env.db.clone();
    let two = tokio::spawn(async move {
        let two = db.begin().await.unwrap();
        let id = insert_event(&two, "test.two").await;
        two.commit().await.unwrap();
        id
    });
    wait_for_lock_waiters(&env, 1).await;
    quiet(&mut stream).await;
    one.commit().await.unwrap();
    let two_id = two.await.unwrap();
    assert!(two_id > one_id);
    assert_eq!(next(&mut stream, Duration::from_secs(5)).await.id, one_id);
    assert_eq!(next(&mut stream, Duration::from_secs(5)).await.id, two_id);
    quiet(&mut stream).await;
}

backend_tests!(
    watch_resumes_from_its_cursor_across_a_restart,
    watch_delivers_events_as_they_are_committed,
    watch_on_one_replica_sees_events_committed_through_another,
    a_watcher_that_stops_reading_is_bounded_and_resumes,
);
