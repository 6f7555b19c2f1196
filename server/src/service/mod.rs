//! The provisioning core: authentication, scoping and the operations behind
//! every RPC. The gRPC layer (`crate::grpc`) only converts messages.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _,
};
use tonic::metadata::MetadataMap;
use uuid::Uuid;

use crate::{
    clock::Clock,
    db::{
        Db,
        entities::{account, audit_event, scim_token},
    },
    error::{Error, Result},
    keys,
};

pub mod accounts;
pub mod audit;
pub mod filter;
pub mod tokens;
pub mod users;
pub mod validate;

/// Metadata the SCIM facade adds: the admin credential is then refused.
pub const SCIM_ONLY_HEADER: &str = "x-scim-only";
/// Metadata carrying the request id, recorded in audit events.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The admin credential: every account.
    Admin,
    /// A SCIM token: UserService on its own account only.
    Scim {
        token_id: Uuid,
        account: account::Model,
    },
}

/// The caller plus what the request carries for the audit trail.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub caller: Caller,
    pub request_id: Option<String>,
}

impl Ctx {
    fn actor(&self) -> String {
        match &self.caller {
            Caller::Admin => "admin".to_owned(),
            Caller::Scim { token_id, .. } => format!("token:{token_id}"),
        }
    }

    /// Admin RPCs refuse SCIM tokens.
    pub fn require_admin(&self) -> Result<()> {
        match self.caller {
            Caller::Admin => Ok(()),
            Caller::Scim { .. } => Err(Error::PermissionDenied(
                "a SCIM token may only call UserService",
            )),
        }
    }
}

/// One audit record, written in the transaction of the change it records.
pub struct Audit {
    pub account_id: Option<Uuid>,
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: String,
    pub changed: Vec<&'static str>,
    pub ignored: Vec<&'static str>,
}

pub struct Core {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    admin_hash: String,
    /// Token id → last use (µs), flushed in batches by [`Core::flush_last_used`].
    last_used: Mutex<HashMap<Uuid, i64>>,
}

impl Core {
    pub fn new(db: Db, clock: Arc<dyn Clock>, admin_token: &str) -> Self {
        Self {
            db,
            clock,
            admin_hash: keys::hash_secret(admin_token),
            last_used: Mutex::new(HashMap::new()),
        }
    }

    /// Identifies the caller from `authorization: Bearer …` metadata.
    pub async fn authenticate(&self, metadata: &MetadataMap) -> Result<Ctx> {
        let request_id = metadata
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned);
        let header = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or(Error::Unauthenticated("missing bearer credential"))?;
        let secret = strip_bearer(header).ok_or(Error::Unauthenticated(
            "the authorization must be a bearer credential",
        ))?;
        let hash = keys::hash_secret(secret);
        if hash == self.admin_hash {
            if metadata.contains_key(SCIM_ONLY_HEADER) {
                return Err(Error::Unauthenticated(
                    "this endpoint accepts only SCIM tokens, not the admin credential",
                ));
            }
            return Ok(Ctx {
                caller: Caller::Admin,
                request_id,
            });
        }
        let now = self.clock.now_micros();
        let token = scim_token::Entity::find()
            .filter(scim_token::Column::TokenHash.eq(hash))
            .one(&self.db.read)
            .await?
            .ok_or(Error::Unauthenticated("invalid token"))?;
        if !token.is_live(now) {
            return Err(Error::Unauthenticated(
                "the token was revoked or has expired",
            ));
        }
        let account = account::Entity::find_by_id(token.account_id)
            .one(&self.db.read)
            .await?
            .ok_or(Error::Unauthenticated("invalid token"))?;
        if !account.scim_enabled {
            return Err(Error::ScimDisabled);
        }
        self.touch(token.id, now);
        Ok(Ctx {
            caller: Caller::Scim {
                token_id: token.id,
                account,
            },
            request_id,
        })
    }

    fn touch(&self, token_id: Uuid, now: i64) {
        let mut map = self.last_used.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(token_id, now);
    }

    /// Last use recorded in memory and not yet flushed.
    pub fn pending_last_used(&self, token_id: Uuid) -> Option<i64> {
        let map = self.last_used.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&token_id).copied()
    }

    /// Writes batched last-used times (at least every 60 s, and at shutdown).
    pub async fn flush_last_used(&self) -> Result<()> {
        let pending: Vec<(Uuid, i64)> = {
            let mut map = self.last_used.lock().unwrap_or_else(|p| p.into_inner());
            map.drain().collect()
        };
        if pending.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().await?;
        for (id, at) in pending {
            scim_token::Entity::update_many()
                .col_expr(
                    scim_token::Column::LastUsedAt,
                    sea_orm::sea_query::Expr::val(at),
                )
                .filter(scim_token::Column::Id.eq(id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// The account a request names, as the caller may see it.
    pub async fn scoped_account(&self, ctx: &Ctx, slug: &str) -> Result<account::Model> {
        match &ctx.caller {
            Caller::Scim { account, .. } => {
                if slug.is_empty() || slug == account.slug {
                    Ok(account.clone())
                } else {
                    Err(Error::PermissionDenied(
                        "a SCIM token may only act on its own account",
                    ))
                }
            }
            Caller::Admin => self.account_by_slug(&self.db.read, slug).await,
        }
    }

    pub async fn account_by_slug(
        &self,
        conn: &impl ConnectionTrait,
        slug: &str,
    ) -> Result<account::Model> {
        if slug.is_empty() {
            return Err(Error::invalid("account", "is required"));
        }
        account::Entity::find()
            .filter(account::Column::Slug.eq(slug))
            .one(conn)
            .await?
            .ok_or(Error::NotFound("account"))
    }

    pub async fn record(&self, conn: &impl ConnectionTrait, ctx: &Ctx, entry: Audit) -> Result<()> {
        audit_event::Entity::insert(audit_event::ActiveModel {
            account_id: Set(entry.account_id),
            actor: Set(ctx.actor()),
            action: Set(entry.action.to_owned()),
            target_type: Set(entry.target_type.to_owned()),
            target_id: Set(entry.target_id),
            changed_fields: Set(entry.changed.join(",")),
            ignored_fields: Set(entry.ignored.join(",")),
            request_id: Set(ctx.request_id.clone()),
            at: Set(self.clock.now_micros()),
            ..Default::default()
        })
        .exec_without_returning(conn)
        .await?;
        Ok(())
    }
}

/// `Bearer x` → `x`. The scheme is case-insensitive.
fn strip_bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    let secret = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then_some(secret)
}
