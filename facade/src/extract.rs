//! Extractors that answer with SCIM errors instead of axum's plain-text
//! rejections: the JSON body, the bearer token, `If-Match`, the base URL and
//! the query string.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    middleware::Next,
    response::Response,
};
use serde_json::{Map, Value};
use tonic::metadata::{Ascii, MetadataValue};
use tracing::Instrument as _;

use crate::{
    AppState,
    error::{ScimError, ScimType},
};

/// How long the client may take to send the request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A request body that is a JSON object, sent as `application/scim+json`,
/// `application/json` or without a `Content-Type`.
#[derive(Debug)]
pub struct ScimBody(pub Map<String, Value>);

/// Whether a `Content-Type` value is one the service accepts.
pub fn content_type_accepted(value: Option<&str>) -> bool {
    let Some(value) = value else { return true };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.is_empty()
        || essence.eq_ignore_ascii_case("application/scim+json")
        || essence.eq_ignore_ascii_case("application/json")
}

impl<S: Send + Sync> FromRequest<S> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = match req.headers().get(header::CONTENT_TYPE) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| unsupported_media_type())?),
        };
        if !content_type_accepted(content_type) {
            return Err(unsupported_media_type());
        }
        let bytes = tokio::time::timeout(BODY_READ_TIMEOUT, Bytes::from_request(req, state))
            .await
            .map_err(|_| {
                ScimError::RequestTimeout("The request body did not arrive in time.".into())
            })?
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    payload_too_large()
                } else {
                    ScimError::invalid_syntax("The request body could not be read.")
                }
            })?;
        parse_object(&bytes).map(Self)
    }
}

/// Parses `bytes` as a JSON object; the error never quotes the input.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ScimError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ScimError::invalid_syntax(
            "The request body is empty; a JSON object is required.",
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ScimError::invalid_syntax(
            "The request body must be a JSON object.",
        )),
        Err(e) => {
            let what = match e.classify() {
                serde_json::error::Category::Eof => "ends too early",
                _ if e.to_string().contains("recursion limit") => "is nested too deeply",
                _ => "is not valid JSON",
            };
            Err(ScimError::invalid_syntax(format!(
                "The request body {what} (line {}, column {}).",
                e.line(),
                e.column()
            )))
        }
    }
}

/// The 413 for bodies over the limit.
pub fn payload_too_large() -> ScimError {
    ScimError::PayloadTooLarge(
        "The request body is larger than the 1 MiB this service accepts.".into(),
    )
}

/// The 415 for unknown media types.
pub fn unsupported_media_type() -> ScimError {
    ScimError::UnsupportedMediaType(
        "Send the body as application/scim+json or application/json.".into(),
    )
}

/// Who is calling: the credential as the gRPC `authorization` metadata value
/// (`Bearer <token>`), the request id and the client's address, all passed
/// on to the core. Deliberately not `Debug`.
#[derive(Clone)]
pub struct Caller {
    /// `Bearer <token>`.
    pub authorization: MetadataValue<Ascii>,
    /// The request's id (see [`request_id`]).
    pub request_id: MetadataValue<Ascii>,
    /// The HTTP client's IP address, for the core's failed-authentication limit.
    pub client_ip: Option<MetadataValue<Ascii>>,
}

/// Reads the token out of an `Authorization` header value.
pub fn parse_bearer(header: Option<&str>) -> Result<&str, ScimError> {
    let Some(value) = header else {
        return Err(ScimError::Unauthorized(
            "No Authorization header: send `Authorization: Bearer <SCIM token>`.".into(),
        ));
    };
    let value = value.trim();
    let token = strip_scheme(value).ok_or_else(|| {
        ScimError::Unauthorized(
            "The Authorization header must use the Bearer scheme: `Authorization: Bearer <SCIM token>`."
                .into(),
        )
    })?;
    if strip_scheme(token).is_some() || token.eq_ignore_ascii_case("bearer") {
        return Err(ScimError::Unauthorized(
            "The token starts with the word \"Bearer\", so the header read \"Bearer Bearer ...\". \
             Paste the token alone, without the word Bearer, into the API token field: the \
             client adds the word itself."
                .into(),
        ));
    }
    if token.is_empty() {
        return Err(ScimError::Unauthorized(
            "The bearer token is empty: paste the SCIM token into the API token field.".into(),
        ));
    }
    Ok(token)
}

/// `value` without a leading `Bearer ` (any case), trimmed.
fn strip_scheme(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(char::is_whitespace)?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_start())
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| invalid_token())?),
        };
        let token = parse_bearer(header)?;
        let authorization =
            MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| invalid_token())?;
        let request_id = parts
            .headers
            .get(REQUEST_ID)
            .and_then(|v| MetadataValue::try_from(v.as_bytes()).ok())
            .unwrap_or_else(|| MetadataValue::from_static("unknown"));
        let trust_forwarded = AppState::from_ref(state).config.trust_forwarded_headers;
        let client_ip = client_ip(parts, trust_forwarded)
            .and_then(|ip| MetadataValue::try_from(ip.to_string()).ok());
        Ok(Self {
            authorization,
            request_id,
            client_ip,
        })
    }
}

/// The client's address: the last `X-Forwarded-For` entry (the one your
/// proxy added) when forwarded headers are trusted, else the peer.
fn client_ip(parts: &Parts, trust_forwarded: bool) -> Option<IpAddr> {
    let forwarded = trust_forwarded
        .then(|| {
            parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|v| v.trim().parse::<IpAddr>().ok())
                .next_back()
        })
        .flatten();
    forwarded.or_else(|| {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
    })
}

/// The request-id header.
pub const REQUEST_ID: &str = "x-request-id";

/// Middleware: gives every request an `X-Request-Id` (the client's, when it
/// is short and plain, else a new UUID), passed to the core and echoed in
/// the response.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
        })
        .cloned()
        .or_else(|| HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).ok());
    let Some(id) = id else {
        return next.run(request).await;
    };
    request.headers_mut().insert(REQUEST_ID, id.clone());
    // Every log line of the request carries its id (and so does the audit
    // event it causes: the core records the `x-request-id` it is sent).
    let span = tracing::info_span!(
        "scim",
        request_id = %String::from_utf8_lossy(id.as_bytes()),
        method = %request.method(),
        path = %request.uri().path(),
    );
    let mut response = async move {
        let response = next.run(request).await;
        tracing::debug!(status = response.status().as_u16(), "handled");
        response
    }
    .instrument(span)
    .await;
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

fn invalid_token() -> ScimError {
    ScimError::from(tonic::Status::unauthenticated(""))
}

/// The `If-Match` precondition of a PUT or PATCH.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IfMatch {
    /// No header.
    #[default]
    Absent,
    /// `*`: any stored version.
    Any,
    /// A list of entity tags: each a version, or `None` for tags that are no
    /// version of ours (they match nothing).
    Versions(Vec<Option<i64>>),
}

impl IfMatch {
    /// Parses every `If-Match` header of a request.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut versions = Vec::new();
        let mut present = false;
        for value in headers.get_all(header::IF_MATCH) {
            present = true;
            let Ok(value) = value.to_str() else {
                versions.push(None);
                continue;
            };
            for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if tag == "*" {
                    return Self::Any;
                }
                let tag = tag
                    .strip_prefix("W/")
                    .or_else(|| tag.strip_prefix("w/"))
                    .unwrap_or(tag);
                let tag = tag.trim_matches('"');
                versions.push(tag.parse::<i64>().ok());
            }
        }
        if present {
            Self::Versions(versions)
        } else {
            Self::Absent
        }
    }

    /// Whether the precondition holds for the stored `version`.
    pub fn matches(&self, version: i64) -> bool {
        match self {
            Self::Absent | Self::Any => true,
            Self::Versions(list) => list.contains(&Some(version)),
        }
    }

    /// The single version the client named, when it named exactly one.
    pub fn single(&self) -> Option<i64> {
        match self {
            Self::Versions(list) if list.len() == 1 => list[0],
            _ => None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

/// The base URL of the SCIM API, e.g. `https://scim.example.com/scim/v2`.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl BaseUrl {
    /// The URL of a user.
    pub fn user(&self, id: &str) -> String {
        format!("{}/Users/{id}", self.0)
    }
}

/// The SCIM base for `public_url` (with or without `/scim/v2` at its end).
pub fn base_from_public_url(public_url: &str) -> String {
    let trimmed = public_url.trim().trim_end_matches('/');
    if trimmed.ends_with("/scim/v2") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/scim/v2")
    }
}

/// The SCIM base computed from request headers.
pub fn base_from_headers(headers: &HeaderMap, trust_forwarded: bool, tls: bool) -> String {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic()))
    };
    let forwarded_proto = trust_forwarded
        .then(|| first("x-forwarded-proto"))
        .flatten()
        .filter(|p| p.eq_ignore_ascii_case("https") || p.eq_ignore_ascii_case("http"));
    let forwarded_host = trust_forwarded.then(|| first("x-forwarded-host")).flatten();
    let scheme = forwarded_proto
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| if tls { "https" } else { "http" }.to_string());
    let host = forwarded_host
        .or_else(|| first("host"))
        .unwrap_or("localhost");
    format!("{scheme}://{host}/scim/v2")
}

/// Marks a request that arrived over TLS (inserted by the TLS server).
#[derive(Debug, Clone, Copy)]
pub struct ArrivedOverTls;

impl<S> FromRequestParts<S> for BaseUrl
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        Ok(Self(match &state.public_base {
            Some(base) => base.clone(),
            None => base_from_headers(
                &parts.headers,
                state.config.trust_forwarded_headers,
                parts.extensions.get::<ArrivedOverTls>().is_some(),
            ),
        }))
    }
}

/// The query string's parameters, form-decoded (`+` is a space), with
/// names matched case-insensitively.
#[derive(Debug, Default)]
pub struct QueryParams(pub Vec<(String, String)>);

impl QueryParams {
    /// Decodes a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of parameter `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::parse(parts.uri.query()))
    }
}

/// Parses a paging number: digits with an optional sign; values past the
/// range of `i64` saturate. Anything else is 400 `invalidValue`.
pub fn parse_paging_number(name: &str, value: &str) -> Result<i64, ScimError> {
    let v = value.trim();
    let digits = v.strip_prefix(['-', '+']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScimError::bad_request(
            ScimType::InvalidValue,
            format!("{name} must be an integer."),
        ));
    }
    Ok(v.parse::<i64>().unwrap_or(if v.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert!(content_type_accepted(None));
        assert!(content_type_accepted(Some(
            "application/scim+json; charset=utf-8"
        )));
        assert!(content_type_accepted(Some("Application/JSON")));
        assert!(content_type_accepted(Some(
            "application/json;charset=UTF-8"
        )));
        assert!(!content_type_accepted(Some("text/plain")));
        assert!(!content_type_accepted(Some(
            "application/x-www-form-urlencoded"
        )));
        assert!(!content_type_accepted(Some("application/xml")));
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(parse_bearer(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(parse_bearer(Some("bearer   abc ")).unwrap(), "abc");
        let e = parse_bearer(Some("Bearer Bearer abc")).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        assert!(e.to_string().contains("without the word Bearer"));
        assert!(!e.to_string().contains("abc"));
        assert!(parse_bearer(None).is_err());
        assert!(parse_bearer(Some("Basic dXNlcjpwYXNz")).is_err());
        assert!(parse_bearer(Some("Bearer")).is_err());
        assert!(parse_bearer(Some("Bearer ")).is_err());
        assert!(parse_bearer(Some("abc")).is_err());
    }

    #[test]
    fn if_match_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(IfMatch::from_headers(&h), IfMatch::Absent);
        h.insert(header::IF_MATCH, HeaderValue::from_static("W/\"3\""));
        let m = IfMatch::from_headers(&h);
        assert!(m.matches(3) && !m.matches(4));
        assert_eq!(m.single(), Some(3));
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"1\", W/\"4\""));
        let m = IfMatch::from_headers(&h);
        assert!(m.matches(4) && m.matches(1) && !m.matches(2));
        assert_eq!(m.single(), None);
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(IfMatch::from_headers(&h), IfMatch::Any);
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"abc\""));
        assert!(!IfMatch::from_headers(&h).matches(1));
    }

    #[test]
    fn client_addresses() {
        let request = axum::http::Request::builder()
            .header("x-forwarded-for", "203.0.113.9, 198.51.100.7")
            .extension(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000))))
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        assert_eq!(client_ip(&parts, false), Some(IpAddr::from([10, 0, 0, 1])));
        assert_eq!(
            client_ip(&parts, true),
            Some(IpAddr::from([198, 51, 100, 7]))
        );
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            base_from_public_url("https://x.example/"),
            "https://x.example/scim/v2"
        );
        assert_eq!(
            base_from_public_url("https://x.example/scim/v2/"),
            "https://x.example/scim/v2"
        );
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("svc:8080"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-host", HeaderValue::from_static("edge.example"));
        assert_eq!(
            base_from_headers(&h, false, false),
            "http://svc:8080/scim/v2"
        );
        assert_eq!(
            base_from_headers(&h, false, true),
            "https://svc:8080/scim/v2"
        );
        assert_eq!(
            base_from_headers(&h, true, false),
            "https://edge.example/scim/v2"
        );
    }

    #[test]
    fn query_plus_is_space() {
        let q = QueryParams::parse(Some("filter=userName+eq+%22a%40b.c%22&StartIndex=1"));
        assert_eq!(q.get("filter"), Some("userName eq \"a@b.c\""));
        assert_eq!(q.get("startIndex"), Some("1"));
        let q = QueryParams::parse(Some("filter=userName%20eq%20%22a%2Bb%40c.d%22"));
        assert_eq!(q.get("filter"), Some("userName eq \"a+b@c.d\""));
    }

    #[test]
    fn paging_numbers() {
        assert_eq!(parse_paging_number("count", "10").unwrap(), 10);
        assert_eq!(parse_paging_number("count", "-5").unwrap(), -5);
        assert_eq!(
            parse_paging_number("count", "99999999999999999999999").unwrap(),
            i64::MAX
        );
        assert!(parse_paging_number("count", "ten").is_err());
        assert!(parse_paging_number("count", "").is_err());
        assert!(parse_paging_number("count", "1.5").is_err());
    }

    #[test]
    fn json_errors_do_not_echo_input() {
        let e = parse_object(br#"{"password": "hunter2"#).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        let e = parse_object(br#"{"password": hunter2}"#).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        assert!(parse_object(b"[1]").is_err());
        assert!(parse_object(b"").is_err());
        let deep = "[".repeat(10_000);
        assert_eq!(
            parse_object(deep.as_bytes()).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        assert!(parse_object(b"{\"a\":\"\xff\"}").is_err());
    }
}
