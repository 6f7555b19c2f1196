//! The SCIM User resource: the core's `User` as JSON, SCIM input read into
//! the core's requests, and `attributes`/`excludedAttributes` projection.
//!
//! Input is read from `serde_json::Value`, attribute names case-insensitive,
//! so unknown attributes and extension schemas never fail parsing.

use chrono::{DateTime, SecondsFormat};
use provisioning_proto::pb;
use serde_json::{Map, Value, json};

use crate::error::ScimError;

/// The core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// `schemas` of list responses.
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// `W/"<version>"`.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

fn timestamp(ts: Option<&prost_types::Timestamp>) -> Option<String> {
    let ts = ts?;
    let nanos = u32::try_from(ts.nanos).ok()?;
    DateTime::from_timestamp(ts.seconds, nanos)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The stored email or phone number as a SCIM multi-valued item.
pub fn contact_item(value: &str) -> Value {
    json!({"value": value, "type": "work", "primary": true})
}

/// The stored role as a SCIM multi-valued item.
pub fn role_item(role: &str, role_type: &str) -> Value {
    let mut item = json!({"value": role, "primary": true});
    if !role_type.is_empty()
        && let Some(map) = item.as_object_mut()
    {
        map.insert("type".into(), role_type.into());
    }
    item
}

/// The SCIM representation of `user`, located at `location`.
pub fn to_resource(user: &pb::User, location: &str) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("schemas".into(), json!([USER_SCHEMA]));
    r.insert("id".into(), user.id.clone().into());
    if !user.external_id.is_empty() {
        r.insert("externalId".into(), user.external_id.clone().into());
    }
    r.insert("userName".into(), user.user_name.clone().into());
    let mut name = Map::new();
    if !user.given_name.is_empty() {
        name.insert("givenName".into(), user.given_name.clone().into());
    }
    if !user.family_name.is_empty() {
        name.insert("familyName".into(), user.family_name.clone().into());
    }
    if !name.is_empty() {
        r.insert("name".into(), Value::Object(name));
    }
    if !user.email.is_empty() {
        r.insert(
            "emails".into(),
            Value::Array(vec![contact_item(&user.email)]),
        );
    }
    if !user.phone_number.is_empty() {
        r.insert(
            "phoneNumbers".into(),
            Value::Array(vec![contact_item(&user.phone_number)]),
        );
    }
    if !user.timezone.is_empty() {
        r.insert("timezone".into(), user.timezone.clone().into());
    }
    if !user.role.is_empty() {
        r.insert(
            "roles".into(),
            Value::Array(vec![role_item(&user.role, &user.role_type)]),
        );
    }
    r.insert("active".into(), user.active.into());
    let mut meta = Map::new();
    meta.insert("resourceType".into(), "User".into());
    if let Some(created) = timestamp(user.created_at.as_ref()) {
        meta.insert("created".into(), created.into());
    }
    if let Some(modified) = timestamp(user.updated_at.as_ref()) {
        meta.insert("lastModified".into(), modified.into());
    }
    meta.insert("location".into(), location.into());
    meta.insert("version".into(), etag(user.version).into());
    r.insert("meta".into(), Value::Object(meta));
    r
}

/// A list response over `resources`.
pub fn list_response(total: i64, start_index: i64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

// ------------------------------------------------------------------ input

/// Attribute `name` of `map`, matched case-insensitively.
pub fn get_ci<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// A string attribute: absent, `null` and `""` are `None`.
pub fn string_attr(value: Option<&Value>, name: &str) -> Result<Option<String>, ScimError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ScimError::invalid_value(format!(
            "{name} must be a string."
        ))),
    }
}

/// A boolean, also accepted as the strings `"true"`/`"false"` (any case).
pub fn bool_value(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A boolean attribute: absent, `null` and `""` are `None`.
pub fn bool_attr(value: Option<&Value>, name: &str) -> Result<Option<bool>, ScimError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(v) => bool_value(v)
            .map(Some)
            .ok_or_else(|| ScimError::invalid_value(format!("{name} must be a boolean."))),
    }
}

/// One value of a multi-valued attribute (emails, phoneNumbers, roles).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Item {
    /// `value`.
    pub value: String,
    /// `type`, if any.
    pub kind: Option<String>,
    /// `primary` (true or `"True"`).
    pub primary: bool,
}

/// The items of a multi-valued attribute. Accepts an array of objects or of
/// plain strings, or a single object or string; `null` is none. Items
/// without a value are dropped.
pub fn items(value: Option<&Value>, name: &str) -> Result<Vec<Item>, ScimError> {
    let bad = || {
        ScimError::invalid_value(format!(
            "{name} must be an array of objects with a string value."
        ))
    };
    let one = |v: &Value| -> Result<Option<Item>, ScimError> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(s) => Ok(Some(Item {
                value: s.clone(),
                kind: None,
                primary: false,
            })),
            Value::Object(map) => {
                let value = string_attr(get_ci(map, "value"), name).map_err(|_| bad())?;
                let kind = string_attr(get_ci(map, "type"), name).map_err(|_| bad())?;
                let primary = match get_ci(map, "primary") {
                    None | Some(Value::Null) => false,
                    Some(p) => bool_value(p).ok_or_else(bad)?,
                };
                Ok(value.map(|value| Item {
                    value,
                    kind,
                    primary,
                }))
            }
            _ => Err(bad()),
        }
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => {
            let mut out = Vec::with_capacity(list.len());
            for v in list {
                out.extend(one(v)?);
            }
            Ok(out)
        }
        Some(v) => Ok(one(v)?.into_iter().collect()),
    }
}

/// The item to store: the primary one, else the first of type `work`, else
/// the first.
pub fn select(items: &[Item]) -> Option<&Item> {
    items
        .iter()
        .find(|i| i.primary)
        .or_else(|| {
            items.iter().find(|i| {
                i.kind
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case("work"))
            })
        })
        .or_else(|| items.first())
}

/// The role of a `roles` attribute: the primary value, else the first.
pub fn select_role(items: &[Item]) -> Option<&Item> {
    items.iter().find(|i| i.primary).or_else(|| items.first())
}

/// Reads a POST /Users body into the core's request. `password` and every
/// attribute the service does not keep are dropped here.
pub fn create_request(body: &Map<String, Value>) -> Result<pb::CreateUserRequest, ScimError> {
    let user_name = string_attr(get_ci(body, "userName"), "userName")?
        .ok_or_else(|| ScimError::invalid_value("userName is required."))?;
    let external_id = string_attr(get_ci(body, "externalId"), "externalId")?.unwrap_or_default();
    let (given_name, family_name) = match get_ci(body, "name") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(name)) => (
            string_attr(get_ci(name, "givenName"), "name.givenName")?,
            string_attr(get_ci(name, "familyName"), "name.familyName")?,
        ),
        Some(_) => return Err(ScimError::invalid_value("name must be an object.")),
    };
    let emails = items(get_ci(body, "emails"), "emails")?;
    let phones = items(get_ci(body, "phoneNumbers"), "phoneNumbers")?;
    let roles = items(get_ci(body, "roles"), "roles")?;
    let role = select_role(&roles);
    Ok(pb::CreateUserRequest {
        account: String::new(),
        user_name,
        external_id,
        given_name: given_name.unwrap_or_default(),
        family_name: family_name.unwrap_or_default(),
        email: select(&emails).map(|i| i.value.clone()).unwrap_or_default(),
        phone_number: select(&phones).map(|i| i.value.clone()).unwrap_or_default(),
        timezone: string_attr(get_ci(body, "timezone"), "timezone")?.unwrap_or_default(),
        role: role.map(|i| i.value.clone()).unwrap_or_default(),
        role_type: role.and_then(|i| i.kind.clone()).unwrap_or_default(),
        active: bool_attr(get_ci(body, "active"), "active")?,
        unique_external_id: true,
    })
}

/// What a PUT may change: only these four; everything else is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// New userName.
    pub user_name: Option<String>,
    /// New email.
    pub email: Option<String>,
    /// New role and its type (`""` for none).
    pub role: Option<(String, String)>,
    /// New active flag.
    pub active: Option<bool>,
}

impl Changes {
    /// The core's update request for user `id`.
    pub fn into_request(self, id: &str, expected_version: Option<i64>) -> pb::UpdateUserRequest {
        let (role, role_type) = match self.role {
            Some((r, t)) => (Some(r), Some(t)),
            None => (None, None),
        };
        pb::UpdateUserRequest {
            account: String::new(),
            id: id.to_string(),
            user_name: self.user_name,
            email: self.email,
            role,
            role_type,
            active: self.active,
            expected_version,
            lenient: true,
        }
    }
}

/// Reads a PUT /Users/{id} body. Omitted (or `null`, `""`, empty) userName,
/// emails, roles and active keep the stored values. When the body sets
/// `active`, malformed values of the other attributes are ignored, so a
/// deactivation never fails because of a stale profile.
pub fn replace_changes(body: &Map<String, Value>) -> Result<Changes, ScimError> {
    let active = bool_attr(get_ci(body, "active"), "active")?;
    let lenient = active.is_some();
    let user_name = tolerate(lenient, string_attr(get_ci(body, "userName"), "userName"))?;
    let email = tolerate(
        lenient,
        items(get_ci(body, "emails"), "emails").map(|list| select(&list).map(|i| i.value.clone())),
    )?;
    let role = tolerate(
        lenient,
        items(get_ci(body, "roles"), "roles").map(|list| {
            select_role(&list).map(|i| (i.value.clone(), i.kind.clone().unwrap_or_default()))
        }),
    )?;
    Ok(Changes {
        user_name,
        email,
        role,
        active,
    })
}

/// `result`, with errors read as "absent" when `lenient`.
fn tolerate<T>(
    lenient: bool,
    result: Result<Option<T>, ScimError>,
) -> Result<Option<T>, ScimError> {
    match result {
        Err(_) if lenient => Ok(None),
        other => other,
    }
}

// ------------------------------------------------------------- projection

const CORE_URN_PREFIX: &str = "urn:ietf:params:scim:schemas:core:2.0:user:";

/// One entry of `attributes` / `excludedAttributes`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AttrRef {
    top: String,
    sub: Option<String>,
}

fn parse_attr_list(list: &str) -> Vec<AttrRef> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            let lower = a.to_ascii_lowercase();
            let name = lower
                .strip_prefix(CORE_URN_PREFIX)
                .map(str::to_string)
                .unwrap_or(lower);
            match name.split_once('.') {
                Some((top, sub)) => AttrRef {
                    top: top.into(),
                    sub: Some(sub.into()),
                },
                None => AttrRef {
                    top: name,
                    sub: None,
                },
            }
        })
        .collect()
}

/// `attributes` / `excludedAttributes` of a request (RFC 7644 §3.4.2.5).
#[derive(Debug, Clone, Default)]
pub struct Projection {
    include: Option<Vec<AttrRef>>,
    exclude: Vec<AttrRef>,
}

impl Projection {
    /// From the comma-separated lists of a query string.
    pub fn new(attributes: Option<&str>, excluded: Option<&str>) -> Self {
        Self {
            include: attributes.map(parse_attr_list).filter(|l| !l.is_empty()),
            exclude: excluded.map(parse_attr_list).unwrap_or_default(),
        }
    }

    /// Whether the projection leaves resources unchanged.
    pub fn is_identity(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty()
    }

    /// Applies the projection. `id` and `schemas` are always returned.
    pub fn apply(&self, resource: &mut Map<String, Value>) {
        if self.is_identity() {
            return;
        }
        let always = |k: &str| k == "id" || k == "schemas";
        if let Some(include) = &self.include {
            resource.retain(|key, value| {
                if always(key) {
                    return true;
                }
                let key = key.to_ascii_lowercase();
                let refs: Vec<&AttrRef> = include.iter().filter(|r| r.top == key).collect();
                if refs.is_empty() {
                    return false;
                }
                if refs.iter().all(|r| r.sub.is_some()) {
                    let subs: Vec<&str> = refs.iter().filter_map(|r| r.sub.as_deref()).collect();
                    retain_subs(value, |s| subs.contains(&s));
                }
                true
            });
        }
        for r in &self.exclude {
            let keys: Vec<String> = resource
                .keys()
                .filter(|k| !always(k) && k.eq_ignore_ascii_case(&r.top))
                .cloned()
                .collect();
            for key in keys {
                match &r.sub {
                    None => {
                        resource.remove(&key);
                    }
                    Some(sub) => {
                        if let Some(value) = resource.get_mut(&key) {
                            retain_subs(value, |s| s != sub);
                        }
                    }
                }
            }
        }
    }
}

/// Keeps the sub-attributes (lower-cased names) for which `keep` holds, in an
/// object or in each object of an array.
fn retain_subs(value: &mut Value, keep: impl Fn(&str) -> bool) {
    let keep_in = |map: &mut Map<String, Value>| map.retain(|k, _| keep(&k.to_ascii_lowercase()));
    match value {
        Value::Object(map) => keep_in(map),
        Value::Array(list) => list
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .for_each(keep_in),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn stored() -> pb::User {
        pb::User {
            id: "0190-1".into(),
            account: "acme".into(),
            user_name: "jane@example.com".into(),
            external_id: "00u1".into(),
            given_name: "Jane".into(),
            family_name: "Doe".into(),
            email: "jane@example.com".into(),
            phone_number: "+1 555".into(),
            timezone: "Europe/Paris".into(),
            role: "admin".into(),
            role_type: "Okta".into(),
            active: true,
            created_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            updated_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_001,
                nanos: 500_000_000,
            }),
            version: 3,
        }
    }

    #[test]
    fn resource_shape() {
        let r = Value::Object(to_resource(&stored(), "https://x/scim/v2/Users/0190-1"));
        assert_eq!(
            r,
            json!({
                "schemas": [USER_SCHEMA],
                "id": "0190-1",
                "externalId": "00u1",
                "userName": "jane@example.com",
                "name": {"givenName": "Jane", "familyName": "Doe"},
                "emails": [{"value": "jane@example.com", "type": "work", "primary": true}],
                "phoneNumbers": [{"value": "+1 555", "type": "work", "primary": true}],
                "timezone": "Europe/Paris",
                "roles": [{"value": "admin", "primary": true, "type": "Okta"}],
                "active": true,
                "meta": {
                    "resourceType": "User",
                    "created": "2023-11-14T22:13:20.000Z",
                    "lastModified": "2023-11-14T22:13:21.500Z",
                    "location": "https://x/scim/v2/Users/0190-1",
                    "version": "W/\"3\"",
                }
            })
        );
    }

    #[test]
    fn okta_create_body() {
        let body = obj(json!({
            "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "userName": "jane@example.com",
            "name": {"givenName": "Jane", "familyName": "Doe"},
            "emails": [{"primary": true, "value": "jane@example.com", "type": "work"}],
            "displayName": "Jane Doe", "locale": "en-US", "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [], "password": "1mz050nq", "active": true,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "x"},
            "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}, {"value": "+1 555 0199", "type": "work"}],
            "roles": [{"value": "admin", "primary": "True", "type": "Okta"}],
            "timezone": "America/New_York"
        }));
        let req = create_request(&body).unwrap();
        assert_eq!(req.user_name, "jane@example.com");
        assert_eq!(req.external_id, "00ujl29u0le5T6Aj10h7");
        assert_eq!(
            (req.given_name.as_str(), req.family_name.as_str()),
            ("Jane", "Doe")
        );
        assert_eq!(req.email, "jane@example.com");
        assert_eq!(req.phone_number, "+1 555 0199");
        assert_eq!(
            (req.role.as_str(), req.role_type.as_str()),
            ("admin", "Okta")
        );
        assert_eq!(req.timezone, "America/New_York");
        assert_eq!(req.active, Some(true));
        assert!(req.unique_external_id);
        assert!(!format!("{req:?}").contains("1mz050nq"));
    }

    #[test]
    fn roles_as_strings_and_selection_rules() {
        let body = obj(
            json!({"userName": "a", "roles": ["rep", "admin"], "emails": [
                {"value": "first@x"}, {"value": "work@x", "type": "Work"}, {"value": "p@x", "primary": "true", "type": "home"}
            ]}),
        );
        let req = create_request(&body).unwrap();
        assert_eq!(req.role, "rep");
        assert_eq!(req.role_type, "");
        assert_eq!(req.email, "p@x");
        let body = obj(
            json!({"userName": "a", "emails": [{"value": "first@x"}, {"value": "work@x", "type": "work"}]}),
        );
        assert_eq!(create_request(&body).unwrap().email, "work@x");
        let body = obj(json!({"userName": "a", "emails": [{"value": "first@x"}]}));
        assert_eq!(create_request(&body).unwrap().email, "first@x");
        let body = obj(
            json!({"userName": "a", "roles": [{"value": "x"}, {"value": "admin", "primary": true}]}),
        );
        assert_eq!(create_request(&body).unwrap().role, "admin");
        let body = obj(json!({"username": "a", "ACTIVE": "False"}));
        let req = create_request(&body).unwrap();
        assert_eq!((req.user_name.as_str(), req.active), ("a", Some(false)));
    }

    #[test]
    fn create_type_errors_do_not_echo() {
        for body in [
            json!({"userName": 5}),
            json!({"userName": "a", "emails": 7}),
            json!({"userName": "a", "active": "secret-value-1"}),
            json!({"userName": "a", "name": "secret-value-1"}),
            json!({"userName": "a", "roles": [{"value": {"x": "secret-value-1"}}]}),
            json!({"name": {"givenName": "x"}}),
        ] {
            let e = create_request(&obj(body)).unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
            assert!(!e.to_string().contains("secret-value-1"));
        }
    }

    #[test]
    fn put_keeps_omitted_values() {
        let c = replace_changes(&obj(
            json!({"userName": "a@x", "emails": [], "roles": null, "active": ""}),
        ))
        .unwrap();
        assert_eq!(
            c,
            Changes {
                user_name: Some("a@x".into()),
                ..Changes::default()
            }
        );
        let c = replace_changes(&obj(
            json!({"userName": "a@x", "emails": [{"value": "b@x", "primary": true}],
            "roles": [{"value": "admin", "primary": true}], "active": false}),
        ))
        .unwrap();
        assert_eq!(c.email.as_deref(), Some("b@x"));
        assert_eq!(c.role, Some(("admin".into(), String::new())));
        assert_eq!(c.active, Some(false));
    }

    #[test]
    fn put_with_active_tolerates_bad_values() {
        let c =
            replace_changes(&obj(json!({"userName": 5, "emails": 7, "active": false}))).unwrap();
        assert_eq!(
            c,
            Changes {
                active: Some(false),
                ..Changes::default()
            }
        );
        assert!(replace_changes(&obj(json!({"userName": 5}))).is_err());
        assert!(replace_changes(&obj(json!({"active": 5}))).is_err());
    }

    #[test]
    fn projection() {
        let full = to_resource(&stored(), "loc");
        let mut r = full.clone();
        Projection::new(Some("userName,emails.value"), None).apply(&mut r);
        assert_eq!(
            Value::Object(r),
            json!({"schemas": [USER_SCHEMA], "id": "0190-1", "userName": "jane@example.com",
                   "emails": [{"value": "jane@example.com"}]})
        );
        let mut r = full.clone();
        Projection::new(
            None,
            Some("urn:ietf:params:scim:schemas:core:2.0:User:meta,name.familyName,id"),
        )
        .apply(&mut r);
        assert!(!r.contains_key("meta"));
        assert!(r.contains_key("id"));
        assert_eq!(r["name"], json!({"givenName": "Jane"}));
        assert!(Projection::new(Some(""), None).is_identity());
    }
}
