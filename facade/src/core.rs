//! The gRPC client of the core's `UserService`, carrying the caller's token.

use std::{future::Future, time::Duration};

use provisioning_proto::pb::{self, user_service_client::UserServiceClient};
use tonic::{metadata::MetadataValue, transport::Channel};

use crate::{
    error::{RETRY_AFTER_SECS, ScimError},
    extract::Caller,
};

/// The core's `UserService`, called on behalf of a SCIM client.
#[derive(Clone, Debug)]
pub struct Core {
    users: UserServiceClient<Channel>,
    timeout: Duration,
}

impl Core {
    /// A client over `channel`; calls not answered within `timeout` are 503.
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        Self {
            users: UserServiceClient::new(channel),
            timeout,
        }
    }

    /// `msg` with the caller's token, `x-scim-only: 1` (so the core refuses
    /// anything but a SCIM token), the request id and the client's address.
    fn request<T>(&self, caller: &Caller, msg: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(msg);
        let metadata = request.metadata_mut();
        metadata.insert("authorization", caller.authorization.clone());
        metadata.insert("x-scim-only", MetadataValue::from_static("1"));
        metadata.insert("x-request-id", caller.request_id.clone());
        if let Some(ip) = &caller.client_ip {
            metadata.insert("x-client-ip", ip.clone());
        }
        request.set_timeout(self.timeout);
        request
    }

    async fn call<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ScimError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(status.into()),
            Err(_) => Err(ScimError::Unavailable(
                "The service did not answer in time; retry after the delay in Retry-After.".into(),
                RETRY_AFTER_SECS,
            )),
        }
    }

    /// `GetUser` in the token's account.
    pub async fn get_user(&self, caller: &Caller, id: &str) -> Result<pb::User, ScimError> {
        let msg = pb::GetUserRequest {
            account: String::new(),
            id: id.to_string(),
        };
        let mut client = self.users.clone();
        self.call(client.get_user(self.request(caller, msg))).await
    }

    /// `ListUsers` in the token's account.
    pub async fn list_users(
        &self,
        caller: &Caller,
        msg: pb::ListUsersRequest,
    ) -> Result<pb::ListUsersResponse, ScimError> {
        let mut client = self.users.clone();
        self.call(client.list_users(self.request(caller, msg)))
            .await
    }

    /// `CreateUser` in the token's account.
    pub async fn create_user(
        &self,
        caller: &Caller,
        msg: pb::CreateUserRequest,
    ) -> Result<pb::User, ScimError> {
        let mut client = self.users.clone();
        self.call(client.create_user(self.request(caller, msg)))
            .await
    }

    /// `UpdateUser` in the token's account; the updated user.
    pub async fn update_user(
        &self,
        caller: &Caller,
        msg: pb::UpdateUserRequest,
    ) -> Result<pb::User, ScimError> {
        let mut client = self.users.clone();
        let response = self
            .call(client.update_user(self.request(caller, msg)))
            .await?;
        response
            .user
            .ok_or_else(|| ScimError::Internal("UpdateUser answered without a user".into()))
    }
}
