#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Migrations are forward-only and carry data from every earlier schema
//! version to the newest, on SQLite and PostgreSQL: for each version, apply
//! the migrations up to it, store data the way that schema holds it, migrate
//! to the newest, and read the data back through today's entities.
//!
//! A new migration needs a `seed` arm for the schema it starts from.
use provisioning_server::db::{
    entities::{account, audit_event, scim_token, user},
    migration::Migrator,
};
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ConnectionTrait as _, Database, DatabaseConnection,
    EntityTrait as _, QueryOrder as _, sea_query::Query,
};
use sea_orm_migration::MigratorTrait as _;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

fn postgres_admin_url() -> String {
    std::env::var("PROVISIONING_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// An empty database, and how to drop it.
struct Empty {
    db: DatabaseConnection,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl Empty {
    async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
                Self {
                    db: Database::connect(url).await.unwrap(),
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let admin = Database::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL tests need {admin_url}: {e}"));
                let name = format!("prov_migr_{}", Uuid::now_v7().simple());
                admin
                    .execute_unprepared(&format!(
                        "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"
                    ))
                    .await
                    .unwrap();
                let base = admin_url.rsplit_once('/').unwrap().0;
                Self {
                    db: Database::connect(format!("{base}/{name}")).await.unwrap(),
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    async fn drop(self) {
        self.db.close().await.unwrap();
        if let Some(name) = self.pg_name {
            let admin = Database::connect(postgres_admin_url()).await.unwrap();
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await
                .unwrap();
        }
    }
}

const ACCOUNT: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
const TOKEN: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);
const USER: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0003);

async fn insert(
    db: &DatabaseConnection,
    table: &'static str,
    columns: &[&'static str],
    values: Vec<sea_orm::Value>,
) {
    let statement = Query::insert()
        .into_table(table)
        .columns(columns.iter().copied())
        .values_panic(values.into_iter().map(Into::into))
        .to_owned();
    db.execute_raw(db.get_database_backend().build(&statement))
        .await
        .unwrap();
}

/// Stores data the way schema `version` (after `version` migrations) holds it.
async fn seed(db: &DatabaseConnection, version: usize) {
    match version {
        1 => {
            insert(
                db,
                "accounts",
                &[
                    "id",
                    "slug",
                    "display_name",
                    "scim_enabled",
                    "roles",
                    "default_role",
                    "user_count",
                    "created_at",
                ],
                vec![
                    ACCOUNT.into(),
                    "acme".into(),
                    "Acme Inc".into(),
                    true.into(),
                    "admin,rep".into(),
                    "rep".into(),
                    1i64.into(),
                    1_700_000_000_000_000i64.into(),
                ],
            )
            .await;
            insert(
                db,
                "scim_tokens",
                &[
                    "id",
                    "account_id",
                    "token_hash",
                    "prefix",
                    "description",
                    "created_at",
                    "expires_at",
                    "revoked_at",
                    "last_used_at",
                ],
                vec![
                    TOKEN.into(),
                    ACCOUNT.into(),
                    "ab".repeat(32).into(),
                    "scim_abcd".into(),
                    "seeded".into(),
                    1_700_000_000_000_000i64.into(),
                    None::<i64>.into(),
                    None::<i64>.into(),
                    Some(1_700_000_000_500_000i64).into(),
                ],
            )
            .await;
            insert(
                db,
                "users",
                &[
                    "id",
                    "account_id",
                    "seq",
                    "user_name",
                    "user_name_key",
                    "external_id",
                    "given_name",
                    "given_name_key",
                    "family_name",
                    "family_name_key",
                    "email",
                    "email_key",
                    "phone_number",
                    "timezone",
                    "role",
                    "role_type",
                    "active",
                    "created_at",
                    "updated_at",
                    "version",
                ],
                vec![
                    USER.into(),
                    ACCOUNT.into(),
                    1i64.into(),
                    "Ann@Acme.test".into(),
                    "ann@acme.test".into(),
                    Some("okta-1").into(),
                    Some("Ann").into(),
                    Some("ann").into(),
                    None::<String>.into(),
                    None::<String>.into(),
                    Some("Ann@Acme.test").into(),
                    Some("ann@acme.test").into(),
                    None::<String>.into(),
                    Some("Europe/Paris").into(),
                    "rep".into(),
                    None::<String>.into(),
                    false.into(),
                    1_700_000_000_000_000i64.into(),
                    1_700_000_000_900_000i64.into(),
                    3i64.into(),
                ],
            )
            .await;
            for action in ["user.created", "user.deactivated"] {
                insert(
                    db,
                    "audit_events",
                    &[
                        "account_id",
                        "actor",
                        "action",
                        "target_type",
                        "target_id",
                        "changed_fields",
                        "ignored_fields",
                        "request_id",
                        "at",
                    ],
                    vec![
                        Some(ACCOUNT).into(),
                        format!("token:{TOKEN}").into(),
                        action.into(),
                        "user".into(),
                        USER.to_string().into(),
                        "active".into(),
                        "".into(),
                        Some("req-1").into(),
                        1_700_000_000_900_000i64.into(),
                    ],
                )
                .await;
            }
        }
        _ => panic!(
            "migration {version} has no seed data: add a `seed` arm for the schema it leaves"
        ),
    }
}

/// Reads the seeded data through the newest entities.
async fn check(db: &DatabaseConnection) {
    let acme = account::Entity::find_by_id(ACCOUNT)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((acme.slug.as_str(), acme.scim_enabled), ("acme", true));
    assert_eq!(acme.role_list(), ["admin", "rep"]);
    let token = scim_token::Entity::find_by_id(TOKEN)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token.account_id, ACCOUNT);
    assert_eq!(token.last_used_at, Some(1_700_000_000_500_000));
    assert!(token.revoked_at.is_none());
    let ann = user::Entity::find_by_id(USER)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ann.user_name, "Ann@Acme.test");
    assert_eq!(ann.external_id.as_deref(), Some("okta-1"));
    assert_eq!(ann.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!((ann.active, ann.version, ann.seq), (false, 3, 1));
    let events = audit_event::Entity::find()
        .order_by_asc(audit_event::Column::Id)
        .all(db)
        .await
        .unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["user.created", "user.deactivated"]);
    assert_eq!(events[1].request_id.as_deref(), Some("req-1"));
    // New events still get larger ids (WatchEvents' cursor).
    let next = audit_event::ActiveModel {
        account_id: Set(Some(ACCOUNT)),
        actor: Set("admin".into()),
        action: Set("user.updated".into()),
        target_type: Set("user".into()),
        target_id: Set(USER.to_string()),
        changed_fields: Set(String::new()),
        ignored_fields: Set(String::new()),
        request_id: Set(None),
        at: Set(1_700_000_001_000_000),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    assert!(next.id > events[1].id);
}

async fn every_schema_version_migrates_to_the_newest_with_its_data(backend: Backend) {
    let versions = Migrator::migrations().len();
    assert!(versions >= 1);
    for version in 1..=versions {
        let empty = Empty::new(backend).await;
        let db = &empty.db;
        Migrator::up(db, Some(version as u32)).await.unwrap();
        assert_eq!(
            Migrator::get_applied_migrations(db).await.unwrap().len(),
            version
        );
        seed(db, version).await;
        Migrator::up(db, None).await.unwrap();
        assert!(
            Migrator::get_pending_migrations(db)
                .await
                .unwrap()
                .is_empty()
        );
        check(db).await;
        // Forward-only: no way back.
        assert!(Migrator::down(db, Some(1)).await.is_err());
        empty.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_schema_version_migrates_to_the_newest_with_its_data() {
    every_schema_version_migrates_to_the_newest_with_its_data(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_schema_version_migrates_to_the_newest_with_its_data() {
    every_schema_version_migrates_to_the_newest_with_its_data(Backend::Postgres).await;
}
