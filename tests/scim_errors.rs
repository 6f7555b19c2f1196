//! SCIM errors, preconditions, paging, bad input and tenant isolation, over
//! real HTTP against a real server, on SQLite and PostgreSQL.
mod common;
mod scim_support;

use common::Backend;
use provisioning_proto::pb;
use reqwest::Method;
use scim_support::*;
use serde_json::{Value, json};

backend_tests!(
    unauthenticated_requests,
    scim_switch_off_is_403,
    unknown_user_and_path_are_404,
    if_match_preconditions,
    paging_rules,
    attribute_projection,
    malformed_bodies_change_nothing,
    oversized_and_unknown_media_type,
    patch_with_invalid_third_op_changes_nothing,
    patch_with_too_many_operations,
    accounts_never_see_each_other,
    errors_never_echo_submitted_values,
    rate_limited_requests_get_429,
    failed_authentication_floods_get_429,
);

async fn rate_limited_requests_get_429(b: Backend) {
    let limits = provisioning_server::service::Limits {
        per_token_per_second: 1.0,
        per_token_burst: 2.0,
        ..Default::default()
    };
    let s = Scim::start_with(
        b,
        common::Settings {
            limits,
            ..Default::default()
        },
    )
    .await;
    let other = s.env.account_with_token("other").await;
    s.get("/Users?count=1").await.expect(200);
    s.get("/Users?count=1").await.expect(200);
    let reply = s.get("/Users?count=1").await;
    reply.expect_error(429, None);
    let retry: u64 = reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Other accounts are unaffected.
    let reply = s
        .send(s.http.get(s.url("/Users?count=1")).bearer_auth(&other))
        .await;
    reply.expect(200);
    // A second later the token may call again.
    s.env.clock.advance(chrono::Duration::seconds(1));
    s.get("/Users?count=1").await.expect(200);
}

async fn failed_authentication_floods_get_429(b: Backend) {
    let limits = provisioning_server::service::Limits {
        auth_failures_per_minute: 3.0,
        ..Default::default()
    };
    let s = Scim::start_with(
        b,
        common::Settings {
            limits,
            ..Default::default()
        },
    )
    .await;
    for i in 0..3 {
        let bad = format!("scim_guess-{i}");
        s.send(s.http.get(s.url("/Users")).bearer_auth(bad))
            .await
            .expect_error(401, None);
    }
    let reply = s
        .send(s.http.get(s.url("/Users")).bearer_auth("scim_guess-4"))
        .await;
    reply.expect_error(429, None);
    assert!(reply.header("retry-after").is_some());
    s.env.clock.advance(chrono::Duration::seconds(60));
    s.get("/Users?count=1").await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_503_with_retry_after() {
    let settings = common::Settings {
        through_proxy: true,
        ..Default::default()
    };
    let s = Scim::start_with(Backend::Postgres, settings).await;
    s.create("jane@example.com", "00u1").await;
    s.env.proxy.as_ref().unwrap().cut();
    let reply = s
        .post("/Users", &okta_user("bob@example.com", "00u2"))
        .await;
    reply.expect_error(503, None);
    assert!(reply.header("retry-after").is_some());
    s.env.proxy.as_ref().unwrap().restore();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let reply = s
            .post("/Users", &okta_user("bob@example.com", "00u2"))
            .await;
        if reply.status == 201 {
            break;
        }
        reply.expect_error(503, None);
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(s.get("/Users?count=0").await.expect(200)["totalResults"], 2);
}

async fn unauthenticated_requests(b: Backend) {
    let s = Scim::start(b).await;
    let created = s.create("jane@example.com", "00u1").await;
    let url = s.url("/Users?startIndex=1&count=2");
    let cases = [
        ("no token", s.http.get(&url)),
        (
            "bad token",
            s.http.get(&url).bearer_auth("scim_not-a-real-token"),
        ),
        (
            "admin credential",
            s.http.get(&url).bearer_auth(&s.env.admin_token),
        ),
        (
            "basic scheme",
            s.http.get(&url).basic_auth("user", Some("pw")),
        ),
        (
            "empty bearer",
            s.http.get(&url).header("authorization", "Bearer "),
        ),
    ];
    for (what, request) in cases {
        let reply = s.send(request).await;
        reply.expect_error(401, None);
        assert!(
            reply
                .header("www-authenticate")
                .is_some_and(|h| h.starts_with("Bearer")),
            "{what}: {:?}",
            reply.headers
        );
        assert!(!reply.text.contains("jane@example.com"), "{what}");
    }
    // An admin who pasted "Bearer <token>" into Okta's token field.
    let reply = s
        .send(
            s.http
                .get(&url)
                .header("authorization", format!("Bearer Bearer {}", s.token)),
        )
        .await;
    let detail = reply.expect_error(401, None);
    assert!(detail.contains("without the word Bearer"), "{detail}");
    assert!(!detail.contains(&s.token));
    // Writes are refused too and change nothing.
    let reply = s
        .send(
            s.http
                .patch(s.url(&format!("/Users/{}", id_of(&created))))
                .bearer_auth(&s.env.admin_token)
                .body(patch_op(json!([{"op": "replace", "value": {"active": false}}])).to_string()),
        )
        .await;
    reply.expect_error(401, None);
    assert_eq!(s.fetch(&id_of(&created)).await, created);
}

async fn scim_switch_off_is_403(b: Backend) {
    let s = Scim::start(b).await;
    let mut accounts = s.env.accounts().await;
    accounts
        .set_scim_enabled(s.env.admin(pb::SetScimEnabledRequest {
            account: "acme".into(),
            enabled: false,
        }))
        .await
        .expect("switch off");
    let reply = s.get("/Users?startIndex=1&count=2").await;
    let detail = reply.expect_error(403, None).to_owned();
    assert!(
        detail.contains("SCIM provisioning is turned off"),
        "{detail}"
    );
    s.post("/Users", &okta_user("jane@example.com", "00u1"))
        .await
        .expect_error(403, None);
}

async fn unknown_user_and_path_are_404(b: Backend) {
    let s = Scim::start(b).await;
    for id in ["0190b3e4-7d47-7c3c-9c8e-3f1b2a4d5e6f", "not-a-uuid"] {
        let path = format!("/Users/{id}");
        s.get(&path).await.expect_error(404, None);
        s.put(&path, &okta_user("jane@example.com", "x"))
            .await
            .expect_error(404, None);
        s.patch(
            &path,
            &patch_op(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await
        .expect_error(404, None);
    }
    s.get("/Nothing").await.expect_error(404, None);
    s.get("/Users/a/b").await.expect_error(404, None);
    let reply = s
        .send(s.http.get(format!("{}/../other", s.env.scim_base)))
        .await;
    reply.expect_error(404, None);
    // Wrong method on a known path: 405 with a SCIM body.
    let reply = s.send(s.request(Method::DELETE, "/Users")).await;
    reply.expect_error(405, None);
}

async fn if_match_preconditions(b: Backend) {
    let s = Scim::start(b).await;
    let created = s.create("jane@example.com", "00u1").await;
    let id = id_of(&created);
    let path = format!("/Users/{id}");
    let v1 = version_of(&created);
    let deactivate = patch_op(json!([{"op": "replace", "value": {"active": false}}]));
    let activate = patch_op(json!([{"op": "replace", "value": {"active": true}}]));

    // Matching version (weak or strong form): applied.
    let reply = s
        .send(
            s.request(Method::PATCH, &path)
                .header("if-match", &v1)
                .body(deactivate.to_string()),
        )
        .await;
    let v2 = version_of(reply.expect(200));
    assert_ne!(v1, v2);
    let strong = v2.trim_start_matches("W/").to_owned();
    let reply = s
        .send(
            s.request(Method::PATCH, &path)
                .header("if-match", &strong)
                .body(activate.to_string()),
        )
        .await;
    let v3 = version_of(reply.expect(200));

    // Stale version: 412, nothing changes.
    let reply = s
        .send(
            s.request(Method::PATCH, &path)
                .header("if-match", &v1)
                .body(deactivate.to_string()),
        )
        .await;
    reply.expect_error(412, None);
    let mut body = s.fetch(&id).await;
    body["active"] = json!(false);
    let reply = s
        .send(
            s.request(Method::PUT, &path)
                .header("if-match", &v2)
                .body(body.to_string()),
        )
        .await;
    reply.expect_error(412, None);
    let reply = s
        .send(
            s.request(Method::PUT, &path)
                .header("if-match", "\"garbage\"")
                .body(body.to_string()),
        )
        .await;
    reply.expect_error(412, None);
    assert_eq!(s.fetch(&id).await["active"], true);
    assert_eq!(version_of(&s.fetch(&id).await), v3);

    // A list containing the current version, and `*`.
    let reply = s
        .send(
            s.request(Method::PUT, &path)
                .header("if-match", format!("{v1}, {v3}"))
                .body(body.to_string()),
        )
        .await;
    let v4 = version_of(reply.expect(200));
    assert_eq!(s.fetch(&id).await["active"], false);
    let reply = s
        .send(
            s.request(Method::PATCH, &path)
                .header("if-match", "*")
                .body(activate.to_string()),
        )
        .await;
    assert_eq!(reply.expect(200)["active"], true);
    assert_ne!(version_of(&reply.body), v4);
    // ETag header on GET.
    let reply = s.get(&path).await;
    assert_eq!(reply.header("etag"), reply.body["meta"]["version"].as_str());
}

async fn paging_rules(b: Backend) {
    let s = Scim::start(b).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(id_of(
            &s.create(&format!("user{i}@example.com"), &format!("x{i}"))
                .await,
        ));
    }
    let page = |query: &str| {
        let s = &s;
        let query = query.to_owned();
        async move { s.get(&format!("/Users?{query}")).await }
    };
    let body = page("startIndex=1&count=2").await.expect(200).clone();
    assert_eq!(
        (
            body["totalResults"].clone(),
            body["startIndex"].clone(),
            body["itemsPerPage"].clone()
        ),
        (json!(5), json!(1), json!(2))
    );
    let first: Vec<Value> = body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].clone())
        .collect();
    let body = page("startIndex=3&count=2").await.expect(200).clone();
    assert_eq!(body["startIndex"], 3);
    let second: Vec<Value> = body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].clone())
        .collect();
    let body = page("startIndex=5&count=2").await.expect(200).clone();
    assert_eq!(body["itemsPerPage"], 1);
    let third: Vec<Value> = body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].clone())
        .collect();
    // Stable order: the pages together are every user exactly once.
    let mut all: Vec<String> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    all.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(all, expected);

    // Past the end: empty page, true total.
    let body = page("startIndex=50").await.expect(200).clone();
    assert_eq!(
        (
            body["totalResults"].clone(),
            body["itemsPerPage"].clone(),
            body["Resources"].clone()
        ),
        (json!(5), json!(0), json!([]))
    );
    // startIndex below 1 means 1; negative count means 0; count=0 is the total only.
    let body = page("startIndex=0&count=1").await.expect(200).clone();
    assert_eq!(body["startIndex"], 1);
    assert_eq!(body["itemsPerPage"], 1);
    let body = page("startIndex=-7&count=-3").await.expect(200).clone();
    assert_eq!(
        (
            body["startIndex"].clone(),
            body["itemsPerPage"].clone(),
            body["totalResults"].clone()
        ),
        (json!(1), json!(0), json!(5))
    );
    let body = page("count=0").await.expect(200).clone();
    assert_eq!(
        (
            body["itemsPerPage"].clone(),
            body["totalResults"].clone(),
            body["Resources"].clone()
        ),
        (json!(0), json!(5), json!([]))
    );
    // Defaults and huge values.
    let body = page("").await.expect(200).clone();
    assert_eq!(
        (body["startIndex"].clone(), body["itemsPerPage"].clone()),
        (json!(1), json!(5))
    );
    let body = page("count=100000000000000000000000&startIndex=1")
        .await
        .expect(200)
        .clone();
    assert_eq!(body["itemsPerPage"], 5);
    // Non-numeric: 400 invalidValue.
    for query in ["startIndex=one", "count=ten", "count=1.5", "startIndex="] {
        page(query).await.expect_error(400, Some("invalidValue"));
    }
    // .search takes the same rules from the body.
    let reply = s
        .post("/Users/.search", &json!({"startIndex": 2, "count": "2"}))
        .await;
    let body = reply.expect(200);
    assert_eq!(
        (body["startIndex"].clone(), body["itemsPerPage"].clone()),
        (json!(2), json!(2))
    );
    s.post("/Users/.search", &json!({"count": true}))
        .await
        .expect_error(400, Some("invalidValue"));
}

async fn attribute_projection(b: Backend) {
    let s = Scim::start(b).await;
    let created = s.create("jane@example.com", "00u1").await;
    let id = id_of(&created);
    let body = s
        .get(&format!("/Users/{id}?attributes=userName,emails.value"))
        .await
        .expect(200)
        .clone();
    assert_eq!(
        body,
        json!({"schemas": [USER_SCHEMA], "id": id, "userName": "jane@example.com", "emails": [{"value": "jane@example.com"}]})
    );
    let list = s
        .get("/Users?attributes=userName")
        .await
        .expect(200)
        .clone();
    assert_eq!(
        list["Resources"][0],
        json!({"schemas": [USER_SCHEMA], "id": id, "userName": "jane@example.com"})
    );
    let body = s
        .get(&format!("/Users/{id}?excludedAttributes=meta,name,emails"))
        .await
        .expect(200)
        .clone();
    assert!(
        body.get("meta").is_none() && body.get("name").is_none() && body.get("emails").is_none()
    );
    assert_eq!(body["userName"], "jane@example.com");
}

async fn malformed_bodies_change_nothing(b: Backend) {
    let s = Scim::start(b).await;
    let created = s.create("jane@example.com", "00u1").await;
    let id = id_of(&created);
    let path = format!("/Users/{id}");
    let raw = |method: Method, path: &str, body: &str| {
        s.request(method, path)
            .header("content-type", OKTA_CONTENT_TYPE)
            .body(body.to_owned())
    };
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!(
        "{{\"userName\":\"x\",\"a\":{}1{}}}",
        "{\"a\":".repeat(5_000),
        "}".repeat(5_000)
    );
    for (method, target, body) in [
        (Method::POST, "/Users", "{\"userName\": \"x@example.com\","),
        (Method::POST, "/Users", "not json"),
        (Method::POST, "/Users", ""),
        (
            Method::POST,
            "/Users",
            "[{\"userName\": \"x@example.com\"}]",
        ),
        (Method::POST, "/Users", "null"),
        (Method::POST, "/Users", deep.as_str()),
        (Method::POST, "/Users", deep_object.as_str()),
        (Method::PUT, path.as_str(), "{\"userName\": "),
        (Method::PUT, path.as_str(), "[]"),
        (
            Method::PATCH,
            path.as_str(),
            "{\"Operations\": [{\"op\": \"replace\", \"value\": {\"active\": false}}",
        ),
        (
            Method::PATCH,
            path.as_str(),
            "[{\"op\": \"replace\", \"value\": {\"active\": false}}]",
        ),
    ] {
        let reply = s.send(raw(method.clone(), target, body)).await;
        reply.expect_error(400, Some("invalidSyntax"));
    }
    // Invalid UTF-8.
    let reply = s
        .send(
            s.request(Method::POST, "/Users")
                .header("content-type", OKTA_CONTENT_TYPE)
                .body(b"{\"userName\":\"\xff\xfe\"}".to_vec()),
        )
        .await;
    reply.expect_error(400, Some("invalidSyntax"));
    // Wrong JSON types for attributes.
    for body in [
        json!({"userName": 42}),
        json!({"userName": "x@example.com", "active": "perhaps"}),
        json!({"userName": "x@example.com", "emails": 5}),
        json!({"userName": "x@example.com", "emails": [{"value": 5}]}),
        json!({"userName": "x@example.com", "name": "Jane"}),
        json!({"userName": "x@example.com", "roles": {"value": ["admin"]}}),
        json!({"userName": "x@example.com", "externalId": {"id": 1}}),
        json!({"userName": "x@example.com", "timezone": 1}),
        json!({"emails": [{"value": "x@example.com"}]}),
    ] {
        s.post("/Users", &body)
            .await
            .expect_error(400, Some("invalidValue"));
    }
    s.put(&path, &json!({"userName": 42}))
        .await
        .expect_error(400, Some("invalidValue"));
    s.put(&path, &json!({"userName": "jane@example.com", "active": 3}))
        .await
        .expect_error(400, Some("invalidValue"));
    // Nothing was created or changed.
    let list = s.get("/Users").await.expect(200).clone();
    assert_eq!(list["totalResults"], 1);
    assert_eq!(s.fetch(&id).await, created);
}

async fn oversized_and_unknown_media_type(b: Backend) {
    let s = Scim::start(b).await;
    let created = s.create("jane@example.com", "00u1").await;
    let id = id_of(&created);
    let big = json!({"userName": "big@example.com", "title": "x".repeat(1024 * 1024)});
    s.post("/Users", &big).await.expect_error(413, None);
    let big_patch = patch_op(
        json!([{"op": "replace", "value": {"active": false, "title": "x".repeat(1024 * 1024)}}]),
    );
    s.patch(&format!("/Users/{id}"), &big_patch)
        .await
        .expect_error(413, None);
    for content_type in [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let reply = s
            .send(
                s.request(Method::POST, "/Users")
                    .header("content-type", content_type)
                    .body(json!({"userName": "x@example.com"}).to_string()),
            )
            .await;
        reply.expect_error(415, None);
    }
    let reply = s
        .send(
            s.request(Method::PATCH, &format!("/Users/{id}"))
                .header("content-type", "text/plain")
                .body(patch_op(json!([{"op": "replace", "value": {"active": false}}])).to_string()),
        )
        .await;
    reply.expect_error(415, None);
    // Just under the limit is fine.
    let fits = json!({"userName": "fits@example.com", "title": "x".repeat(1024 * 1000)});
    s.post("/Users", &fits).await.expect(201);
    let list = s.get("/Users").await.expect(200).clone();
    assert_eq!(list["totalResults"], 2);
    assert_eq!(s.fetch(&id).await, created);
}

async fn patch_with_invalid_third_op_changes_nothing(b: Backend) {
    let s = Scim::start(b).await;
    let body = json!({"userName": "jane@example.com", "emails": [{"value": "jane@example.com"}], "roles": ["admin"]});
    let created = s.post("/Users", &body).await.expect(201).clone();
    let path = format!("/Users/{}", id_of(&created));
    let cases = [
        (
            json!({"op": "replace", "path": "active", "value": "sometimes"}),
            "invalidValue",
        ),
        (
            json!({"op": "frobnicate", "path": "active", "value": false}),
            "invalidSyntax",
        ),
        (
            json!({"op": "replace", "path": "emails[type eq", "value": "x"}),
            "invalidPath",
        ),
        (json!({"op": "remove"}), "noTarget"),
        (json!({"op": "remove", "path": "emails"}), "mutability"),
        (
            json!({"op": "replace", "path": "userName", "value": ""}),
            "invalidValue",
        ),
    ];
    for (third, scim_type) in cases {
        let ops = json!([
            {"op": "replace", "value": {"active": false}},
            {"op": "replace", "path": "userName", "value": "changed@example.com"},
            third,
            {"op": "remove", "path": "roles"}
        ]);
        let reply = s.patch(&path, &patch_op(ops)).await;
        let detail = reply.expect_error(400, Some(scim_type));
        assert!(detail.starts_with("Operation 3"), "{detail}");
        assert_eq!(s.fetch(&id_of(&created)).await, created, "{scim_type}");
    }
}

async fn patch_with_too_many_operations(b: Backend) {
    let s = Scim::start(b).await;
    let created = s.create("jane@example.com", "00u1").await;
    let path = format!("/Users/{}", id_of(&created));
    let op = json!({"op": "replace", "path": "active", "value": false});
    let reply = s
        .patch(&path, &patch_op(Value::Array(vec![op.clone(); 101])))
        .await;
    reply.expect_error(400, Some("tooMany"));
    assert_eq!(s.fetch(&id_of(&created)).await, created);
    let reply = s.patch(&path, &patch_op(Value::Array(vec![op; 100]))).await;
    assert_eq!(reply.expect(200)["active"], false);
    s.patch(&path, &patch_op(json!([])))
        .await
        .expect_error(400, Some("invalidSyntax"));
}

async fn accounts_never_see_each_other(b: Backend) {
    let s = Scim::start(b).await;
    let other_token = s.env.account_with_token("globex").await;
    let as_other = |method: Method, path: &str| {
        s.http
            .request(method, s.url(path))
            .bearer_auth(&other_token)
            .header("content-type", OKTA_CONTENT_TYPE)
    };
    let mine = s.create("jane@example.com", "00u1").await;
    let id = id_of(&mine);
    // Globex sees none of Acme's users and cannot touch them: 404, not 403.
    let reply = s.send(as_other(Method::GET, "/Users")).await;
    assert_eq!(reply.expect(200)["totalResults"], 0);
    let reply = s
        .send(as_other(
            Method::GET,
            &with_query("/Users", &[("filter", "userName eq \"jane@example.com\"")]),
        ))
        .await;
    assert_eq!(reply.expect(200)["totalResults"], 0);
    let reply = s
        .send(as_other(
            Method::GET,
            &format!("/Users?filter=id+eq+%22{id}%22"),
        ))
        .await;
    assert_eq!(reply.expect(200)["totalResults"], 0);
    s.send(as_other(Method::GET, &format!("/Users/{id}")))
        .await
        .expect_error(404, None);
    let mut body = mine.clone();
    body["active"] = json!(false);
    s.send(as_other(Method::PUT, &format!("/Users/{id}")).body(body.to_string()))
        .await
        .expect_error(404, None);
    let deactivate = patch_op(json!([{"op": "replace", "value": {"active": false}}]));
    s.send(as_other(Method::PATCH, &format!("/Users/{id}")).body(deactivate.to_string()))
        .await
        .expect_error(404, None);
    // The same userName and externalId may exist in another account.
    let theirs = s
        .send(
            as_other(Method::POST, "/Users")
                .body(okta_user("jane@example.com", "00u1").to_string()),
        )
        .await;
    let theirs = theirs.expect(201).clone();
    assert_ne!(theirs["id"], mine["id"]);
    assert_eq!(s.fetch(&id).await, mine);
    s.get(&format!("/Users/{}", id_of(&theirs)))
        .await
        .expect_error(404, None);
    assert_eq!(s.get("/Users").await.expect(200)["totalResults"], 1);
}

async fn errors_never_echo_submitted_values(b: Backend) {
    let s = Scim::start(b).await;
    let secret = "Zq9-secret-value";
    let created = s.create("jane@example.com", "00u1").await;
    let path = format!("/Users/{}", id_of(&created));
    let replies = [
        s.post(
            "/Users",
            &json!({"userName": "x@example.com", "active": secret}),
        )
        .await,
        s.post(
            "/Users",
            &json!({"userName": "x@example.com", "roles": [secret]}),
        )
        .await,
        s.post(
            "/Users",
            &json!({"userName": secret, "password": secret, "emails": 1}),
        )
        .await,
        s.post("/Users", &okta_user("jane@example.com", secret))
            .await,
        s.patch(
            &path,
            &patch_op(json!([{"op": "replace", "path": "active", "value": secret}])),
        )
        .await,
        s.patch(
            &path,
            &patch_op(json!([{"op": "replace", "path": format!("{secret}[x"), "value": 1}])),
        )
        .await,
        s.get(&format!("/Users?filter=userName+eq+%22{secret}%22+and"))
            .await,
        s.get(&format!("/Users?filter={secret}+eq+%22x%22")).await,
        s.get(&format!("/Users?count={secret}")).await,
        s.send(
            s.request(Method::POST, "/Users")
                .header("content-type", OKTA_CONTENT_TYPE)
                .body(format!("{{\"password\": \"{secret}")),
        )
        .await,
    ];
    for reply in replies {
        assert!(reply.status >= 400, "{}", reply.text);
        assert_eq!(
            reply.body["schemas"],
            json!([ERROR_SCHEMA]),
            "{}",
            reply.text
        );
        assert!(!reply.text.contains(secret), "echoed: {}", reply.text);
    }
}

/// SQLite: another process holds the write lock past the busy timeout. The
/// write is answered 503 with `Retry-After` (reads keep working: WAL), and
/// once the lock is released the same request succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_database_is_503_then_recovers() {
    use sea_orm::sqlx::{Connection as _, SqliteConnection};

    let s = Scim::start(Backend::Sqlite).await;
    s.create("jane@example.com", "00u1").await;
    let mut holder = SqliteConnection::connect(&s.env.database_url)
        .await
        .unwrap();
    sea_orm::sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();

    let reply = s
        .post("/Users", &okta_user("bob@example.com", "00u2"))
        .await;
    reply.expect_error(503, None);
    assert!(reply.header("retry-after").is_some());
    assert_eq!(
        s.get("/Users?count=0").await.expect(200)["totalResults"],
        1,
        "reads still work"
    );

    sea_orm::sqlx::query("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    s.post("/Users", &okta_user("bob@example.com", "00u2"))
        .await
        .expect(201);
    assert_eq!(s.get("/Users?count=0").await.expect(200)["totalResults"], 2);
}
