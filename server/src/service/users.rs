//! Users: created with their profile, afterwards only userName, email, role
//! and active change. Never deleted.
use provisioning_proto::pb;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _,
    IntoActiveModel as _, PaginatorTrait as _, QueryFilter as _, QueryOrder as _, QuerySelect as _,
    sea_query::{Expr, ExprTrait as _, Query},
};
use uuid::Uuid;

use super::{Audit, Core, Ctx, filter, validate};
use crate::{
    db::entities::{account, user},
    error::{Error, Result},
    keys,
};

/// The most users one ListUsers returns (SCIM `maxResults`).
pub const MAX_RESULTS: i64 = 200;

/// What an update asks for; `None` leaves a field alone.
#[derive(Debug, Default, Clone)]
pub struct UserChanges {
    pub user_name: Option<String>,
    pub email: Option<String>,
    /// Empty resets to the account's default role.
    pub role: Option<String>,
    pub role_type: Option<String>,
    pub active: Option<bool>,
    pub expected_version: Option<i64>,
    pub lenient: bool,
}

pub struct Updated {
    pub user: user::Model,
    pub changed: bool,
    pub ignored: Vec<&'static str>,
}

impl Core {
    /// The user methods take the account the caller is scoped to
    /// ([`Core::scoped_account`], resolved once per request).
    pub async fn create_user(
        &self,
        ctx: &Ctx,
        account: &account::Model,
        req: pb::CreateUserRequest,
    ) -> Result<user::Model> {
        let mut model = new_user_row(account, &req, self.clock.now_micros())?;
        let txn = self.db.begin_write().await?;
        self.ensure_user_name_free(&txn, account.id, &model.user_name_key, None)
            .await?;
        if req.unique_external_id
            && let Some(external_id) = &model.external_id
        {
            let taken = user::Entity::find()
                .filter(user::Column::AccountId.eq(account.id))
                .filter(user::Column::ExternalId.eq(external_id.as_str()))
                .one(&txn)
                .await?
                .is_some();
            if taken {
                return Err(Error::AlreadyExists("a user with this externalId"));
            }
        }
        model.seq = next_seq(&txn, account.id).await?;
        user::Entity::insert(model.clone().into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(user_name_taken)?;
        let mut changed = vec!["userName", "active", "role"];
        for (field, set) in [
            ("externalId", model.external_id.is_some()),
            ("givenName", model.given_name.is_some()),
            ("familyName", model.family_name.is_some()),
            ("email", model.email.is_some()),
            ("phoneNumber", model.phone_number.is_some()),
            ("timezone", model.timezone.is_some()),
            ("roleType", model.role_type.is_some()),
        ] {
            if set {
                changed.push(field);
            }
        }
        self.record(
            &txn,
            ctx,
            Audit {
                account_id: Some(account.id),
                action: "user.created",
                target_type: "user",
                target_id: model.id.to_string(),
                changed,
                ignored: vec![],
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(model)
    }

    async fn ensure_user_name_free(
        &self,
        conn: &impl ConnectionTrait,
        account_id: Uuid,
        key: &str,
        except: Option<Uuid>,
    ) -> Result<()> {
        let mut query = user::Entity::find()
            .filter(user::Column::AccountId.eq(account_id))
            .filter(user::Column::UserNameKey.eq(key));
        if let Some(id) = except {
            query = query.filter(user::Column::Id.ne(id));
        }
        if query.one(conn).await?.is_some() {
            return Err(Error::AlreadyExists("a user with this userName"));
        }
        Ok(())
    }

    pub async fn get_user(&self, account: &account::Model, id: &str) -> Result<user::Model> {
        find_user(&self.db.read, account, id).await
    }

    /// One page of users in a stable order (creation order), with the total.
    pub async fn list_users(
        &self,
        account: &account::Model,
        req: &pb::ListUsersRequest,
    ) -> Result<(Vec<user::Model>, i64, i64)> {
        let start = std::cmp::max(req.start_index, 1);
        let count = req.count.clamp(0, MAX_RESULTS);
        let conn = &self.db.read;
        match &req.filter {
            None => {
                // Users are never deleted, so `seq` is dense: page K starts at
                // seq K and the stored count is the total. No OFFSET, no COUNT.
                let total = account::Entity::find_by_id(account.id)
                    .one(conn)
                    .await?
                    .map_or(0, |a| a.user_count);
                let users = if count == 0 {
                    Vec::new()
                } else {
                    user::Entity::find()
                        .filter(user::Column::AccountId.eq(account.id))
                        .filter(user::Column::Seq.gte(start))
                        .order_by_asc(user::Column::Seq)
                        .limit(count as u64)
                        .all(conn)
                        .await?
                };
                Ok((users, total, start))
            }
            Some(f) => {
                let condition = filter::compile(f, self.db.backend())?;
                let base = user::Entity::find()
                    .filter(user::Column::AccountId.eq(account.id))
                    .filter(condition);
                let users = if count == 0 {
                    Vec::new()
                } else {
                    base.clone()
                        .order_by_asc(user::Column::Seq)
                        .offset((start - 1) as u64)
                        .limit(count as u64)
                        .all(conn)
                        .await?
                };
                // A short page that is not past the end is the last page: the
                // total follows without a COUNT (Okta's lookups are one query).
                let fetched = users.len() as i64;
                let total = if count > 0 && fetched < count && (fetched > 0 || start == 1) {
                    start - 1 + fetched
                } else {
                    base.count(conn).await? as i64
                };
                Ok((users, total, start))
            }
        }
    }

    pub async fn update_user(
        &self,
        ctx: &Ctx,
        account: &account::Model,
        id: &str,
        req: UserChanges,
    ) -> Result<Updated> {
        let txn = self.db.begin_write().await?;
        let current = find_user(&txn, account, id).await?;
        if req.expected_version.is_some_and(|v| v != current.version) {
            return Err(Error::VersionConflict);
        }
        let lenient = req.lenient && req.active.is_some_and(|a| a != current.active);
        let mut next = current.clone();
        let mut changed: Vec<&'static str> = Vec::new();
        let mut ignored: Vec<&'static str> = Vec::new();
        // An invalid value fails the request, unless the request changes
        // `active` leniently: then it is ignored and named in the audit event.
        let mut check = |field: &'static str, result: Result<bool>| -> Result<()> {
            match result {
                Ok(true) => {
                    changed.push(field);
                    Ok(())
                }
                Ok(false) => Ok(()),
                Err(_) if lenient => {
                    ignored.push(field);
                    Ok(())
                }
                Err(err) => Err(err),
            }
        };
        if let Some(value) = &req.user_name {
            let result = match validate::user_name(value) {
                Ok(name) if name != next.user_name => {
                    let key = keys::fold(&name);
                    match self
                        .ensure_user_name_free(&txn, account.id, &key, Some(current.id))
                        .await
                    {
                        Ok(()) => {
                            next.user_name = name;
                            next.user_name_key = key;
                            Ok(true)
                        }
                        Err(e) => Err(e),
                    }
                }
                Ok(_) => Ok(false),
                Err(e) => Err(e),
            };
            check("userName", result)?;
        }
        if let Some(value) = &req.email {
            let result = validate::email(value).map(|email| {
                let differs = email != next.email;
                if differs {
                    next.email_key = email.as_deref().map(keys::fold);
                    next.email = email;
                }
                differs
            });
            check("email", result)?;
        }
        if let Some(value) = &req.role {
            let result = validate::role(account, value).map(|role| {
                let differs = role != next.role;
                next.role = role;
                differs
            });
            check("role", result)?;
        }
        if let Some(value) = &req.role_type {
            let result = validate::text("roleType", value, 64).map(|role_type| {
                let differs = role_type != next.role_type;
                next.role_type = role_type;
                differs
            });
            check("roleType", result)?;
        }
        if let Some(active) = req.active {
            check("active", Ok(active != next.active))?;
            next.active = active;
        }
        if changed.is_empty() {
            if !ignored.is_empty() {
                tracing::debug!(user_id = %current.id, ?ignored, "ignored invalid values");
            }
            return Ok(Updated {
                user: current,
                changed: false,
                ignored,
            });
        }
        next.version = current.version + 1;
        next.updated_at = std::cmp::max(self.clock.now_micros(), current.updated_at);
        let action = match req.active {
            Some(false) if current.active => "user.deactivated",
            Some(true) if !current.active => "user.reactivated",
            _ => "user.updated",
        };
        // Guard on the version read above: a concurrent writer on another
        // replica makes this update match nothing (a version conflict).
        let result = user::Entity::update_many()
            .set(next.clone().into_active_model().reset_all())
            .filter(user::Column::Id.eq(current.id))
            .filter(user::Column::Version.eq(current.version))
            .exec(&txn)
            .await
            .map_err(user_name_taken)?;
        if result.rows_affected != 1 {
            return Err(Error::VersionConflict);
        }
        self.record(
            &txn,
            ctx,
            Audit {
                account_id: Some(account.id),
                action,
                target_type: "user",
                target_id: current.id.to_string(),
                changed,
                ignored: ignored.clone(),
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(Updated {
            user: next,
            changed: true,
            ignored,
        })
    }

    /// May this user log in? `(allowed, reason, user id)`.
    pub async fn check_login(
        &self,
        account: &account::Model,
        req: &pb::CheckLoginRequest,
    ) -> Result<(bool, &'static str, String)> {
        let conn = &self.db.read;
        let found = match &req.user {
            Some(pb::check_login_request::User::Id(id)) => {
                match find_user(conn, account, id).await {
                    Ok(user) => Some(user),
                    Err(Error::NotFound(_)) => None,
                    Err(e) => return Err(e),
                }
            }
            Some(pb::check_login_request::User::UserName(name)) => {
                user::Entity::find()
                    .filter(user::Column::AccountId.eq(account.id))
                    .filter(user::Column::UserNameKey.eq(keys::fold(name.trim())))
                    .one(conn)
                    .await?
            }
            None => return Err(Error::invalid("user", "give an id or a user_name")),
        };
        Ok(match found {
            None => (false, "unknown_user", String::new()),
            Some(user) if !user.active => (false, "inactive", user.id.to_string()),
            Some(user) => (true, "ok", user.id.to_string()),
        })
    }
}

/// A new user row from a create request: validated, keys folded, version 1,
/// not yet numbered (`seq` 0). Shared with the bulk seeding path.
pub(crate) fn new_user_row(
    account: &account::Model,
    req: &pb::CreateUserRequest,
    now: i64,
) -> Result<user::Model> {
    let user_name = validate::user_name(&req.user_name)?;
    let external_id = validate::text("externalId", &req.external_id, validate::MAX_EXTERNAL_ID)?;
    let given_name = validate::text("givenName", &req.given_name, validate::MAX_NAME)?;
    let family_name = validate::text("familyName", &req.family_name, validate::MAX_NAME)?;
    let email = validate::email(&req.email)?;
    let phone_number = validate::text("phoneNumber", &req.phone_number, validate::MAX_PHONE)?;
    let timezone = validate::timezone(&req.timezone)?;
    let role = validate::role(account, &req.role)?;
    let role_type = validate::text("roleType", &req.role_type, 64)?;
    Ok(user::Model {
        id: Uuid::now_v7(),
        account_id: account.id,
        seq: 0,
        user_name_key: keys::fold(&user_name),
        user_name,
        external_id,
        given_name_key: given_name.as_deref().map(keys::fold),
        given_name,
        family_name_key: family_name.as_deref().map(keys::fold),
        family_name,
        email_key: email.as_deref().map(keys::fold),
        email,
        phone_number,
        timezone,
        role,
        role_type,
        active: req.active.unwrap_or(true),
        created_at: now,
        updated_at: now,
        version: 1,
    })
}

async fn find_user(
    conn: &impl ConnectionTrait,
    account: &account::Model,
    id: &str,
) -> Result<user::Model> {
    let id = Uuid::parse_str(id.trim()).map_err(|_| Error::NotFound("user"))?;
    user::Entity::find_by_id(id)
        .filter(user::Column::AccountId.eq(account.id))
        .one(conn)
        .await?
        .ok_or(Error::NotFound("user"))
}

/// Takes the account's next dense user sequence number (and so counts the
/// user). The row lock also serialises creates within an account.
async fn next_seq(conn: &impl ConnectionTrait, account_id: Uuid) -> Result<i64> {
    let stmt = Query::update()
        .table(account::Entity)
        .value(
            account::Column::UserCount,
            Expr::col(account::Column::UserCount).add(1),
        )
        .and_where(Expr::col(account::Column::Id).eq(account_id))
        .returning_col(account::Column::UserCount)
        .to_owned();
    let row = conn
        .query_one(&stmt)
        .await?
        .ok_or(Error::NotFound("account"))?;
    Ok(row.try_get::<i64>("", "user_count")?)
}

fn user_name_taken(err: sea_orm::DbErr) -> Error {
    match Error::from(err) {
        Error::AlreadyExists(_) => Error::AlreadyExists("a user with this userName"),
        other => other,
    }
}
