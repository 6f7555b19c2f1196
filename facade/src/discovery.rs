//! `/ServiceProviderConfig`, `/ResourceTypes` and `/Schemas` (RFC 7643 §5–7),
//! true to what the service does.

use serde_json::{Value, json};

use crate::user::{USER_SCHEMA, list_response};

/// Most users one list request returns (the core's cap).
pub const MAX_RESULTS: i64 = 200;

/// `GET /ServiceProviderConfig`.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://www.rfc-editor.org/rfc/rfc7644",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A SCIM token of the account (issued by `provisioning scim enable`), sent as `Authorization: Bearer <token>`.",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        }
    })
}

/// The `User` resource type.
pub fn user_resource_type(base: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A user of the account. Users are deactivated, never deleted.",
        "schema": USER_SCHEMA,
        "schemaExtensions": [],
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
    })
}

/// `GET /ResourceTypes`.
pub fn resource_types(base: &str) -> Value {
    list_response(1, 1, vec![user_resource_type(base)])
}

fn attribute(name: &str, kind: &str, mutability: &str, case_exact: bool) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "required": false,
        "caseExact": case_exact,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": "none",
    })
}

fn multi_valued(name: &str, description: &str, mutability: &str, value_case_exact: bool) -> Value {
    json!({
        "name": name,
        "type": "complex",
        "multiValued": true,
        "description": description,
        "required": false,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": "none",
        "subAttributes": [
            attribute("value", "string", mutability, value_case_exact),
            attribute("type", "string", mutability, false),
            attribute("primary", "boolean", mutability, false),
        ]
    })
}

/// The User schema: only the attributes the service keeps, with their real
/// mutability (attributes fixed at creation are `immutable`) and `caseExact`.
pub fn user_schema(base: &str) -> Value {
    let mut user_name = attribute("userName", "string", "readWrite", false);
    if let Some(map) = user_name.as_object_mut() {
        map.insert("required".into(), true.into());
        map.insert("uniqueness".into(), "server".into());
        map.insert(
            "description".into(),
            "The login name, unique in the account (case-insensitive).".into(),
        );
    }
    let mut id = attribute("id", "string", "readOnly", true);
    if let Some(map) = id.as_object_mut() {
        map.insert("returned".into(), "always".into());
        map.insert("uniqueness".into(), "server".into());
    }
    let mut external_id = attribute("externalId", "string", "immutable", true);
    if let Some(map) = external_id.as_object_mut() {
        map.insert("uniqueness".into(), "server".into());
    }
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "User Account",
        "attributes": [
            id,
            external_id,
            user_name,
            {
                "name": "name",
                "type": "complex",
                "multiValued": false,
                "required": false,
                "mutability": "immutable",
                "returned": "default",
                "uniqueness": "none",
                "subAttributes": [
                    attribute("givenName", "string", "immutable", false),
                    attribute("familyName", "string", "immutable", false),
                ]
            },
            multi_valued("emails", "The one email kept; reported as type work, primary.", "readWrite", false),
            multi_valued("phoneNumbers", "The one phone number kept, set at creation.", "immutable", true),
            attribute("timezone", "string", "immutable", true),
            multi_valued("roles", "The user's one role, from the account's roles.", "readWrite", false),
            attribute("active", "boolean", "readWrite", false),
        ],
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{USER_SCHEMA}")}
    })
}

/// `GET /Schemas`.
pub fn schemas(base: &str) -> Value {
    list_response(1, 1, vec![user_schema(base)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_true_to_the_service() {
        let c = service_provider_config("https://x/scim/v2");
        assert_eq!(c["patch"]["supported"], true);
        assert_eq!(c["bulk"]["supported"], false);
        assert_eq!(c["changePassword"]["supported"], false);
        assert_eq!(c["filter"]["maxResults"], 200);
        assert_eq!(c["etag"]["supported"], true);
        assert_eq!(c["sort"]["supported"], false);
        assert_eq!(c["authenticationSchemes"][0]["type"], "oauthbearertoken");
    }

    #[test]
    fn schema_lists_kept_attributes() {
        let s = user_schema("b");
        let names: Vec<&str> = s["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "id",
                "externalId",
                "userName",
                "name",
                "emails",
                "phoneNumbers",
                "timezone",
                "roles",
                "active"
            ]
        );
        assert!(!names.contains(&"password"));
    }
}
