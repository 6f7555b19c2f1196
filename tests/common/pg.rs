//! Fresh PostgreSQL databases for tests, shared by `tests/` and
//! `server/tests/`. Each test gets a database of its own (from template0,
//! UTF-8), so tests run in parallel and leave nothing behind.
use sea_orm::{ConnectionTrait as _, Database};

/// Where PostgreSQL tests create their databases. CI runs them; they fail
/// (never skip) when the server cannot be reached.
pub fn postgres_admin_url() -> String {
    std::env::var("PROVISIONING_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Creates a database; returns its URL and name.
pub async fn create_database() -> (String, String) {
    let admin_url = postgres_admin_url();
    let admin = Database::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL tests need a server at {admin_url} (set PROVISIONING_TEST_POSTGRES_URL): {e}")
    });
    let name = format!("prov_test_{}", uuid::Uuid::now_v7().simple());
    admin
        .execute_unprepared(&format!(
            "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"
        ))
        .await
        .expect("create test database");
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(base, _)| base);
    (format!("{base}/{name}"), name)
}

/// Drops a database, from a thread of its own (callable from `Drop`).
pub fn drop_database(name: String) {
    let admin_url = postgres_admin_url();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            if let Ok(db) = Database::connect(&admin_url).await {
                let _ = db
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            }
        });
    })
    .join();
}
