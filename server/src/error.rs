//! The server's one error type, mapped once to gRPC status codes with a
//! machine-readable `google.rpc.ErrorInfo` reason. Messages never echo
//! submitted values.
use std::collections::HashMap;

use provisioning_proto::{ERROR_DOMAIN, pb::ErrorReason};
use sea_orm::{DbErr, SqlErr};
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt as _};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    #[error("invalid {field}: {problem}")]
    InvalidArgument {
        field: &'static str,
        problem: &'static str,
    },
    #[error("invalid filter: {0}")]
    InvalidFilter(&'static str),
    #[error("the user was changed since the version given (version conflict)")]
    VersionConflict,
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error(
        "SCIM provisioning is switched off for this account; an administrator must turn on \"SCIM Enabled\" for it"
    )]
    ScimDisabled,
    #[error("too many requests; retry later")]
    RateLimited(std::time::Duration),
    #[error("the database is unavailable; try again shortly")]
    Unavailable(#[source] DbErr),
    #[error("internal error")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: &'static str, problem: &'static str) -> Self {
        Self::InvalidArgument { field, problem }
    }

    fn reason(&self) -> ErrorReason {
        match self {
            Self::NotFound(_) => ErrorReason::NotFound,
            Self::AlreadyExists(_) => ErrorReason::AlreadyExists,
            Self::InvalidArgument { .. } => ErrorReason::InvalidArgument,
            Self::InvalidFilter(_) => ErrorReason::InvalidFilter,
            Self::VersionConflict => ErrorReason::VersionConflict,
            Self::Unauthenticated(_) => ErrorReason::Unauthenticated,
            Self::PermissionDenied(_) => ErrorReason::PermissionDenied,
            Self::ScimDisabled => ErrorReason::ScimDisabled,
            Self::RateLimited(_) => ErrorReason::RateLimited,
            Self::Unavailable(_) => ErrorReason::Unavailable,
            Self::Internal(_) => ErrorReason::Internal,
        }
    }

    fn code(&self) -> Code {
        match self {
            Self::NotFound(_) => Code::NotFound,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::InvalidArgument { .. } | Self::InvalidFilter(_) => Code::InvalidArgument,
            Self::VersionConflict => Code::Aborted,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::ScimDisabled => Code::FailedPrecondition,
            Self::RateLimited(_) => Code::ResourceExhausted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
            return Self::AlreadyExists("a record with this key");
        }
        match &err {
            DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => Self::Unavailable(err),
            _ => {
                let text = err.to_string();
                // A deadlock or serialisation failure is transient: retry.
                if text.contains("database is locked")
                    || text.contains("deadlock detected")
                    || text.contains("could not serialize access")
                    || text.contains("unable to open database")
                    || text.contains("readonly database")
                    || text.contains("disk I/O error")
                    || text.contains("connection")
                {
                    Self::Unavailable(err)
                } else {
                    Self::Internal(text)
                }
            }
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        match &err {
            Error::Internal(cause) => tracing::error!(%cause, "internal error"),
            Error::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let mut metadata = HashMap::new();
        if let Error::InvalidArgument { field, .. } = &err {
            metadata.insert("field".to_owned(), (*field).to_owned());
        }
        let mut details =
            ErrorDetails::with_error_info(err.reason().as_str_name(), ERROR_DOMAIN, metadata);
        match &err {
            Error::RateLimited(wait) => {
                details.set_retry_info(Some(*wait));
            }
            Error::Unavailable(_) => {
                details.set_retry_info(Some(std::time::Duration::from_secs(5)));
            }
            _ => {}
        }
        tonic::Status::with_error_details(err.code(), err.to_string(), details)
    }
}
