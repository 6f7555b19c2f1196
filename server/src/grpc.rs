//! The gRPC services: authenticate, call the core, convert the result.
use std::{pin::Pin, sync::Arc};

use provisioning_proto::pb::{
    self,
    account_service_server::{AccountService, AccountServiceServer},
    audit_service_server::{AuditService, AuditServiceServer},
    token_service_server::{TokenService, TokenServiceServer},
    user_service_server::{UserService, UserServiceServer},
};
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

use crate::{
    clock::{micros, timestamp},
    db::entities::{account, audit_event, scim_token, user},
    service::{Core, accounts::NewAccount, tokens::NewToken, users::UserChanges},
};

type Reply<T> = Result<Response<T>, Status>;

/// Implements every service of `provisioning.v1` over one [`Core`].
#[derive(Clone)]
pub struct Api(pub Arc<Core>);

impl Api {
    pub fn account_service(&self) -> AccountServiceServer<Self> {
        AccountServiceServer::new(self.clone())
    }
    pub fn token_service(&self) -> TokenServiceServer<Self> {
        TokenServiceServer::new(self.clone())
    }
    pub fn user_service(&self) -> UserServiceServer<Self> {
        UserServiceServer::new(self.clone())
    }
    pub fn audit_service(&self) -> AuditServiceServer<Self> {
        AuditServiceServer::new(self.clone())
    }
}

fn account_pb(a: account::Model) -> pb::Account {
    pb::Account {
        id: a.id.to_string(),
        roles: a.role_list(),
        slug: a.slug,
        display_name: a.display_name,
        scim_enabled: a.scim_enabled,
        default_role: a.default_role,
        created_at: Some(timestamp(a.created_at)),
        user_count: a.user_count,
    }
}

fn token_pb(t: scim_token::Model, account: &str) -> pb::TokenInfo {
    pb::TokenInfo {
        id: t.id.to_string(),
        account: account.to_owned(),
        prefix: t.prefix,
        description: t.description,
        created_at: Some(timestamp(t.created_at)),
        expires_at: t.expires_at.map(timestamp),
        revoked_at: t.revoked_at.map(timestamp),
        last_used_at: t.last_used_at.map(timestamp),
    }
}

fn issued_pb(new: NewToken, account: &str) -> pb::IssuedToken {
    pb::IssuedToken {
        info: Some(token_pb(new.token, account)),
        secret: new.secret,
    }
}

pub fn user_pb(u: user::Model, account: &str) -> pb::User {
    pb::User {
        id: u.id.to_string(),
        account: account.to_owned(),
        user_name: u.user_name,
        external_id: u.external_id.unwrap_or_default(),
        given_name: u.given_name.unwrap_or_default(),
        family_name: u.family_name.unwrap_or_default(),
        email: u.email.unwrap_or_default(),
        phone_number: u.phone_number.unwrap_or_default(),
        timezone: u.timezone.unwrap_or_default(),
        role: u.role,
        role_type: u.role_type.unwrap_or_default(),
        active: u.active,
        created_at: Some(timestamp(u.created_at)),
        updated_at: Some(timestamp(u.updated_at)),
        version: u.version,
    }
}

fn event_pb(e: audit_event::Model, account: &str) -> pb::AuditEvent {
    let split = |s: &str| {
        s.split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect()
    };
    pb::AuditEvent {
        id: e.id,
        account: account.to_owned(),
        changed_fields: split(&e.changed_fields),
        ignored_fields: split(&e.ignored_fields),
        actor: e.actor,
        action: e.action,
        target_type: e.target_type,
        target_id: e.target_id,
        at: Some(timestamp(e.at)),
        request_id: e.request_id.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl AccountService for Api {
    async fn create_account(&self, req: Request<pb::CreateAccountRequest>) -> Reply<pb::Account> {
        let ctx = self.0.authenticate(&req).await?;
        let r = req.into_inner();
        let new = NewAccount {
            slug: r.slug,
            display_name: r.display_name,
            roles: r.roles,
            default_role: r.default_role,
        };
        Ok(Response::new(account_pb(
            self.0.create_account(&ctx, new).await?,
        )))
    }

    async fn get_account(&self, req: Request<pb::GetAccountRequest>) -> Reply<pb::Account> {
        let ctx = self.0.authenticate(&req).await?;
        Ok(Response::new(account_pb(
            self.0.get_account(&ctx, &req.get_ref().account).await?,
        )))
    }

    async fn list_accounts(
        &self,
        req: Request<pb::ListAccountsRequest>,
    ) -> Reply<pb::ListAccountsResponse> {
        let ctx = self.0.authenticate(&req).await?;
        let r = req.get_ref();
        let (accounts, next_page_token) = self
            .0
            .list_accounts(&ctx, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: accounts.into_iter().map(account_pb).collect(),
            next_page_token,
        }))
    }

    async fn set_scim_enabled(
        &self,
        req: Request<pb::SetScimEnabledRequest>,
    ) -> Reply<pb::SetScimEnabledResponse> {
        let ctx = self.0.authenticate(&req).await?;
        let r = req.get_ref();
        let (account, issued) = self.0.set_scim_enabled(&ctx, &r.account, r.enabled).await?;
        let issued_token = issued.map(|t| issued_pb(t, &account.slug));
        Ok(Response::new(pb::SetScimEnabledResponse {
            account: Some(account_pb(account)),
            issued_token,
        }))
    }
}

#[tonic::async_trait]
impl TokenService for Api {
    async fn issue_token(&self, req: Request<pb::IssueTokenRequest>) -> Reply<pb::IssuedToken> {
        let ctx = self.0.authenticate(&req).await?;
        let r = req.get_ref();
        let expires = r.expires_at.as_ref().map(micros);
        let issued = self
            .0
            .issue_token(&ctx, &r.account, &r.description, expires)
            .await?;
        Ok(Response::new(issued_pb(issued, &r.account)))
    }

    async fn rotate_token(&self, req: Request<pb::RotateTokenRequest>) -> Reply<pb::IssuedToken> {
        let ctx = self.0.authenticate(&req).await?;
        let r = req.get_ref();
        let grace = r.grace.as_ref().map_or(0, |d| {
            d.seconds
                .saturating_mul(1_000_000)
                .saturating_add(i64::from(d.nanos) / 1_000)
        });
        let expires = r.expires_at.as_ref().map(micros);
        let issued = self
            .0
            .rotate_token(&ctx, &r.account, grace, &r.description, expires)
            .await?;
        Ok(Response::new(issued_pb(issued, &r.account)))
    }

    async fn revoke_token(&self, req: Request<pb::RevokeTokenRequest>) -> Reply<pb::TokenInfo> {
        let ctx = self.0.authenticate(&req).await?;
        let (token, slug) = self.0.revoke_token(&ctx, &req.get_ref().token_id).await?;
        Ok(Response::new(token_pb(token, &slug)))
    }

    async fn list_tokens(
        &self,
        req: Request<pb::ListTokensRequest>,
    ) -> Reply<pb::ListTokensResponse> {
        let ctx = self.0.authenticate(&req).await?;
        let slug = &req.get_ref().account;
        let tokens = self.0.list_tokens(&ctx, slug).await?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: tokens.into_iter().map(|t| token_pb(t, slug)).collect(),
        }))
    }
}

#[tonic::async_trait]
impl UserService for Api {
    async fn create_user(&self, req: Request<pb::CreateUserRequest>) -> Reply<pb::User> {
        let ctx = self.0.authenticate(&req).await?;
        let r = req.into_inner();
        let account = self.0.scoped_account(&ctx, &r.account).await?;
        let user = self.0.create_user(&ctx, &account, r).await?;
        Ok(Response::new(user_pb(user, &account.slug)))
    }

    async fn get_user(&self, req: Request<pb::GetUserRequest>) -> Reply<pb::User> {
        let ctx = self.0.authenticate(&req).await?;
        let r = req.get_ref();
        let account = self.0.scoped_account(&ctx, &r.account).await?;
        let user = self.0.get_user(&account, &r.id).await?;
        Ok(Response::new(user_pb(user, &account.slug)))
    }

    async fn list_users(&self, req: Request<pb::ListUsersRequest>) -> Reply<pb::ListUsersResponse> {
        let ctx = self.0.authenticate(&req).await?;
        let r = req.get_ref();
        let account = self.0.scoped_account(&ctx, &r.account).await?;
        let (users, total_results, start_index) = self.0.list_users(&account, r).await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users
                .into_iter()
                .map(|u| user_pb(u, &account.slug))
                .collect(),
            total_results,
            start_index,
        }))
    }

    async fn update_user(
        &self,
        req: Request<pb::UpdateUserRequest>,
    ) -> Reply<pb::UpdateUserResponse> {
        let ctx = self.0.authenticate(&req).await?;
        let r = req.into_inner();
        let account = self.0.scoped_account(&ctx, &r.account).await?;
        let changes = UserChanges {
            user_name: r.user_name,
            email: r.email,
            role: r.role,
            role_type: r.role_type,
            active: r.active,
            expected_version: r.expected_version,
            lenient: r.lenient,
        };
        let updated = self.0.update_user(&ctx, &account, &r.id, changes).await?;
        Ok(Response::new(pb::UpdateUserResponse {
            user: Some(user_pb(updated.user, &account.slug)),
            changed: updated.changed,
            ignored_fields: updated.ignored.iter().map(|f| (*f).to_owned()).collect(),
        }))
    }

    async fn deactivate_user(&self, req: Request<pb::SetActiveRequest>) -> Reply<pb::User> {
        self.set_active(req, false).await
    }

    async fn reactivate_user(&self, req: Request<pb::SetActiveRequest>) -> Reply<pb::User> {
        self.set_active(req, true).await
    }

    async fn check_login(
        &self,
        req: Request<pb::CheckLoginRequest>,
    ) -> Reply<pb::CheckLoginResponse> {
        let ctx = self.0.authenticate(&req).await?;
        let account = self.0.scoped_account(&ctx, &req.get_ref().account).await?;
        let (allowed, reason, user_id) = self.0.check_login(&account, req.get_ref()).await?;
        Ok(Response::new(pb::CheckLoginResponse {
            allowed,
            reason: reason.to_owned(),
            user_id,
        }))
    }
}

impl Api {
    async fn set_active(
        &self,
        req: Request<pb::SetActiveRequest>,
        active: bool,
    ) -> Reply<pb::User> {
        let ctx = self.0.authenticate(&req).await?;
        let r = req.get_ref();
        let account = self.0.scoped_account(&ctx, &r.account).await?;
        let changes = UserChanges {
            active: Some(active),
            expected_version: r.expected_version,
            ..UserChanges::default()
        };
        let updated = self.0.update_user(&ctx, &account, &r.id, changes).await?;
        Ok(Response::new(user_pb(updated.user, &account.slug)))
    }
}

/// The stream of `WatchEvents`.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::AuditEvent, Status>> + Send>>;

#[tonic::async_trait]
impl AuditService for Api {
    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Reply<Self::WatchEventsStream> {
        let ctx = self.0.authenticate(&req).await?;
        let r = req.get_ref();
        let watch = self
            .0
            .watch_events(&ctx, &r.account, r.cursor, r.from_now)
            .await?;
        let stream = watch.map(|item| item.map(|w| event_pb(w.event, &w.account)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Reply<pb::ListEventsResponse> {
        let ctx = self.0.authenticate(&req).await?;
        let r = req.get_ref();
        let (events, next_page_token) = self
            .0
            .list_events(&ctx, &r.account, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(pb::ListEventsResponse {
            events: events
                .into_iter()
                .map(|e| event_pb(e, &r.account))
                .collect(),
            next_page_token,
        }))
    }
}
