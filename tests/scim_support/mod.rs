//! Helpers for the SCIM end-to-end tests: an HTTP client bound to one
//! account's token, and assertions on SCIM bodies.
#![allow(dead_code)]

use reqwest::{Method, RequestBuilder, header::HeaderMap};
use serde_json::{Value, json};

use crate::common::{Backend, TestEnv};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// What Okta sends as Content-Type.
pub const OKTA_CONTENT_TYPE: &str = "application/scim+json; charset=utf-8";

/// A server with one account (`acme`) whose SCIM token the client uses.
pub struct Scim {
    pub env: TestEnv,
    pub token: String,
    pub http: reqwest::Client,
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, and that the body is JSON sent as
    /// `application/scim+json`.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/scim+json"),
            "{}",
            self.text
        );
        &self.body
    }

    /// Asserts a SCIM error body (RFC 7644 §3.12) with this status and
    /// `scimType` (`None`: no scimType).
    #[track_caller]
    pub fn expect_error(&self, status: u16, scim_type: Option<&str>) -> &str {
        let body = self.expect(status);
        assert_eq!(body["schemas"], json!([ERROR_SCHEMA]), "{}", self.text);
        assert_eq!(
            body["status"],
            json!(status.to_string()),
            "status must be a string: {}",
            self.text
        );
        assert_eq!(
            body.get("scimType").and_then(Value::as_str),
            scim_type,
            "{}",
            self.text
        );
        let detail = body["detail"].as_str().expect("detail is a string");
        assert!(!detail.is_empty());
        detail
    }
}

impl Scim {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, crate::common::Settings::default()).await
    }

    pub async fn start_with(backend: Backend, settings: crate::common::Settings) -> Self {
        let env = TestEnv::start_with(backend, settings).await;
        let token = env.account_with_token("acme").await;
        Self {
            env,
            token,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.env.scim_base)
    }

    /// A request with this client's token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub async fn send(&self, request: RequestBuilder) -> Reply {
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    /// POST/PUT/PATCH with a JSON body the way Okta sends it.
    pub async fn write(&self, method: Method, path: &str, body: &Value) -> Reply {
        let request = self
            .request(method, path)
            .header("content-type", OKTA_CONTENT_TYPE)
            .body(body.to_string());
        self.send(request).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.write(Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.write(Method::PUT, path, body).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.write(Method::PATCH, path, body).await
    }

    /// Creates a user from Okta's typical body; returns the created resource.
    pub async fn create(&self, user_name: &str, external_id: &str) -> Value {
        let reply = self
            .post("/Users", &okta_user(user_name, external_id))
            .await;
        reply.expect(201).clone()
    }

    /// The user as stored (GET /Users/{id}, asserted 200).
    pub async fn fetch(&self, id: &str) -> Value {
        self.get(&format!("/Users/{id}")).await.expect(200).clone()
    }

    /// The existence check Okta runs before creating a user.
    pub async fn find(&self, user_name: &str) -> Value {
        let filter = format!("userName eq \"{user_name}\"");
        let reply = self
            .send(self.request(
                Method::GET,
                &with_query(
                    "/Users",
                    &[("filter", &filter), ("startIndex", "1"), ("count", "100")],
                ),
            ))
            .await;
        reply.expect(200).clone()
    }
}

/// Okta's typical create body (see shared/OKTA.md).
pub fn okta_user(user_name: &str, external_id: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": "Jane", "familyName": "Doe"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Jane Doe",
        "locale": "en-US",
        "externalId": external_id,
        "groups": [],
        "password": "1mz050nq",
        "active": true
    })
}

/// A PatchOp body.
pub fn patch_op(operations: Value) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": operations})
}

/// The user's id.
pub fn id_of(user: &Value) -> String {
    user["id"].as_str().expect("id").to_owned()
}

/// `meta.version` of a user.
pub fn version_of(user: &Value) -> String {
    user["meta"]["version"]
        .as_str()
        .expect("meta.version")
        .to_owned()
}

/// A user resource without `meta` (to compare what is stored).
pub fn without_meta(user: &Value) -> Value {
    let mut user = user.clone();
    if let Some(map) = user.as_object_mut() {
        map.remove("meta");
    }
    user
}

/// Percent-encodes a query value the way Okta does (`%20` for spaces).
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `path?k=v&...` with encoded values.
pub fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("{path}?{}", query.join("&"))
}
