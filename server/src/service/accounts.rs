//! Accounts (tenants) and their SCIM switch.
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait as _, EntityTrait as _,
    IntoActiveModel as _, QueryFilter as _, QueryOrder as _, QuerySelect as _,
};
use uuid::Uuid;

use super::{
    Audit, Core, Ctx,
    tokens::{NewToken, issued_audit},
    validate,
};
use crate::{
    db::entities::{account, scim_token},
    error::{Error, Result},
};

pub const BUILT_IN_ROLES: [&str; 2] = ["admin", "rep"];
pub const BUILT_IN_DEFAULT_ROLE: &str = "rep";

pub struct NewAccount {
    pub slug: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub default_role: String,
}

impl Core {
    pub async fn create_account(&self, ctx: &Ctx, req: NewAccount) -> Result<account::Model> {
        ctx.require_admin()?;
        let slug = validate::slug(&req.slug)?;
        let display_name =
            validate::text("display_name", &req.display_name, 256)?.unwrap_or_else(|| slug.clone());
        let mut roles = Vec::new();
        for role in &req.roles {
            let role = validate::role_name(role)?;
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        if roles.is_empty() {
            roles = BUILT_IN_ROLES.iter().map(|r| (*r).to_owned()).collect();
        }
        let default_role = if req.default_role.trim().is_empty() {
            if roles.iter().any(|r| r == BUILT_IN_DEFAULT_ROLE) {
                BUILT_IN_DEFAULT_ROLE.to_owned()
            } else {
                roles.first().cloned().unwrap_or_default()
            }
        } else {
            let role = validate::role_name(&req.default_role)?;
            if !roles.contains(&role) {
                return Err(Error::invalid("default_role", "must be one of the roles"));
            }
            role
        };
        let model = account::Model {
            id: Uuid::now_v7(),
            slug,
            display_name,
            scim_enabled: false,
            roles: roles.join(","),
            default_role,
            user_count: 0,
            created_at: self.clock.now_micros(),
        };
        let txn = self.db.begin_write().await?;
        let exists = account::Entity::find()
            .filter(account::Column::Slug.eq(model.slug.as_str()))
            .one(&txn)
            .await?
            .is_some();
        if exists {
            return Err(Error::AlreadyExists("an account with this slug"));
        }
        account::Entity::insert(model.clone().into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(|e| match Error::from(e) {
                Error::AlreadyExists(_) => Error::AlreadyExists("an account with this slug"),
                other => other,
            })?;
        self.record(
            &txn,
            ctx,
            Audit {
                account_id: Some(model.id),
                action: "account.created",
                target_type: "account",
                target_id: model.id.to_string(),
                changed: vec!["slug", "display_name", "roles", "default_role"],
                ignored: vec![],
            },
        )
        .await?;
        self.commit(txn).await?;
        Ok(model)
    }

    pub async fn get_account(&self, ctx: &Ctx, slug: &str) -> Result<account::Model> {
        ctx.require_admin()?;
        self.account_by_slug(&self.db.read, slug).await
    }

    /// Accounts ordered by slug; the page token is the last slug returned.
    pub async fn list_accounts(
        &self,
        ctx: &Ctx,
        page_size: i32,
        after: &str,
    ) -> Result<(Vec<account::Model>, String)> {
        ctx.require_admin()?;
        let limit = page_size.clamp(1, 500) as u64;
        let limit = if page_size <= 0 { 100 } else { limit };
        let mut query = account::Entity::find().order_by_asc(account::Column::Slug);
        if !after.is_empty() {
            query = query.filter(account::Column::Slug.gt(after));
        }
        let accounts = query.limit(limit + 1).all(&self.db.read).await?;
        Ok(page(accounts, limit as usize, |a| a.slug.clone()))
    }

    /// Turns the SCIM switch on or off. Turning it on for an account with no
    /// live token issues one, returned once.
    pub async fn set_scim_enabled(
        &self,
        ctx: &Ctx,
        slug: &str,
        enabled: bool,
    ) -> Result<(account::Model, Option<NewToken>)> {
        ctx.require_admin()?;
        let txn = self.db.begin_write().await?;
        let account = self.account_by_slug(&txn, slug).await?;
        let now = self.clock.now_micros();
        let mut issued = None;
        let mut updated = account.clone();
        // Row writes first, audit records last (see `Core::record`).
        let mut audits = Vec::new();
        if account.scim_enabled != enabled {
            let mut active = account.clone().into_active_model();
            active.scim_enabled = Set(enabled);
            updated = active.update(&txn).await?;
            audits.push(Audit {
                account_id: Some(account.id),
                action: if enabled {
                    "account.scim_enabled"
                } else {
                    "account.scim_disabled"
                },
                target_type: "account",
                target_id: account.id.to_string(),
                changed: vec!["scim_enabled"],
                ignored: vec![],
            });
        }
        if enabled {
            let tokens = scim_token::Entity::find()
                .filter(scim_token::Column::AccountId.eq(account.id))
                .all(&txn)
                .await?;
            if !tokens.iter().any(|t| t.is_live(now)) {
                let token = self
                    .insert_token(&txn, &account, "issued on enable", None)
                    .await?;
                audits.push(issued_audit(&account, &token));
                issued = Some(token);
            }
        }
        for audit in audits {
            self.record(&txn, ctx, audit).await?;
        }
        self.commit(txn).await?;
        self.tokens.clear();
        Ok((updated, issued))
    }
}

/// Splits a fetched `limit + 1` rows into a page and the next page token.
pub(crate) fn page<T>(
    mut rows: Vec<T>,
    limit: usize,
    token: impl Fn(&T) -> String,
) -> (Vec<T>, String) {
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(&token).unwrap_or_default();
        (rows, next)
    } else {
        (rows, String::new())
    }
}
