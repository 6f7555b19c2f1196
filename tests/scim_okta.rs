//! The SCIM facade as Okta (and Microsoft Entra) drive it, over real HTTP
//! against a real server, on SQLite and PostgreSQL. Request shapes follow
//! shared/OKTA.md.
mod common;
mod scim_support;

use common::Backend;
use reqwest::Method;
use scim_support::*;
use serde_json::{Value, json};

backend_tests!(
    okta_connection_test_on_empty_store,
    existence_check_encodings,
    push_new_user_password_goes_nowhere,
    create_keeps_every_mapped_attribute,
    create_role_dialects,
    duplicate_user_name_is_409,
    duplicate_external_id_is_409,
    get_then_put_profile_update,
    put_deactivation_and_reactivation,
    patch_deactivation_and_reactivation,
    reassignment_finds_inactive_user,
    entra_dialect,
    remove_roles_resets_default_and_remove_emails_is_refused,
    groups_refused,
    delete_refused_user_intact,
    discovery_endpoints,
    location_uses_public_host,
    request_id_reaches_the_audit_trail,
);

async fn okta_connection_test_on_empty_store(b: Backend) {
    let s = Scim::start(b).await;
    let reply = s.get("/Users?startIndex=1&count=2").await;
    // Exact body: counters as JSON numbers, Resources an empty array.
    assert_eq!(
        reply.expect(200),
        &json!({"schemas":[LIST_SCHEMA],"totalResults":0,"startIndex":1,"itemsPerPage":0,"Resources":[]})
    );
    assert!(reply.text.contains("\"totalResults\":0"), "{}", reply.text);
    let groups = s.get("/Groups?startIndex=1&count=100").await;
    assert_eq!(
        groups.expect(200),
        &json!({"schemas":[LIST_SCHEMA],"totalResults":0,"startIndex":1,"itemsPerPage":0,"Resources":[]})
    );
}

async fn existence_check_encodings(b: Backend) {
    let s = Scim::start(b).await;
    // No match: 200, totalResults 0.
    let none = s
        .get("/Users?filter=userName%20eq%20%22jane%40example.com%22&startIndex=1&count=100")
        .await;
    assert_eq!(none.expect(200)["totalResults"], 0);
    assert_eq!(none.body["Resources"], json!([]));

    let created = s.create("jane@example.com", "00u1").await;
    for query in [
        "filter=userName%20eq%20%22jane%40example.com%22&startIndex=1&count=100",
        "filter=userName+eq+%22jane%40example.com%22&startIndex=1&count=100",
        "filter=userName+eq+%22JANE%40Example.com%22&startIndex=1&count=100",
    ] {
        let reply = s.get(&format!("/Users?{query}")).await;
        let body = reply.expect(200);
        assert_eq!(body["totalResults"], 1, "{query}");
        assert_eq!(body["itemsPerPage"], 1);
        assert_eq!(body["startIndex"], 1);
        assert_eq!(body["Resources"][0], created, "{query}");
    }
    // A `+` inside the value is percent-encoded by Okta and must stay a `+`.
    let plus = s.create("a+b@example.com", "00u2").await;
    let reply = s
        .get("/Users?filter=userName+eq+%22a%2Bb%40example.com%22")
        .await;
    assert_eq!(reply.expect(200)["Resources"][0]["id"], plus["id"]);
}

async fn push_new_user_password_goes_nowhere(b: Backend) {
    let s = Scim::start(b).await;
    let reply = s
        .post(
            "/Users",
            &okta_user("jane@example.com", "00ujl29u0le5T6Aj10h7"),
        )
        .await;
    let user = reply.expect(201).clone();
    let id = id_of(&user);
    let location = s.url(&format!("/Users/{id}"));
    assert_eq!(reply.header("location"), Some(location.as_str()));
    assert_eq!(user["meta"]["location"], json!(location));
    assert_eq!(reply.header("etag"), user["meta"]["version"].as_str());
    assert_eq!(
        without_meta(&user),
        json!({
            "schemas": [USER_SCHEMA],
            "id": id,
            "externalId": "00ujl29u0le5T6Aj10h7",
            "userName": "jane@example.com",
            "name": {"givenName": "Jane", "familyName": "Doe"},
            "emails": [{"value": "jane@example.com", "type": "work", "primary": true}],
            "roles": [{"value": "rep", "primary": true}],
            "active": true
        })
    );
    let meta = &user["meta"];
    assert_eq!(meta["resourceType"], "User");
    assert!(
        meta["created"]
            .as_str()
            .is_some_and(|c| c.starts_with("2026-01-01T12:00:00"))
    );
    assert!(meta["lastModified"].is_string());
    assert!(
        meta["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("W/\""))
    );

    // The password appears nowhere: not in GET, list, search, nor any table.
    let get = s.get(&format!("/Users/{id}")).await;
    assert_eq!(get.expect(200), &user);
    let list = s.get("/Users").await;
    list.expect(200);
    let search = s
        .post("/Users/.search", &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName eq \"jane@example.com\""}))
        .await;
    assert_eq!(search.expect(200)["Resources"][0], user);
    for text in [&reply.text, &get.text, &list.text, &search.text] {
        assert!(!text.contains("1mz050nq"));
        assert!(!text.to_lowercase().contains("password"));
    }
    for table in ["users", "audit_events", "accounts", "scim_tokens"] {
        let rows = s.env.dump_table(table).await;
        assert!(!rows.contains("1mz050nq"), "password stored in {table}");
    }
    assert!(s.env.dump_table("users").await.contains("jane@example.com"));
}

async fn create_keeps_every_mapped_attribute(b: Backend) {
    let s = Scim::start(b).await;
    let body = json!({
        "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": "max@example.com",
        "name": {"givenName": "Max", "familyName": "Mustermann", "middleName": "X"},
        "emails": [
            {"value": "home@example.com", "type": "home"},
            {"value": "max@example.com", "type": "work"}
        ],
        "phoneNumbers": [
            {"value": "+49 30 1234", "type": "mobile"},
            {"value": "+49 30 5678", "type": "work"}
        ],
        "timezone": "Europe/Berlin",
        "title": "Engineer",
        "roles": [{"value": "admin", "primary": true, "type": "Okta"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "manager": {"value": "x"}},
        "x-unknown": {"nested": [1, 2, 3]},
        "active": true
    });
    let user = s.post("/Users", &body).await.expect(201).clone();
    assert_eq!(
        without_meta(&user),
        json!({
            "schemas": [USER_SCHEMA],
            "id": id_of(&user),
            "userName": "max@example.com",
            "name": {"givenName": "Max", "familyName": "Mustermann"},
            "emails": [{"value": "max@example.com", "type": "work", "primary": true}],
            "phoneNumbers": [{"value": "+49 30 5678", "type": "work", "primary": true}],
            "timezone": "Europe/Berlin",
            "roles": [{"value": "admin", "primary": true, "type": "Okta"}],
            "active": true
        })
    );
    assert_eq!(s.fetch(&id_of(&user)).await, user);

    // Okta's test runner sends no Content-Type at all; application/json works too.
    let reply = s
        .send(
            s.request(Method::POST, "/Users")
                .body(json!({"userName": "nocontenttype@example.com"}).to_string()),
        )
        .await;
    assert_eq!(reply.expect(201)["userName"], "nocontenttype@example.com");
    let reply = s
        .send(
            s.request(Method::POST, "/Users")
                .header("content-type", "application/json")
                .body(json!({"userName": "json@example.com", "active": false}).to_string()),
        )
        .await;
    assert_eq!(reply.expect(201)["active"], false);
}

async fn create_role_dialects(b: Backend) {
    let s = Scim::start(b).await;
    let cases = [
        (
            json!([{"value": "admin", "primary": true}]),
            json!([{"value": "admin", "primary": true}]),
        ),
        (
            json!([{"value": "admin", "primary": "True", "type": "Okta"}]),
            json!([{"value": "admin", "primary": true, "type": "Okta"}]),
        ),
        (
            json!(["admin"]),
            json!([{"value": "admin", "primary": true}]),
        ),
        (
            json!([{"value": "rep"}, {"value": "admin", "primary": true}]),
            json!([{"value": "admin", "primary": true}]),
        ),
        (json!([]), json!([{"value": "rep", "primary": true}])),
        (Value::Null, json!([{"value": "rep", "primary": true}])),
    ];
    for (i, (roles, expected)) in cases.into_iter().enumerate() {
        let body = json!({"userName": format!("u{i}@example.com"), "roles": roles});
        let user = s.post("/Users", &body).await.expect(201).clone();
        assert_eq!(user["roles"], expected, "case {i}");
    }
    // A role the account does not have.
    let reply = s
        .post(
            "/Users",
            &json!({"userName": "x@example.com", "roles": ["pilot"]}),
        )
        .await;
    let detail = reply.expect_error(400, Some("invalidValue")).to_owned();
    assert!(!detail.contains("pilot"), "{detail}");
}

async fn duplicate_user_name_is_409(b: Backend) {
    let s = Scim::start(b).await;
    s.create("jane@example.com", "00u1").await;
    for name in ["jane@example.com", "JANE@Example.COM"] {
        let reply = s
            .post("/Users", &okta_user(name, &format!("other-{name}")))
            .await;
        let detail = reply.expect_error(409, Some("uniqueness"));
        assert!(!detail.contains(name), "{detail}");
    }
    assert_eq!(s.get("/Users").await.expect(200)["totalResults"], 1);
}

async fn duplicate_external_id_is_409(b: Backend) {
    let s = Scim::start(b).await;
    s.create("jane@example.com", "00u1").await;
    let reply = s
        .post("/Users", &okta_user("other@example.com", "00u1"))
        .await;
    reply.expect_error(409, Some("uniqueness"));
    assert_eq!(s.get("/Users").await.expect(200)["totalResults"], 1);
}

async fn get_then_put_profile_update(b: Backend) {
    let s = Scim::start(b).await;
    let created = s.create("jane@example.com", "00u1").await;
    let id = id_of(&created);
    // Okta: GET, then PUT the whole object back with the changes.
    let mut body = s.fetch(&id).await;
    body["userName"] = json!("jane.doe@example.com");
    body["emails"] = json!([{"value": "jane.doe@example.com", "type": "work", "primary": true}]);
    body["roles"] = json!([{"value": "admin", "primary": true}]);
    body["name"] = json!({"givenName": "Janet", "familyName": "Smith"});
    body["phoneNumbers"] = json!([{"value": "+1 555 0100", "type": "work"}]);
    body["groups"] = json!([]);
    body["password"] = json!("s3cret-pw");
    let reply = s.put(&format!("/Users/{id}"), &body).await;
    let updated = reply.expect(200).clone();
    assert_eq!(updated["userName"], "jane.doe@example.com");
    assert_eq!(
        updated["emails"],
        json!([{"value": "jane.doe@example.com", "type": "work", "primary": true}])
    );
    assert_eq!(
        updated["roles"],
        json!([{"value": "admin", "primary": true}])
    );
    // Ignored: name and the phone number (empty at creation stays empty).
    assert_eq!(
        updated["name"],
        json!({"givenName": "Jane", "familyName": "Doe"})
    );
    assert!(updated.get("phoneNumbers").is_none());
    assert!(!reply.text.contains("s3cret-pw"));
    assert_ne!(version_of(&updated), version_of(&created));
    assert_eq!(reply.header("etag"), Some(version_of(&updated).as_str()));
    assert_eq!(s.fetch(&id).await, updated);

    // The same PUT again changes nothing: no new version.
    let again = s
        .put(&format!("/Users/{id}"), &updated)
        .await
        .expect(200)
        .clone();
    assert_eq!(version_of(&again), version_of(&updated));

    // Omitted (or null, "") emails, roles and active keep the stored values.
    let minimal = json!({"schemas": [USER_SCHEMA], "userName": "jane.doe@example.com", "emails": null, "roles": "", "active": null});
    let kept = s
        .put(&format!("/Users/{id}"), &minimal)
        .await
        .expect(200)
        .clone();
    assert_eq!(kept, updated);
}

async fn put_deactivation_and_reactivation(b: Backend) {
    let s = Scim::start(b).await;
    let created = s.create("jane@example.com", "00u1").await;
    let id = id_of(&created);
    let mut body = s.fetch(&id).await;
    body["active"] = json!(false);
    let off = s
        .put(&format!("/Users/{id}"), &body)
        .await
        .expect(200)
        .clone();
    assert_eq!(off["active"], false);
    // Every other attribute is kept and the user stays readable and filterable.
    assert_eq!(without_meta(&off), {
        let mut c = without_meta(&created);
        c["active"] = json!(false);
        c
    });
    assert_eq!(s.fetch(&id).await["active"], false);
    assert_eq!(
        s.find("jane@example.com").await["Resources"][0]["active"],
        false
    );
    let inactive = s.get("/Users?filter=active+eq+false").await;
    assert_eq!(inactive.expect(200)["totalResults"], 1);

    // A deactivation never fails because of another attribute's value.
    let mut body = s.fetch(&id).await;
    body["active"] = json!(true);
    body["roles"] = json!([{"value": "no-such-role", "primary": true}]);
    let on = s
        .put(&format!("/Users/{id}"), &body)
        .await
        .expect(200)
        .clone();
    assert_eq!(on["active"], true);
    assert_eq!(on["roles"], json!([{"value": "rep", "primary": true}]));
    assert_eq!(without_meta(&on), without_meta(&created));
}

async fn patch_deactivation_and_reactivation(b: Backend) {
    let s = Scim::start(b).await;
    let created = s.create("jane@example.com", "00u1").await;
    let id = id_of(&created);
    let path = format!("/Users/{id}");
    let off = s
        .patch(
            &path,
            &patch_op(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await;
    let off = off.expect(200).clone();
    assert_eq!(off["active"], false);
    assert_eq!(s.fetch(&id).await, off);
    // Deactivating again changes nothing (no new version).
    let again = s
        .patch(
            &path,
            &patch_op(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(version_of(&again), version_of(&off));
    // Okta's password PATCH is accepted and the password goes nowhere.
    let pw = s
        .patch(
            &path,
            &patch_op(json!([{"op": "replace", "value": {"password": "n3w-secret"}}])),
        )
        .await;
    assert!(!pw.expect(200).to_string().contains("n3w-secret"));
    let on = s
        .patch(
            &path,
            &patch_op(json!([{"op": "replace", "value": {"active": true}}])),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(without_meta(&on), without_meta(&created));
    for table in ["users", "audit_events"] {
        assert!(!s.env.dump_table(table).await.contains("n3w-secret"));
    }
}

async fn reassignment_finds_inactive_user(b: Backend) {
    let s = Scim::start(b).await;
    let created = s.create("jane@example.com", "00u1").await;
    let id = id_of(&created);
    s.patch(
        &format!("/Users/{id}"),
        &patch_op(json!([{"op": "replace", "value": {"active": false}}])),
    )
    .await
    .expect(200);
    // Reassigned in Okta: the existence check finds the inactive user ...
    let found = s.find("jane@example.com").await;
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], json!(id));
    assert_eq!(found["Resources"][0]["active"], false);
    // ... and Okta reactivates it instead of creating a new one.
    let on = s
        .patch(
            &format!("/Users/{id}"),
            &patch_op(json!([{"op": "replace", "value": {"active": true}}])),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(on["active"], true);
    assert_eq!(on["meta"]["created"], created["meta"]["created"]);
    assert_eq!(s.get("/Users").await.expect(200)["totalResults"], 1);
}

async fn entra_dialect(b: Backend) {
    let s = Scim::start(b).await;
    let created = s.create("jane@example.com", "00u1").await;
    let id = id_of(&created);
    let path = format!("/Users/{id}");
    let reply = s
        .patch(
            &path,
            &patch_op(json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "value": {"name.givenName": "Janet", "displayName": "Janet Doe"}},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "janet@example.com"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:userName", "value": "janet@example.com"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
                {"op": "Replace", "path": "roles[primary eq true].value", "value": "admin"}
            ])),
        )
        .await;
    let user = reply.expect(200).clone();
    assert_eq!(user["active"], false);
    assert_eq!(user["userName"], "janet@example.com");
    assert_eq!(
        user["emails"],
        json!([{"value": "janet@example.com", "type": "work", "primary": true}])
    );
    assert_eq!(user["roles"], json!([{"value": "admin", "primary": true}]));
    assert_eq!(
        user["name"]["givenName"], "Jane",
        "name changes are ignored"
    );
    assert_eq!(s.fetch(&id).await, user);
    // "True" as a string, lower-case op, path-less dotted URN key.
    let user = s
        .patch(
            &path,
            &patch_op(json!([{"op": "replace", "value": {"urn:ietf:params:scim:schemas:core:2.0:User:active": "True"}}])),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(user["active"], true);
    // Entra's filter dialect for the existence check.
    let reply = s
        .send(s.request(
            Method::GET,
            &with_query(
                "/Users",
                &[(
                    "filter",
                    "emails[type eq \"work\"].value eq \"janet@example.com\"",
                )],
            ),
        ))
        .await;
    assert_eq!(reply.expect(200)["totalResults"], 1);
}

async fn remove_roles_resets_default_and_remove_emails_is_refused(b: Backend) {
    let s = Scim::start(b).await;
    let body = json!({"userName": "jane@example.com", "emails": [{"value": "jane@example.com"}], "roles": ["admin"]});
    let user = s.post("/Users", &body).await.expect(201).clone();
    let path = format!("/Users/{}", id_of(&user));
    let reset = s
        .patch(&path, &patch_op(json!([{"op": "remove", "path": "roles"}])))
        .await;
    assert_eq!(
        reset.expect(200)["roles"],
        json!([{"value": "rep", "primary": true}])
    );
    let before = s.fetch(&id_of(&user)).await;
    let reply = s
        .patch(
            &path,
            &patch_op(json!([{"op": "remove", "path": "emails"}])),
        )
        .await;
    reply.expect_error(400, Some("mutability"));
    let reply = s
        .patch(
            &path,
            &patch_op(json!([{"op": "remove", "path": "emails[type eq \"work\"]"}])),
        )
        .await;
    reply.expect_error(400, Some("mutability"));
    assert_eq!(s.fetch(&id_of(&user)).await, before);
}

async fn groups_refused(b: Backend) {
    let s = Scim::start(b).await;
    for query in [
        "",
        "?startIndex=1&count=100",
        "?filter=displayName+eq+%22Admins%22",
        "?attributes=displayName&filter=garbage(((",
    ] {
        let reply = s.get(&format!("/Groups{query}")).await;
        let body = reply.expect(200);
        assert_eq!(body["totalResults"], 0, "{query}");
        assert_eq!(body["Resources"], json!([]));
        assert_eq!(body["schemas"], json!([LIST_SCHEMA]));
    }
    s.get("/Groups/abc").await.expect_error(404, None);
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Admins", "members": []});
    let detail = s
        .post("/Groups", &group)
        .await
        .expect_error(501, None)
        .to_owned();
    assert!(detail.contains("Groups are not supported"), "{detail}");
    s.put("/Groups/abc", &group).await.expect_error(501, None);
    s.patch(
        "/Groups/abc",
        &patch_op(json!([{"op": "add", "path": "members", "value": []}])),
    )
    .await
    .expect_error(501, None);
    s.send(s.request(Method::DELETE, "/Groups/abc"))
        .await
        .expect_error(501, None);
    s.post("/Bulk", &json!({"Operations": []}))
        .await
        .expect_error(501, None);
    s.get("/Me").await.expect_error(501, None);
    // Groups need a valid token like everything else.
    let reply = s
        .send(s.http.get(s.url("/Groups")).bearer_auth("scim_wrong"))
        .await;
    reply.expect_error(401, None);
}

async fn delete_refused_user_intact(b: Backend) {
    let s = Scim::start(b).await;
    let created = s.create("jane@example.com", "00u1").await;
    let id = id_of(&created);
    let reply = s
        .send(s.request(Method::DELETE, &format!("/Users/{id}")))
        .await;
    let detail = reply.expect_error(501, None);
    assert!(detail.contains("\"active\": false"), "{detail}");
    assert_eq!(s.fetch(&id).await, created);
}

async fn discovery_endpoints(b: Backend) {
    let s = Scim::start(b).await;
    let base = &s.env.scim_base;
    let spc = s.get("/ServiceProviderConfig").await.expect(200).clone();
    assert_eq!(
        spc["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"])
    );
    assert_eq!(spc["patch"], json!({"supported": true}));
    assert_eq!(spc["bulk"]["supported"], false);
    assert_eq!(spc["changePassword"], json!({"supported": false}));
    assert_eq!(spc["filter"], json!({"supported": true, "maxResults": 200}));
    assert_eq!(spc["etag"], json!({"supported": true}));
    assert_eq!(spc["sort"], json!({"supported": false}));
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
    assert_eq!(
        spc["meta"]["location"],
        json!(format!("{base}/ServiceProviderConfig"))
    );

    let types = s.get("/ResourceTypes").await.expect(200).clone();
    assert_eq!(types["totalResults"], 1);
    assert_eq!(types["Resources"][0]["endpoint"], "/Users");
    assert_eq!(types["Resources"][0]["schema"], USER_SCHEMA);
    assert_eq!(
        s.get("/ResourceTypes/User").await.expect(200),
        &types["Resources"][0]
    );
    s.get("/ResourceTypes/Group").await.expect_error(404, None);

    let schemas = s.get("/Schemas").await.expect(200).clone();
    assert_eq!(schemas["totalResults"], 1);
    let user_schema = s
        .get(&format!("/Schemas/{USER_SCHEMA}"))
        .await
        .expect(200)
        .clone();
    assert_eq!(user_schema, schemas["Resources"][0]);
    let attrs = user_schema["attributes"].as_array().unwrap();
    let by_name = |n: &str| {
        attrs
            .iter()
            .find(|a| a["name"] == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    assert_eq!(by_name("userName")["caseExact"], false);
    assert_eq!(by_name("userName")["uniqueness"], "server");
    assert_eq!(by_name("externalId")["caseExact"], true);
    assert_eq!(by_name("id")["mutability"], "readOnly");
    assert_eq!(by_name("active")["mutability"], "readWrite");
    assert!(attrs.iter().all(|a| a["name"] != "password"));
    s.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group")
        .await
        .expect_error(404, None);

    // Writes to discovery endpoints are 405 with a SCIM body.
    for path in [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/Schemas",
        "/ResourceTypes/User",
    ] {
        s.post(path, &json!({})).await.expect_error(405, None);
    }
    s.put("/Schemas", &json!({})).await.expect_error(405, None);
}

async fn location_uses_public_host(b: Backend) {
    let s = Scim::start(b).await;
    // Without --public-url the request's Host is used; X-Forwarded-* are
    // ignored unless trusted.
    let reply = s
        .send(
            s.request(Method::POST, "/Users")
                .header("host", "scim.example.test")
                .header("x-forwarded-host", "evil.example")
                .header("x-forwarded-proto", "https")
                .body(json!({"userName": "jane@example.com"}).to_string()),
        )
        .await;
    let user = reply.expect(201).clone();
    let expected = format!("http://scim.example.test/scim/v2/Users/{}", id_of(&user));
    assert_eq!(reply.header("location"), Some(expected.as_str()));
    assert_eq!(user["meta"]["location"], json!(expected));
    // A trailing slash in the configured base URL still works.
    let reply = s.get("//Users/?count=1").await;
    assert_eq!(reply.expect(200)["totalResults"], 1);
}

async fn request_id_reaches_the_audit_trail(b: Backend) {
    let s = Scim::start(b).await;
    let reply = s
        .send(
            s.request(Method::POST, "/Users")
                .header("x-request-id", "okta-req-42")
                .body(json!({"userName": "jane@example.com"}).to_string()),
        )
        .await;
    let user = reply.expect(201).clone();
    assert_eq!(reply.header("x-request-id"), Some("okta-req-42"));
    let mut audit = s.env.audit().await;
    let events = audit
        .list_events(s.env.admin(provisioning_proto::pb::ListEventsRequest {
            account: "acme".into(),
            ..Default::default()
        }))
        .await
        .expect("audit")
        .into_inner()
        .events;
    let created = events
        .iter()
        .find(|e| e.action == "user.created")
        .expect("a user.created event");
    assert_eq!(created.request_id, "okta-req-42");
    assert_eq!(created.target_id, id_of(&user));
    assert!(created.actor.starts_with("token:"), "{}", created.actor);
    // Without one, the facade makes one up and still answers with it.
    let reply = s.get("/Users").await;
    assert!(
        reply
            .header("x-request-id")
            .is_some_and(|id| id.len() >= 32)
    );
}
