//! The provisioning core: authentication, scoping and the operations behind
//! every RPC. The gRPC layer (`crate::grpc`) only converts messages.
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait, DbBackend, EntityTrait as _,
    QueryFilter as _,
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
pub mod limits;
pub mod tokens;
pub mod users;
pub mod validate;
pub mod watch;

/// Metadata the SCIM facade adds: the admin credential is then refused.
pub const SCIM_ONLY_HEADER: &str = "x-scim-only";
/// Metadata carrying the request id, recorded in audit events.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Metadata the SCIM facade adds: the HTTP client's address, for the
/// failed-authentication limit.
pub const CLIENT_IP_HEADER: &str = "x-client-ip";
/// The PostgreSQL advisory lock (transaction-level) that [`Core::record`]
/// takes before inserting an audit event, so event ids follow commit order.
/// Anything else that inserts audit events must take it too.
pub const AUDIT_ORDER_LOCK: i64 = 0x7072_6f76_6175_6474;

/// Request limits; all bounded in memory.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests per second per SCIM token (0 switches the limit off).
    pub per_token_per_second: f64,
    pub per_token_burst: f64,
    /// Failed authentications per minute per client address.
    pub auth_failures_per_minute: f64,
    /// How long another replica's token changes may take to show here.
    pub token_cache_ttl: Duration,
    /// Events a watcher's stream holds before the watcher reads them.
    pub watch_buffer: usize,
    /// A watcher that reads nothing for this long while events wait is ended
    /// (ABORTED / WATCH_LAGGING; it resumes from its cursor).
    pub watch_stall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_token_per_second: 100.0,
            per_token_burst: 200.0,
            auth_failures_per_minute: 30.0,
            token_cache_ttl: Duration::from_secs(5),
            watch_buffer: 256,
            watch_stall: Duration::from_secs(60),
        }
    }
}

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
    pub(crate) tokens: limits::TokenCache,
    /// Accounts by slug for admin calls. What user operations read of an
    /// account (id, slug, roles, default role) never changes after creation;
    /// the SCIM switch and the user count are always read fresh.
    accounts: Mutex<HashMap<String, account::Model>>,
    per_token: Option<limits::Buckets<Uuid>>,
    auth_failures: limits::Buckets<IpAddr>,
    pub(crate) events: watch::EventBus,
    watch_buffer: usize,
    watch_stall: Duration,
}

impl Core {
    pub fn new(db: Db, clock: Arc<dyn Clock>, admin_token: &str, limits: &Limits) -> Self {
        let per_token = (limits.per_token_per_second > 0.0).then(|| {
            limits::Buckets::new(
                limits.per_token_per_second,
                limits.per_token_burst.max(1.0),
                100_000,
            )
        });
        let failures = limits.auth_failures_per_minute.max(1.0);
        Self {
            db,
            clock,
            admin_hash: keys::hash_secret(admin_token),
            last_used: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            tokens: limits::TokenCache::new(limits.token_cache_ttl, 100_000),
            per_token,
            auth_failures: limits::Buckets::new(failures / 60.0, failures, 10_000),
            events: watch::EventBus::new(),
            watch_buffer: limits.watch_buffer,
            watch_stall: limits.watch_stall,
        }
    }

    /// Identifies the caller from `authorization: Bearer …` metadata. Failed
    /// attempts are limited per client address (the facade's `x-client-ip`,
    /// else the peer): past the limit, attempts are refused before any
    /// database read.
    pub async fn authenticate<T>(&self, request: &tonic::Request<T>) -> Result<Ctx> {
        let metadata = request.metadata();
        let client = metadata
            .get(CLIENT_IP_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<IpAddr>().ok())
            .or_else(|| request.remote_addr().map(|a| a.ip()));
        let now = self.clock.now_micros();
        if let Some(ip) = client {
            self.auth_failures.check(&ip, now).map_err(|wait| {
                auth_failure("rate_limited");
                Error::RateLimited(wait)
            })?;
        }
        let result = self.identify(metadata, now).await;
        if let Err(err) = &result {
            auth_failure(match err {
                Error::Unauthenticated(MISSING_CREDENTIAL) => "missing_credential",
                Error::Unauthenticated(NOT_BEARER) => "not_bearer",
                Error::Unauthenticated(INVALID_TOKEN) => "invalid_token",
                Error::Unauthenticated(REVOKED_OR_EXPIRED) => "revoked_or_expired",
                Error::Unauthenticated(ADMIN_ON_SCIM_ENDPOINT) => "admin_on_scim_endpoint",
                Error::ScimDisabled => "scim_disabled",
                Error::Unavailable(_) => "unavailable",
                _ => "other",
            });
        }
        if let (Err(Error::Unauthenticated(_)), Some(ip)) = (&result, client) {
            let _ = self.auth_failures.take(&ip, now);
        }
        let ctx = result?;
        if let (Caller::Scim { token_id, .. }, Some(limit)) = (&ctx.caller, &self.per_token) {
            limit.take(token_id, now).map_err(Error::RateLimited)?;
        }
        Ok(ctx)
    }

    async fn identify(&self, metadata: &MetadataMap, now: i64) -> Result<Ctx> {
        let request_id = metadata
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned);
        let header = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or(Error::Unauthenticated(MISSING_CREDENTIAL))?;
        let secret = strip_bearer(header).ok_or(Error::Unauthenticated(NOT_BEARER))?;
        let hash = keys::hash_secret(secret);
        if hash == self.admin_hash {
            if metadata.contains_key(SCIM_ONLY_HEADER) {
                return Err(Error::Unauthenticated(ADMIN_ON_SCIM_ENDPOINT));
            }
            return Ok(Ctx {
                caller: Caller::Admin,
                request_id,
            });
        }
        if !secret.starts_with(keys::TOKEN_PREFIX) {
            return Err(Error::Unauthenticated(INVALID_TOKEN));
        }
        let (token, account) = match self.tokens.get(&hash, now) {
            Some(cached) => (cached.token, cached.account),
            None => {
                let token = scim_token::Entity::find()
                    .filter(scim_token::Column::TokenHash.eq(hash.as_str()))
                    .one(&self.db.read)
                    .await?
                    .ok_or(Error::Unauthenticated(INVALID_TOKEN))?;
                let account = account::Entity::find_by_id(token.account_id)
                    .one(&self.db.read)
                    .await?
                    .ok_or(Error::Unauthenticated(INVALID_TOKEN))?;
                self.tokens
                    .insert(hash, token.clone(), account.clone(), now);
                (token, account)
            }
        };
        if !token.is_live(now) {
            return Err(Error::Unauthenticated(REVOKED_OR_EXPIRED));
        }
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
            Caller::Admin => {
                let cached = self
                    .accounts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(slug)
                    .cloned();
                if let Some(account) = cached {
                    return Ok(account);
                }
                let account = self.account_by_slug(&self.db.read, slug).await?;
                let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
                if accounts.len() >= 10_000 {
                    accounts.clear();
                }
                accounts.insert(account.slug.clone(), account.clone());
                Ok(account)
            }
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

    /// Writes an audit event in the caller's transaction; commit it with
    /// [`Core::commit`] so that watchers hear of it at once. On PostgreSQL it
    /// first takes [`AUDIT_ORDER_LOCK`] (held until commit or rollback): ids
    /// come from a sequence, and without the lock a later id could commit
    /// before an earlier one and a watcher's cursor would skip it. Call it
    /// after the transaction's row writes: a transaction holding the lock
    /// must never wait for a row lock, or two writers could deadlock.
    pub async fn record(&self, conn: &impl ConnectionTrait, ctx: &Ctx, entry: Audit) -> Result<()> {
        if conn.get_database_backend() == DbBackend::Postgres {
            conn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({AUDIT_ORDER_LOCK})"))
                .await?;
        }
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

const MISSING_CREDENTIAL: &str = "missing bearer credential";
const NOT_BEARER: &str = "the authorization must be a bearer credential";
const INVALID_TOKEN: &str = "invalid token";
const REVOKED_OR_EXPIRED: &str = "the token was revoked or has expired";
const ADMIN_ON_SCIM_ENDPOINT: &str =
    "this endpoint accepts only SCIM tokens, not the admin credential";

fn auth_failure(reason: &'static str) {
    metrics::counter!("provisioning_auth_failures_total", "reason" => reason).increment(1);
}

/// `Bearer x` → `x`. The scheme is case-insensitive.
fn strip_bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    let secret = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then_some(secret)
}
