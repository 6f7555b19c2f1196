//! PATCH (RFC 7644 §3.5.2) applied to an in-memory model of the four
//! attributes that can change after creation; the caller then sends the
//! difference to the core in one `UpdateUser`.
//!
//! Dialects accepted: ops in any case (`Replace`), path-less `value` objects
//! (with dotted and URN-qualified keys), URN-prefixed paths, value-path
//! filters (`emails[type eq "work"].value`), booleans as strings (`"False"`).
//! Other attributes are accepted and ignored, as on PUT.

use provisioning_proto::pb;
use serde_json::{Map, Value};

use crate::{
    error::{ScimError, ScimType},
    filter::{self, Expr, PatchPath},
    user::{Changes, bool_value, contact_item, get_ci, items, role_item, select, select_role},
};

/// Most operations accepted in one PATCH request.
pub const MAX_OPERATIONS: usize = 100;

const CORE_USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// The attributes a PATCH can change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// `userName`.
    pub user_name: String,
    /// The stored email (`""` for none).
    pub email: String,
    /// The role (`""` resets to the account's default).
    pub role: String,
    /// The role's type.
    pub role_type: String,
    /// `active`.
    pub active: bool,
}

impl From<&pb::User> for Model {
    fn from(u: &pb::User) -> Self {
        Self {
            user_name: u.user_name.clone(),
            email: u.email.clone(),
            role: u.role.clone(),
            role_type: u.role_type.clone(),
            active: u.active,
        }
    }
}

impl Model {
    /// What changed from `before` to `self`.
    pub fn changes_from(&self, before: &Model) -> Changes {
        Changes {
            user_name: (self.user_name != before.user_name).then(|| self.user_name.clone()),
            email: (self.email != before.email).then(|| self.email.clone()),
            role: (self.role != before.role || self.role_type != before.role_type)
                .then(|| (self.role.clone(), self.role_type.clone())),
            active: (self.active != before.active).then_some(self.active),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// What a path or key addresses.
#[derive(Debug)]
struct Target {
    /// Lower-case attribute name; `None` for attributes of other schemas.
    attr: Option<String>,
    filter: Option<Expr>,
    /// Lower-case sub-attribute.
    sub: Option<String>,
}

impl Target {
    fn from_path(path: PatchPath) -> Self {
        let in_core_schema = match &path.attr.urn {
            None => true,
            Some(urn) => urn.eq_ignore_ascii_case(CORE_USER_URN),
        };
        let sub = path
            .sub_attr
            .or(path.attr.sub_attr)
            .map(|s| s.to_ascii_lowercase());
        Self {
            attr: in_core_schema.then(|| path.attr.attr.to_ascii_lowercase()),
            filter: path.filter,
            sub,
        }
    }
}

/// Validates a PATCH body and applies its operations to `model`. Nothing is
/// applied when any operation is invalid (the caller discards `model`).
pub fn apply_patch(model: &mut Model, body: &Map<String, Value>) -> Result<(), ScimError> {
    let ops = match get_ci(body, "Operations") {
        Some(Value::Array(ops)) => ops,
        Some(_) => return Err(ScimError::invalid_syntax("Operations must be an array.")),
        None => return Err(ScimError::invalid_syntax("Operations is required.")),
    };
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("Operations must not be empty."));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::bad_request(
            ScimType::TooMany,
            format!("A PATCH request may carry at most {MAX_OPERATIONS} operations."),
        ));
    }
    for (index, op) in ops.iter().enumerate() {
        apply_operation(model, op).map_err(|e| match e {
            ScimError::BadRequest { scim_type, detail } => ScimError::BadRequest {
                scim_type,
                detail: format!("Operation {}: {detail}", index + 1),
            },
            other => other,
        })?;
    }
    Ok(())
}

fn apply_operation(model: &mut Model, op: &Value) -> Result<(), ScimError> {
    let Value::Object(op) = op else {
        return Err(ScimError::invalid_syntax(
            "each operation must be an object.",
        ));
    };
    let kind = match get_ci(op, "op") {
        Some(Value::String(s)) if s.eq_ignore_ascii_case("add") => Op::Add,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("replace") => Op::Replace,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("remove") => Op::Remove,
        Some(_) => {
            return Err(ScimError::invalid_syntax(
                "op must be \"add\", \"replace\" or \"remove\".",
            ));
        }
        None => return Err(ScimError::invalid_syntax("op is required.")),
    };
    let path = match get_ci(op, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(ScimError::bad_request(
                ScimType::InvalidPath,
                "path must be a string.",
            ));
        }
    };
    let value = get_ci(op, "value").filter(|v| !v.is_null());
    match (path, kind) {
        (None, Op::Remove) => Err(ScimError::bad_request(
            ScimType::NoTarget,
            "remove needs a path.",
        )),
        (None, _) => {
            let Some(Value::Object(values)) = value else {
                return Err(ScimError::invalid_value(
                    "an operation without a path needs an object value.",
                ));
            };
            for (key, v) in values {
                // Keys that are no attribute path are attributes we do not keep.
                if let Ok(path) = filter::parse_patch_path(key) {
                    apply_target(model, kind, &Target::from_path(path), Some(v))?;
                }
            }
            Ok(())
        }
        (Some(path), _) => {
            let path = filter::parse_patch_path(path).map_err(|e| {
                ScimError::bad_request(ScimType::InvalidPath, format!("invalid path: {e}"))
            })?;
            if kind != Op::Remove && value.is_none() {
                return Err(ScimError::invalid_value("add and replace need a value."));
            }
            apply_target(model, kind, &Target::from_path(path), value)
        }
    }
}

fn apply_target(
    model: &mut Model,
    op: Op,
    target: &Target,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let Some(attr) = target.attr.as_deref() else {
        return Ok(()); // an extension schema: not kept
    };
    let value = value.filter(|v| !v.is_null());
    match attr {
        "active" => {
            if target.filter.is_some() {
                return Err(not_multi_valued("active"));
            }
            match (op, value) {
                (Op::Remove, _) | (_, None) => Ok(()),
                (_, Some(v)) => {
                    model.active = bool_value(v)
                        .ok_or_else(|| ScimError::invalid_value("active must be a boolean."))?;
                    Ok(())
                }
            }
        }
        "username" => {
            if target.filter.is_some() {
                return Err(not_multi_valued("userName"));
            }
            match (op, value) {
                (Op::Remove, _) => Err(ScimError::bad_request(
                    ScimType::Mutability,
                    "userName is required and cannot be removed.",
                )),
                (_, Some(Value::String(s))) if !s.is_empty() => {
                    model.user_name.clone_from(s);
                    Ok(())
                }
                _ => Err(ScimError::invalid_value(
                    "userName must be a non-empty string.",
                )),
            }
        }
        "emails" => apply_emails(model, op, target, value),
        "roles" => apply_roles(model, op, target, value),
        // Every other attribute is accepted and ignored after creation.
        _ => Ok(()),
    }
}

fn not_multi_valued(name: &str) -> ScimError {
    ScimError::bad_request(
        ScimType::InvalidPath,
        format!("{name} is not multi-valued: a value filter cannot apply to it."),
    )
}

fn filter_matches(filter: Option<&Expr>, item: Option<Value>) -> bool {
    match (filter, item) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(f), Some(item)) => filter::matches_item(f, &item),
    }
}

fn apply_emails(
    model: &mut Model,
    op: Op,
    target: &Target,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if op == Op::Remove {
        return Err(ScimError::bad_request(
            ScimType::Mutability,
            "emails cannot be removed: the service keeps one email per user. Replace it instead.",
        ));
    }
    let current = (!model.email.is_empty()).then(|| contact_item(&model.email));
    let addressed = current.is_none() || filter_matches(target.filter.as_ref(), current);
    if !addressed {
        // Another email than the one kept: accepted and ignored.
        return Ok(());
    }
    match target.sub.as_deref() {
        None => {
            let list = items(value, "emails")?;
            if let Some(item) = select(&list) {
                model.email.clone_from(&item.value);
            }
            Ok(())
        }
        Some("value") => match value {
            Some(Value::String(s)) if !s.is_empty() => {
                model.email.clone_from(s);
                Ok(())
            }
            _ => Err(ScimError::invalid_value(
                "emails value must be a non-empty string.",
            )),
        },
        Some(_) => Ok(()), // type, primary, display: reported as work/primary
    }
}

fn apply_roles(
    model: &mut Model,
    op: Op,
    target: &Target,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let current = (!model.role.is_empty()).then(|| role_item(&model.role, &model.role_type));
    if op == Op::Remove {
        let removes_role = match target.sub.as_deref() {
            None | Some("value") => true,
            Some("type") => {
                if filter_matches(target.filter.as_ref(), current) {
                    model.role_type.clear();
                }
                return Ok(());
            }
            Some(_) => false,
        };
        if removes_role && filter_matches(target.filter.as_ref(), current) {
            // Back to the account's default role.
            model.role.clear();
            model.role_type.clear();
        }
        return Ok(());
    }
    // Add or replace: the user has exactly one role, so whatever role the
    // operation names becomes it.
    match target.sub.as_deref() {
        None => {
            let list = items(value, "roles")?;
            if let Some(item) = select_role(&list) {
                model.role.clone_from(&item.value);
                model.role_type = item.kind.clone().unwrap_or_default();
            }
            Ok(())
        }
        Some("value") => match value {
            Some(Value::String(s)) if !s.is_empty() => {
                if *s != model.role {
                    model.role.clone_from(s);
                    model.role_type.clear();
                }
                Ok(())
            }
            _ => Err(ScimError::invalid_value(
                "roles value must be a non-empty string.",
            )),
        },
        Some("type") => match value {
            Some(Value::String(s)) => {
                model.role_type.clone_from(s);
                Ok(())
            }
            _ => Err(ScimError::invalid_value("roles type must be a string.")),
        },
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

    fn model() -> Model {
        Model {
            user_name: "jane@example.com".into(),
            email: "jane@example.com".into(),
            role: "admin".into(),
            role_type: String::new(),
            active: true,
        }
    }

    fn patch(m: &mut Model, ops: Value) -> Result<(), ScimError> {
        let body = json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops});
        apply_patch(m, body.as_object().unwrap())
    }

    fn scim_type(e: ScimError) -> &'static str {
        match e {
            ScimError::BadRequest { scim_type, .. } => scim_type.as_str(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn okta_deactivate_and_reactivate() {
        let mut m = model();
        patch(
            &mut m,
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .unwrap();
        assert!(!m.active);
        patch(
            &mut m,
            json!([{"op": "replace", "value": {"active": true}}]),
        )
        .unwrap();
        assert!(m.active);
    }

    #[test]
    fn entra_dialect() {
        let mut m = model();
        patch(
            &mut m,
            json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "value": {"name.givenName": "Janet", "displayName": "J"}},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "janet@example.com"},
                {"op": "Replace", "path": "userName", "value": "janet@example.com"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "x"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:roles[primary eq true].value", "value": "rep"},
            ]),
        )
        .unwrap();
        assert_eq!(
            m,
            Model {
                user_name: "janet@example.com".into(),
                email: "janet@example.com".into(),
                role: "rep".into(),
                role_type: String::new(),
                active: false,
            }
        );
    }

    #[test]
    fn dotted_and_urn_keys() {
        let mut m = model();
        patch(
            &mut m,
            json!([{"op": "replace", "value": {
                "urn:ietf:params:scim:schemas:core:2.0:User:active": "false",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "x"},
                "emails": [{"value": "new@example.com", "primary": true}],
                "password": "hunter2"
            }}]),
        )
        .unwrap();
        assert!(!m.active);
        assert_eq!(m.email, "new@example.com");
    }

    #[test]
    fn remove_roles_resets_and_remove_emails_is_mutability() {
        let mut m = model();
        patch(&mut m, json!([{"op": "remove", "path": "roles"}])).unwrap();
        assert_eq!(m.role, "");
        let mut m = model();
        patch(
            &mut m,
            json!([{"op": "remove", "path": "roles[value eq \"rep\"]"}]),
        )
        .unwrap();
        assert_eq!(m.role, "admin");
        patch(
            &mut m,
            json!([{"op": "remove", "path": "roles[value eq \"ADMIN\"]"}]),
        )
        .unwrap();
        assert_eq!(m.role, "");
        let e = patch(&mut model(), json!([{"op": "remove", "path": "emails"}])).unwrap_err();
        assert_eq!(scim_type(e), "mutability");
        let e = patch(&mut model(), json!([{"op": "remove", "path": "userName"}])).unwrap_err();
        assert_eq!(scim_type(e), "mutability");
    }

    #[test]
    fn roles_replace_forms() {
        let mut m = model();
        patch(&mut m, json!([{"op": "replace", "path": "roles", "value": [{"value": "rep", "type": "Okta", "primary": "True"}]}])).unwrap();
        assert_eq!((m.role.as_str(), m.role_type.as_str()), ("rep", "Okta"));
        patch(
            &mut m,
            json!([{"op": "add", "path": "roles", "value": ["admin"]}]),
        )
        .unwrap();
        assert_eq!((m.role.as_str(), m.role_type.as_str()), ("admin", ""));
    }

    #[test]
    fn unmatched_email_filter_is_ignored() {
        let mut m = model();
        patch(
            &mut m,
            json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "h@x"}]),
        )
        .unwrap();
        assert_eq!(m, model());
    }

    #[test]
    fn invalid_requests() {
        let cases = [
            (
                json!([{"op": "move", "path": "active", "value": true}]),
                "invalidSyntax",
            ),
            (json!([{"op": "remove"}]), "noTarget"),
            (json!([{"op": "replace", "value": true}]), "invalidValue"),
            (
                json!([{"op": "replace", "path": "active", "value": "maybe"}]),
                "invalidValue",
            ),
            (
                json!([{"op": "replace", "path": "emails[type eq ", "value": "x"}]),
                "invalidPath",
            ),
            (
                json!([{"op": "replace", "path": "active[value eq true]", "value": true}]),
                "invalidPath",
            ),
            (json!([{"op": "replace", "path": "active"}]), "invalidValue"),
            (json!([]), "invalidSyntax"),
            (json!([1]), "invalidSyntax"),
        ];
        for (ops, expected) in cases {
            let e = patch(&mut model(), ops.clone()).unwrap_err();
            assert_eq!(scim_type(e), expected, "{ops}");
        }
        let many: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| json!({"op": "replace", "path": "active", "value": true}))
            .collect();
        assert_eq!(
            scim_type(patch(&mut model(), Value::Array(many)).unwrap_err()),
            "tooMany"
        );
        let body = json!({"schemas": [PATCH_OP_SCHEMA]});
        assert!(apply_patch(&mut model(), body.as_object().unwrap()).is_err());
    }

    #[test]
    fn error_details_do_not_echo_values() {
        let e = patch(
            &mut model(),
            json!([{"op": "replace", "path": "active", "value": "hunter2"}]),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        let e = patch(
            &mut model(),
            json!([{"op": "replace", "path": "hunter2[", "value": 1}]),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn changes_are_the_difference() {
        let before = model();
        let mut after = model();
        assert_eq!(after.changes_from(&before), Changes::default());
        after.active = false;
        after.role.clear();
        let c = after.changes_from(&before);
        assert_eq!(c.active, Some(false));
        assert_eq!(c.role, Some((String::new(), String::new())));
        assert_eq!(c.email, None);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::{Model, apply_patch};

    fn model() -> Model {
        Model {
            user_name: "jane@example.com".into(),
            email: "jane@example.com".into(),
            role: "admin".into(),
            role_type: String::new(),
            active: true,
        }
    }

    /// Arbitrary JSON, a few levels deep.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-zA-Z\\[\\]. \"=:]{0,24}".prop_map(Value::String),
            prop_oneof![
                Just("active"),
                Just("emails"),
                Just("emails[type eq \"work\"].value"),
                Just("roles"),
                Just("userName"),
                Just("name.givenName"),
                Just("False"),
                Just("Replace"),
                Just("remove"),
            ]
            .prop_map(|s| Value::String(s.to_owned())),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("op"),
                            Just("path"),
                            Just("value"),
                            Just("active"),
                            Just("emails"),
                            Just("roles"),
                            Just("userName"),
                            Just("primary"),
                            Just("type")
                        ],
                        inner
                    ),
                    0..4
                )
                .prop_map(|pairs| Value::Object(
                    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }

    fn operation() -> impl Strategy<Value = Value> {
        (
            prop_oneof![Just("add"), Just("Replace"), Just("remove"), Just("bogus")],
            prop::option::of(prop_oneof![
                Just("active"),
                Just("emails"),
                Just("emails[type eq \"work\"].value"),
                Just("roles"),
                Just("userName"),
                Just("name.givenName"),
                Just("urn:ietf:params:scim:schemas:core:2.0:User:active"),
                Just("emails[type eq"),
            ]),
            json_value(),
        )
            .prop_map(|(op, path, value)| {
                let mut o = Map::new();
                o.insert("op".into(), json!(op));
                if let Some(path) = path {
                    o.insert("path".into(), json!(path));
                }
                o.insert("value".into(), value);
                Value::Object(o)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any body: an error or a model, never a panic.
        #[test]
        fn arbitrary_bodies_never_panic(body in json_value()) {
            if let Value::Object(body) = body {
                let _ = apply_patch(&mut model(), &body);
            }
        }

        /// Any list of operations: applying it is all or nothing, and doing it
        /// twice lands where doing it once does when it holds no `add` to a
        /// multi-valued attribute (replace and remove are idempotent).
        #[test]
        fn operations_apply_whole_or_not_at_all(ops in prop::collection::vec(operation(), 1..5)) {
            let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
            let Value::Object(body) = body else { unreachable!() };
            let mut once = model();
            match apply_patch(&mut once, &body) {
                Ok(()) => {
                    let mut twice = once.clone();
                    prop_assert!(apply_patch(&mut twice, &body).is_ok());
                    prop_assert_eq!(once, twice);
                }
                Err(err) => {
                    // Refused bodies say why, without echoing values.
                    let text = format!("{err:?}");
                    prop_assert!(!text.contains("jane@example.com"));
                }
            }
        }
    }
}
