//! The facade's one error type and its single mapping onto a SCIM error body
//! (RFC 7644 §3.12). Details never contain submitted values.

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt as _;

/// `schemas` of every error body.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The media type of every response.
pub const SCIM_JSON: &str = "application/scim+json";
/// Seconds a client should wait before retrying when the core names no delay.
pub const RETRY_AFTER_SECS: u64 = 5;

/// The `scimType` values of RFC 7644 §3.12 that the service uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    /// 409: a unique attribute's value is taken.
    Uniqueness,
    /// 400: the filter is malformed or names something unknown.
    InvalidFilter,
    /// 400: the request body is not a valid SCIM request.
    InvalidSyntax,
    /// 400: a PATCH `path` is malformed.
    InvalidPath,
    /// 400: a value is missing, has the wrong type or is not allowed.
    InvalidValue,
    /// 400: the attribute cannot be changed that way.
    Mutability,
    /// 400: a PATCH operation addresses nothing.
    NoTarget,
    /// 400: the request has more operations than the service accepts.
    TooMany,
}

impl ScimType {
    /// The RFC's keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uniqueness => "uniqueness",
            Self::InvalidFilter => "invalidFilter",
            Self::InvalidSyntax => "invalidSyntax",
            Self::InvalidPath => "invalidPath",
            Self::InvalidValue => "invalidValue",
            Self::Mutability => "mutability",
            Self::NoTarget => "noTarget",
            Self::TooMany => "tooMany",
        }
    }
}

/// Every way a SCIM request can fail. Each variant knows its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    /// 400 with a `scimType`.
    #[error("{detail}")]
    BadRequest {
        /// The RFC keyword.
        scim_type: ScimType,
        /// Human-readable, without submitted values.
        detail: String,
    },
    /// 401 with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 408: the request body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// 409.
    #[error("{detail}")]
    Conflict {
        /// `uniqueness` for duplicates, none for concurrent changes.
        scim_type: Option<ScimType>,
        /// Human-readable, without submitted values.
        detail: String,
    },
    /// 412: `If-Match` does not match the stored version.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429 with `Retry-After` (seconds).
    #[error("{0}")]
    TooManyRequests(String, u64),
    /// 501.
    #[error("{0}")]
    NotImplemented(String),
    /// 503 with `Retry-After` (seconds).
    #[error("{0}")]
    Unavailable(String, u64),
    /// 500. The text is logged, never sent.
    #[error("{0}")]
    Internal(String),
    /// Any other status (used to wrap responses produced outside the
    /// handlers, e.g. by axum itself).
    #[error("{detail}")]
    Other {
        /// The HTTP status.
        status: StatusCode,
        /// Human-readable.
        detail: String,
    },
}

impl ScimError {
    /// 400 with the given `scimType`.
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            scim_type,
            detail: detail.into(),
        }
    }

    /// 400 `invalidValue`.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidValue, detail)
    }

    /// 400 `invalidSyntax`.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad_request(ScimType::InvalidSyntax, detail)
    }

    /// The 404 for a user id that does not exist (or belongs to another
    /// account: the two are indistinguishable on purpose).
    pub fn user_not_found() -> Self {
        Self::NotFound("No user with this id exists.".into())
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Other { status, .. } => *status,
        }
    }

    fn scim_type(&self) -> Option<ScimType> {
        match self {
            Self::BadRequest { scim_type, .. } => Some(*scim_type),
            Self::Conflict { scim_type, .. } => *scim_type,
            _ => None,
        }
    }

    /// The `detail` sent to the client.
    fn public_detail(&self) -> String {
        match self {
            Self::Internal(_) => "Internal server error. The incident was logged.".into(),
            other => other.to_string(),
        }
    }
}

/// The SCIM error body for `status`, `scim_type` and `detail`.
pub fn error_body(
    status: StatusCode,
    scim_type: Option<ScimType>,
    detail: &str,
) -> serde_json::Value {
    let mut body = json!({
        "schemas": [ERROR_SCHEMA],
        "status": status.as_str(),
        "detail": detail,
    });
    if let (Some(t), Some(map)) = (scim_type, body.as_object_mut()) {
        map.insert("scimType".into(), t.as_str().into());
    }
    body
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(what) = &self {
            tracing::error!(error = %what, "internal error answered with 500");
        }
        let body = error_body(status, self.scim_type(), &self.public_detail());
        let mut response = scim_response(status, &body);
        let headers = response.headers_mut();
        match self {
            Self::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"scim\""),
                );
            }
            Self::Unavailable(_, secs) | Self::TooManyRequests(_, secs) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            _ => {}
        }
        response
    }
}

/// A response with `body` serialised as `application/scim+json`.
pub fn scim_response(status: StatusCode, body: &serde_json::Value) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a response body");
            let mut response = Response::new(Body::from(
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"500","detail":"Internal server error."}"#,
            ));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
            response
        }
    }
}

/// The SCIM name of a core request field named in `ErrorInfo.metadata["field"]`.
fn scim_attribute(field: &str) -> &str {
    match field {
        "user_name" => "userName",
        "external_id" => "externalId",
        "given_name" => "name.givenName",
        "family_name" => "name.familyName",
        "email" => "emails",
        "phone_number" => "phoneNumbers",
        "timezone" => "timezone",
        "role" | "role_type" => "roles",
        "active" => "active",
        "filter" => "filter",
        "start_index" => "startIndex",
        "count" => "count",
        "id" => "id",
        _ => "a submitted attribute",
    }
}

const UNAUTHENTICATED_DETAIL: &str = "The bearer token is missing, invalid, revoked or expired. \
     Paste the SCIM token issued by `provisioning scim enable <account>` (or `provisioning token issue`) \
     into the API token field of the SCIM connection.";

const SCIM_DISABLED_DETAIL: &str = "SCIM provisioning is turned off for this account. Ask the \
     service operator to turn it on (`provisioning scim enable <account>`), then use the token it \
     issues and retry.";

impl From<tonic::Status> for ScimError {
    fn from(status: tonic::Status) -> Self {
        let info = status.get_details_error_info();
        let reason = info.as_ref().map(|i| i.reason.as_str()).unwrap_or_default();
        let retry_after = status
            .get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
            .unwrap_or(RETRY_AFTER_SECS);
        let field = info
            .as_ref()
            .and_then(|i| i.metadata.get("field"))
            .map(|f| scim_attribute(f))
            .unwrap_or("a submitted attribute");
        match (reason, status.code()) {
            ("NOT_FOUND", _) | ("", Code::NotFound) => Self::user_not_found(),
            ("ALREADY_EXISTS", _) | ("", Code::AlreadyExists) => Self::Conflict {
                scim_type: Some(ScimType::Uniqueness),
                detail: match field {
                    "externalId" => "Another user of this account has the same externalId.".into(),
                    _ => "Another user of this account has the same userName.".into(),
                },
            },
            ("INVALID_FILTER", _) => Self::bad_request(
                ScimType::InvalidFilter,
                "The filter is not supported by this service.",
            ),
            ("INVALID_ARGUMENT", _) | ("", Code::InvalidArgument | Code::OutOfRange) => {
                if field == "id" {
                    return Self::user_not_found();
                }
                Self::invalid_value(format!(
                    "The value of {field} is not accepted: {}",
                    status.message()
                ))
            }
            ("MUTABILITY", _) => Self::bad_request(
                ScimType::Mutability,
                format!("{field} cannot be changed this way."),
            ),
            ("VERSION_CONFLICT", _) | ("", Code::Aborted) => Self::PreconditionFailed(
                "The user was changed since the version given in If-Match; fetch it again.".into(),
            ),
            ("UNAUTHENTICATED", _) | ("", Code::Unauthenticated) => {
                Self::Unauthorized(UNAUTHENTICATED_DETAIL.into())
            }
            ("SCIM_DISABLED", _) => Self::Forbidden(SCIM_DISABLED_DETAIL.into()),
            ("PERMISSION_DENIED", _) | ("", Code::PermissionDenied) => {
                Self::Forbidden("This token may not perform this operation.".into())
            }
            ("", Code::FailedPrecondition) => Self::Forbidden(SCIM_DISABLED_DETAIL.into()),
            ("UNAVAILABLE", _)
            | ("", Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled) => {
                Self::Unavailable(
                    "The service is temporarily unavailable; retry after the delay in Retry-After."
                        .into(),
                    retry_after,
                )
            }
            ("RATE_LIMITED", _) | (_, Code::ResourceExhausted) => Self::TooManyRequests(
                "Too many requests; retry after the delay in Retry-After.".into(),
                retry_after,
            ),
            _ => Self::Internal(format!(
                "core error: code {:?}, reason {reason:?}, message {:?}",
                status.code(),
                status.message()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tonic_types::ErrorDetails;

    fn core_error(code: Code, reason: &str, field: Option<&str>) -> tonic::Status {
        let mut details = ErrorDetails::new();
        let metadata: HashMap<String, String> = field
            .map(|f| [("field".to_string(), f.to_string())].into_iter().collect())
            .unwrap_or_default();
        details.set_error_info(reason, provisioning_proto::ERROR_DOMAIN, metadata);
        tonic::Status::with_error_details(code, "core says no", details)
    }

    #[test]
    fn core_reasons_map_to_scim_statuses() {
        let cases = [
            (Code::NotFound, "NOT_FOUND", 404, None),
            (
                Code::AlreadyExists,
                "ALREADY_EXISTS",
                409,
                Some("uniqueness"),
            ),
            (
                Code::InvalidArgument,
                "INVALID_ARGUMENT",
                400,
                Some("invalidValue"),
            ),
            (
                Code::InvalidArgument,
                "INVALID_FILTER",
                400,
                Some("invalidFilter"),
            ),
            (Code::Aborted, "VERSION_CONFLICT", 412, None),
            (Code::Unavailable, "UNAVAILABLE", 503, None),
            (Code::Internal, "INTERNAL", 500, None),
            (Code::Unauthenticated, "UNAUTHENTICATED", 401, None),
            (Code::PermissionDenied, "PERMISSION_DENIED", 403, None),
            (Code::FailedPrecondition, "SCIM_DISABLED", 403, None),
            (Code::ResourceExhausted, "RATE_LIMITED", 429, None),
            (Code::InvalidArgument, "MUTABILITY", 400, Some("mutability")),
        ];
        for (code, reason, http, scim_type) in cases {
            let e = ScimError::from(core_error(code, reason, Some("role")));
            assert_eq!(e.status().as_u16(), http, "{reason}");
            assert_eq!(e.scim_type().map(ScimType::as_str), scim_type, "{reason}");
        }
    }

    #[test]
    fn plain_transport_errors_are_503() {
        let e = ScimError::from(tonic::Status::unavailable("connection refused"));
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        let r = e.into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        assert_eq!(r.headers()[header::CONTENT_TYPE], SCIM_JSON);
    }

    #[test]
    fn retry_after_comes_from_retry_info() {
        let mut details = ErrorDetails::new();
        details.set_error_info(
            "RATE_LIMITED",
            provisioning_proto::ERROR_DOMAIN,
            HashMap::new(),
        );
        details.set_retry_info(Some(std::time::Duration::from_millis(2500)));
        let status =
            tonic::Status::with_error_details(Code::ResourceExhausted, "slow down", details);
        let r = ScimError::from(status).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn internal_errors_are_not_leaked() {
        let e = ScimError::Internal("secret table name".into());
        assert!(!e.public_detail().contains("secret"));
    }

    #[test]
    fn unauthorized_carries_www_authenticate() {
        let r = ScimError::Unauthorized("x".into()).into_response();
        assert!(
            r.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }

    #[test]
    fn body_has_string_status_and_scim_type() {
        let body = error_body(StatusCode::CONFLICT, Some(ScimType::Uniqueness), "dup");
        assert_eq!(
            body,
            json!({"schemas":[ERROR_SCHEMA],"status":"409","scimType":"uniqueness","detail":"dup"})
        );
    }
}
