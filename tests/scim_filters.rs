//! SCIM filters (RFC 7644 §3.4.2.2) end to end: parsed by the facade,
//! evaluated by the core in the database, on SQLite and PostgreSQL.
mod common;
mod scim_support;

use std::collections::BTreeSet;

use common::Backend;
use reqwest::Method;
use scim_support::*;
use serde_json::json;

backend_tests!(filters_of_every_operator, bad_filters_are_invalid_filter);

/// The userNames (before `@`) a filter selects, via GET and via .search.
async fn select(s: &Scim, filter: &str) -> BTreeSet<String> {
    let reply = s
        .send(s.request(Method::GET, &with_query("/Users", &[("filter", filter)])))
        .await;
    let body = reply.expect(200).clone();
    let names: BTreeSet<String> = body["Resources"]
        .as_array()
        .expect("Resources")
        .iter()
        .map(|u| {
            u["userName"]
                .as_str()
                .unwrap()
                .split('@')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(body["totalResults"], json!(names.len()), "{filter}");
    let search = s.post("/Users/.search", &json!({"filter": filter})).await;
    assert_eq!(
        search.expect(200)["totalResults"],
        json!(names.len()),
        "search: {filter}"
    );
    names
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

async fn filters_of_every_operator(b: Backend) {
    let s = Scim::start(b).await;
    let alice = json!({
        "userName": "alice@example.com", "externalId": "ext-A",
        "name": {"givenName": "Alice", "familyName": "Smith"},
        "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
        "phoneNumbers": [{"value": "+1 555 0001", "type": "work"}],
        "timezone": "Europe/Paris", "roles": [{"value": "admin", "primary": true}]
    });
    let bob = json!({
        "userName": "bob@example.org", "externalId": "ext-B",
        "name": {"givenName": "Bob", "familyName": "Jones"},
        "emails": [{"value": "bob@example.org"}], "active": false
    });
    let carol = json!({
        "userName": "carol_50%@example.com", "externalId": "ext-c",
        "name": {"givenName": "Carol \"CJ\"", "familyName": "Smith"},
        "emails": [{"value": "carol@example.com"}]
    });
    let alice = s.post("/Users", &alice).await.expect(201).clone();
    s.env.clock.advance(chrono::Duration::hours(1));
    s.post("/Users", &bob).await.expect(201);
    s.env.clock.advance(chrono::Duration::hours(1));
    s.post("/Users", &carol).await.expect(201);
    let alice_id = id_of(&alice);

    let cases: Vec<(String, &[&str])> = vec![
        // eq, case-insensitivity of attribute names, operators and values.
        ("userName eq \"alice@example.com\"".into(), &["alice"]),
        ("USERNAME EQ \"ALICE@EXAMPLE.COM\"".into(), &["alice"]),
        (
            "urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"alice@example.com\"".into(),
            &["alice"],
        ),
        // ne (an absent attribute makes ne true).
        (
            "userName ne \"alice@example.com\"".into(),
            &["bob", "carol_50%"],
        ),
        ("timezone ne \"Europe/Paris\"".into(), &["bob", "carol_50%"]),
        // co, sw, ew, with LIKE wildcards taken literally.
        (
            "userName co \"example.com\"".into(),
            &["alice", "carol_50%"],
        ),
        ("userName co \"_50%\"".into(), &["carol_50%"]),
        ("userName co \"%\"".into(), &["carol_50%"]),
        ("userName sw \"c_rol\"".into(), &[]),
        ("userName sw \"B\"".into(), &["bob"]),
        ("userName ew \".ORG\"".into(), &["bob"]),
        ("emails ew \"example.com\"".into(), &["alice", "carol_50%"]),
        // gt ge lt le on strings and date-times.
        ("userName gt \"bob@example.org\"".into(), &["carol_50%"]),
        (
            "userName ge \"bob@example.org\"".into(),
            &["bob", "carol_50%"],
        ),
        ("userName lt \"bob@example.org\"".into(), &["alice"]),
        ("userName le \"bob@example.org\"".into(), &["alice", "bob"]),
        (
            "meta.created gt \"2026-01-01T12:30:00Z\"".into(),
            &["bob", "carol_50%"],
        ),
        (
            "meta.created ge \"2026-01-01T13:00:00Z\"".into(),
            &["bob", "carol_50%"],
        ),
        (
            "meta.created lt \"2026-01-01T13:00:00Z\"".into(),
            &["alice"],
        ),
        (
            "meta.lastModified le \"2026-01-01T13:00:00Z\"".into(),
            &["alice", "bob"],
        ),
        // pr.
        ("timezone pr".into(), &["alice"]),
        ("phoneNumbers pr".into(), &["alice"]),
        ("externalId pr".into(), &["alice", "bob", "carol_50%"]),
        // booleans (also as strings), null.
        ("active eq true".into(), &["alice", "carol_50%"]),
        ("active eq false".into(), &["bob"]),
        ("active ne true".into(), &["bob"]),
        ("timezone eq null".into(), &["bob", "carol_50%"]),
        ("timezone ne null".into(), &["alice"]),
        // externalId and id are case-exact; a non-UUID id matches nothing.
        ("externalId eq \"ext-A\"".into(), &["alice"]),
        ("externalId eq \"EXT-A\"".into(), &[]),
        (format!("id eq \"{alice_id}\""), &["alice"]),
        ("id eq \"not-a-uuid\"".into(), &[]),
        // name parts are case-insensitive; escapes in strings.
        (
            "name.familyName eq \"smith\"".into(),
            &["alice", "carol_50%"],
        ),
        (
            "name.givenName eq \"Carol \\\"CJ\\\"\"".into(),
            &["carol_50%"],
        ),
        ("roles eq \"admin\"".into(), &["alice"]),
        ("roles.value eq \"REP\"".into(), &["bob", "carol_50%"]),
        // and / or / not / parentheses.
        (
            "name.familyName eq \"Smith\" and active eq true".into(),
            &["alice", "carol_50%"],
        ),
        (
            "userName sw \"a\" or userName sw \"b\"".into(),
            &["alice", "bob"],
        ),
        ("not (userName sw \"a\")".into(), &["bob", "carol_50%"]),
        (
            "not (timezone eq \"Europe/Paris\")".into(),
            &["bob", "carol_50%"],
        ),
        (
            "(userName sw \"a\" or userName sw \"b\") and active eq false".into(),
            &["bob"],
        ),
        (
            "userName sw \"a\" or userName sw \"b\" and active eq true".into(),
            &["alice"],
        ),
        // value paths, and Entra's form.
        (
            "emails[type eq \"work\" and value co \"@example.com\"]".into(),
            &["alice", "carol_50%"],
        ),
        ("emails[value ew \".org\"]".into(), &["bob"]),
        (
            "emails[type eq \"work\"].value eq \"bob@example.org\"".into(),
            &["bob"],
        ),
        ("emails[type eq \"home\"]".into(), &[]),
        (
            "emails.primary eq true and emails.type eq \"work\"".into(),
            &["alice", "bob", "carol_50%"],
        ),
    ];
    for (filter, expected) in &cases {
        assert_eq!(select(&s, filter).await, set(expected), "filter: {filter}");
    }
    // Filter combined with paging.
    let reply = s
        .send(s.request(
            Method::GET,
            &with_query(
                "/Users",
                &[
                    ("filter", "userName co \"@\""),
                    ("count", "1"),
                    ("startIndex", "2"),
                ],
            ),
        ))
        .await;
    let body = reply.expect(200);
    assert_eq!(
        (
            body["totalResults"].clone(),
            body["itemsPerPage"].clone(),
            body["startIndex"].clone()
        ),
        (json!(3), json!(1), json!(2))
    );
}

async fn bad_filters_are_invalid_filter(b: Backend) {
    let s = Scim::start(b).await;
    s.create("jane@example.com", "00u1").await;
    for filter in [
        "userName eq",
        "userName xx \"a\"",
        "(userName eq \"a\"",
        "userName eq \"unterminated",
        "title eq \"boss\"",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"x\"",
        "active gt true",
        "meta.created gt \"yesterday\"",
        "emails[type eq \"work\"",
        "and",
    ] {
        let reply = s
            .send(s.request(Method::GET, &with_query("/Users", &[("filter", filter)])))
            .await;
        reply.expect_error(400, Some("invalidFilter"));
        let reply = s.post("/Users/.search", &json!({"filter": filter})).await;
        reply.expect_error(400, Some("invalidFilter"));
    }
    let long = format!("userName eq \"{}\"", "a".repeat(5000));
    let reply = s
        .send(s.request(
            Method::GET,
            &with_query("/Users", &[("filter", long.as_str())]),
        ))
        .await;
    reply.expect_error(400, Some("invalidFilter"));
    let deep = format!("{}userName eq \"a\"{}", "(".repeat(200), ")".repeat(200));
    let reply = s
        .send(s.request(
            Method::GET,
            &with_query("/Users", &[("filter", deep.as_str())]),
        ))
        .await;
    reply.expect_error(400, Some("invalidFilter"));
}
