//! SCIM bearer tokens: stored only as hashes, shown once.
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait, EntityTrait as _, IntoActiveModel as _,
    QueryFilter as _, QueryOrder as _,
};
use uuid::Uuid;

use super::{Audit, Core, Ctx};
use crate::{
    db::entities::{account, scim_token},
    error::{Error, Result},
    keys,
};

/// A token just made: its row and the secret, which is never stored.
pub struct NewToken {
    pub token: scim_token::Model,
    pub secret: String,
}

impl Core {
    /// Inserts a new token; the caller records [`issued`] once its other
    /// writes are done.
    pub(crate) async fn insert_token(
        &self,
        conn: &impl ConnectionTrait,
        account: &account::Model,
        description: &str,
        expires_at: Option<i64>,
    ) -> Result<NewToken> {
        let secret = keys::new_token();
        let token = scim_token::Model {
            id: Uuid::now_v7(),
            account_id: account.id,
            token_hash: keys::hash_secret(&secret),
            prefix: keys::display_prefix(&secret),
            description: super::validate::text("description", description, 256)?
                .unwrap_or_default(),
            created_at: self.clock.now_micros(),
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        scim_token::Entity::insert(token.clone().into_active_model())
            .exec_without_returning(conn)
            .await?;
        Ok(NewToken { token, secret })
    }

    pub async fn issue_token(
        &self,
        ctx: &Ctx,
        slug: &str,
        description: &str,
        expires_at: Option<i64>,
    ) -> Result<NewToken> {
        ctx.require_admin()?;
        let txn = self.db.begin_write().await?;
        let account = self.account_by_slug(&txn, slug).await?;
        let issued = self
            .insert_token(&txn, &account, description, expires_at)
            .await?;
        self.record(&txn, ctx, issued_audit(&account, &issued))
            .await?;
        self.commit(txn).await?;
        Ok(issued)
    }

    /// A new token; every other live token of the account stops working
    /// after `grace_micros` (at once when zero).
    pub async fn rotate_token(
        &self,
        ctx: &Ctx,
        slug: &str,
        grace_micros: i64,
        description: &str,
        expires_at: Option<i64>,
    ) -> Result<NewToken> {
        ctx.require_admin()?;
        if grace_micros < 0 {
            return Err(Error::invalid("grace", "must not be negative"));
        }
        let txn = self.db.begin_write().await?;
        let account = self.account_by_slug(&txn, slug).await?;
        let now = self.clock.now_micros();
        let old = scim_token::Entity::find()
            .filter(scim_token::Column::AccountId.eq(account.id))
            .all(&txn)
            .await?;
        // Row writes first, audit records last: on PostgreSQL recording
        // takes the audit-order lock, which must never wait on a row lock.
        let mut audits = Vec::new();
        for token in old.into_iter().filter(|t| t.is_live(now)) {
            let id = token.id;
            let mut active = token.clone().into_active_model();
            if grace_micros == 0 {
                active.revoked_at = Set(Some(now));
            } else {
                let until = now.saturating_add(grace_micros);
                active.expires_at = Set(Some(token.expires_at.map_or(until, |e| e.min(until))));
            }
            scim_token::Entity::update(active).exec(&txn).await?;
            audits.push(Audit {
                account_id: Some(account.id),
                action: "token.rotated_out",
                target_type: "token",
                target_id: id.to_string(),
                changed: vec![if grace_micros == 0 {
                    "revoked_at"
                } else {
                    "expires_at"
                }],
                ignored: vec![],
            });
        }
        let issued = self
            .insert_token(&txn, &account, description, expires_at)
            .await?;
        audits.push(issued_audit(&account, &issued));
        for audit in audits {
            self.record(&txn, ctx, audit).await?;
        }
        self.commit(txn).await?;
        self.tokens.clear();
        Ok(issued)
    }

    pub async fn revoke_token(
        &self,
        ctx: &Ctx,
        token_id: &str,
    ) -> Result<(scim_token::Model, String)> {
        ctx.require_admin()?;
        let id = Uuid::parse_str(token_id.trim()).map_err(|_| Error::NotFound("token"))?;
        let txn = self.db.begin_write().await?;
        let token = scim_token::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("token"))?;
        let account = account::Entity::find_by_id(token.account_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound("token"))?;
        if token.revoked_at.is_some() {
            return Ok((token, account.slug));
        }
        let mut active = token.into_active_model();
        active.revoked_at = Set(Some(self.clock.now_micros()));
        let token = scim_token::Entity::update(active).exec(&txn).await?;
        self.record(
            &txn,
            ctx,
            Audit {
                account_id: Some(account.id),
                action: "token.revoked",
                target_type: "token",
                target_id: token.id.to_string(),
                changed: vec!["revoked_at"],
                ignored: vec![],
            },
        )
        .await?;
        self.commit(txn).await?;
        self.tokens.clear();
        Ok((token, account.slug))
    }

    pub async fn list_tokens(&self, ctx: &Ctx, slug: &str) -> Result<Vec<scim_token::Model>> {
        ctx.require_admin()?;
        let account = self.account_by_slug(&self.db.read, slug).await?;
        let mut tokens = scim_token::Entity::find()
            .filter(scim_token::Column::AccountId.eq(account.id))
            .order_by_asc(scim_token::Column::CreatedAt)
            .all(&self.db.read)
            .await?;
        for token in &mut tokens {
            if let Some(at) = self.pending_last_used(token.id) {
                token.last_used_at = Some(token.last_used_at.map_or(at, |t| t.max(at)));
            }
        }
        Ok(tokens)
    }
}

/// The audit record of a token just issued.
pub(crate) fn issued_audit(account: &account::Model, issued: &NewToken) -> Audit {
    Audit {
        account_id: Some(account.id),
        action: "token.issued",
        target_type: "token",
        target_id: issued.token.id.to_string(),
        changed: vec![],
        ignored: vec![],
    }
}
