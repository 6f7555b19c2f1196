//! Bulk seeding of users, for benchmarks and large test fixtures.
//!
//! Creating a million users through the API takes far too long, so this
//! path writes them straight into the database — but with the server's own
//! code for everything that makes a user row what it is: ids from
//! [`Uuid::now_v7`], case-folded lookup keys from [`crate::keys::fold`], values
//! checked by the same [`validate`] rules, the account's default role, and
//! dense per-account sequence numbers taken from `accounts.user_count`
//! (which is moved on once per batch, in the batch's transaction).
//!
//! It is a benchmark/bulk path: seeded users get **no audit events**, and
//! the uniqueness of user names is left to the database's unique index (a
//! clash fails the whole batch). Each batch is one write transaction
//! ([`Db::begin_write`]), sized within the database's bind-parameter limit.
use provisioning_proto::pb;
use sea_orm::{
    ColumnTrait as _, ConnectionTrait as _, DbBackend, EntityTrait as _, IntoActiveModel as _,
    Iterable as _, QueryFilter as _,
    sea_query::{Expr, ExprTrait as _, Query},
};
use uuid::Uuid;

use crate::{
    clock::{Clock as _, SystemClock},
    db::{
        Db,
        entities::{account, user},
    },
    error::{Error, Result},
    service::users::new_user_row,
};

/// Bind parameters one statement may carry: SQLite's default
/// `SQLITE_MAX_VARIABLE_NUMBER` (since 3.32).
pub const SQLITE_MAX_PARAMS: usize = 32_766;
/// PostgreSQL's wire protocol counts parameters in 16 bits.
pub const POSTGRES_MAX_PARAMS: usize = 65_535;

/// Columns of the `users` table: each is one bind parameter per row.
pub fn user_columns() -> usize {
    user::Column::iter().count()
}

/// The profile of one seeded user; empty optional texts are stored as NULL,
/// like the API does.
#[derive(Debug, Clone, Default)]
pub struct SeedUser {
    pub user_name: String,
    pub external_id: String,
    pub given_name: String,
    pub family_name: String,
    pub email: String,
    /// Empty means the account's default role.
    pub role: String,
    pub active: bool,
}

/// What [`bulk_users`] did.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The ids of the new users, in sequence order (`ids[i]` has sequence
    /// number `first_seq + i`).
    pub ids: Vec<Uuid>,
    /// The sequence number of the first new user.
    pub first_seq: i64,
    /// Rows per transaction that were used.
    pub batch_rows: usize,
}

/// Rows per batch that keep one multi-row INSERT within the backend's
/// bind-parameter limit.
pub fn batch_rows(backend: DbBackend) -> usize {
    let limit = match backend {
        DbBackend::Postgres => POSTGRES_MAX_PARAMS,
        _ => SQLITE_MAX_PARAMS,
    };
    limit / user_columns().max(1)
}

/// Inserts `count` users into the account `account_slug`, in batches of
/// [`batch_rows`], one write transaction each. `profile(seq)` gives the
/// profile of the user that gets sequence number `seq` (the account's
/// existing users keep theirs; the new ones continue densely from
/// `accounts.user_count`).
///
/// No audit events are written for seeded users: this is a benchmark/bulk
/// path, not an operation of the service.
pub async fn bulk_users<F>(
    db: &Db,
    account_slug: &str,
    count: u64,
    mut profile: F,
) -> Result<Seeded>
where
    F: FnMut(i64) -> SeedUser,
{
    let account = account::Entity::find()
        .filter(account::Column::Slug.eq(account_slug))
        .one(&db.read)
        .await?
        .ok_or(Error::NotFound("account"))?;
    let rows = batch_rows(db.backend());
    let total = usize::try_from(count).map_err(|_| Error::invalid("count", "is too large"))?;
    let mut ids = Vec::with_capacity(total);
    let mut first_seq = None;
    let mut left = total;
    while left > 0 {
        let n = left.min(rows);
        let txn = db.begin_write().await?;
        // Take `n` sequence numbers at once: user_count moves once per batch.
        let step = i64::try_from(n).map_err(|_| Error::invalid("count", "is too large"))?;
        let stmt = Query::update()
            .table(account::Entity)
            .value(
                account::Column::UserCount,
                Expr::col(account::Column::UserCount).add(step),
            )
            .and_where(Expr::col(account::Column::Id).eq(account.id))
            .returning_col(account::Column::UserCount)
            .to_owned();
        let last: i64 = txn
            .query_one(&stmt)
            .await?
            .ok_or(Error::NotFound("account"))?
            .try_get("", "user_count")?;
        let start = last - step + 1;
        first_seq.get_or_insert(start);
        let now = SystemClock.now_micros();
        let mut models = Vec::with_capacity(n);
        for seq in start..=last {
            let model = row(&account, seq, profile(seq), now)?;
            ids.push(model.id);
            models.push(model.into_active_model());
        }
        user::Entity::insert_many(models)
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        left -= n;
    }
    Ok(Seeded {
        ids,
        first_seq: first_seq.unwrap_or(account.user_count + 1),
        batch_rows: rows,
    })
}

/// One user row, built by the code `Core::create_user` uses.
fn row(account: &account::Model, seq: i64, p: SeedUser, now: i64) -> Result<user::Model> {
    let request = pb::CreateUserRequest {
        user_name: p.user_name,
        external_id: p.external_id,
        given_name: p.given_name,
        family_name: p.family_name,
        email: p.email,
        role: p.role,
        active: Some(p.active),
        ..Default::default()
    };
    let mut model = new_user_row(account, &request, now)?;
    model.seq = seq;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_fit_the_parameter_limits() {
        assert_eq!(user_columns(), 20);
        assert!(batch_rows(DbBackend::Sqlite) * user_columns() <= SQLITE_MAX_PARAMS);
        assert!(batch_rows(DbBackend::Postgres) * user_columns() <= POSTGRES_MAX_PARAMS);
        assert!(batch_rows(DbBackend::Sqlite) >= 1000);
    }
}
