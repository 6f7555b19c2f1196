//! Concurrent writes through SCIM: one winner per userName, no lost update.
mod common;
mod scim_support;

use common::Backend;
use scim_support::*;
use serde_json::json;

async fn fifty_concurrent_creates_have_one_winner(b: Backend) {
    let s = Scim::start(b).await;
    let spellings = [
        "élodie@example.com",
        "ÉLODIE@example.com",
        "Élodie@EXAMPLE.com",
        "E\u{301}LODIE@example.com",
    ];
    let mut tasks = Vec::new();
    for i in 0..50 {
        let request = s
            .http
            .post(s.url("/Users"))
            .bearer_auth(&s.token)
            .header("content-type", OKTA_CONTENT_TYPE)
            .json(&okta_user(
                spellings[i % spellings.len()],
                &format!("00u{i}"),
            ));
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        49,
        "{statuses:?}"
    );
    let listed = s.get("/Users?count=0").await;
    assert_eq!(listed.expect(200)["totalResults"], 1);
}

async fn concurrent_patches_never_lose_an_update(b: Backend) {
    let s = Scim::start(b).await;
    let id = id_of(&s.create("jane@example.com", "00u1").await);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let request = s
            .http
            .patch(s.url(&format!("/Users/{id}")))
            .bearer_auth(&s.token)
            .header("content-type", OKTA_CONTENT_TYPE)
            .json(&patch_op(json!([
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": format!("jane{i}@example.com")}
            ])));
        tasks.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body)
        }));
    }
    let mut versions = Vec::new();
    let mut emails = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        // A change either lands (200) or is reported as a conflict (409):
        // never silently overwritten.
        match status {
            200 => {
                versions.push(version_of(&body));
                emails.push(body["emails"][0]["value"].as_str().unwrap().to_owned());
            }
            409 => {}
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(!versions.is_empty());
    let mut unique = versions.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        versions.len(),
        "each landed change has a version of its own: {versions:?}"
    );
    let final_user = s.fetch(&id).await;
    let final_version: i64 = version_of(&final_user)
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .unwrap();
    assert_eq!(
        final_version,
        1 + versions.len() as i64,
        "versions grow by one per change"
    );
    // A stale If-Match is refused.
    let reply = s
        .send(
            s.http
                .patch(s.url(&format!("/Users/{id}")))
                .bearer_auth(&s.token)
                .header("content-type", OKTA_CONTENT_TYPE)
                .header("if-match", "W/\"1\"")
                .json(&patch_op(
                    json!([{"op": "replace", "value": {"active": false}}]),
                )),
        )
        .await;
    reply.expect_error(412, None);
    assert_eq!(s.fetch(&id).await["active"], true);
}

backend_tests!(
    fifty_concurrent_creates_have_one_winner,
    concurrent_patches_never_lose_an_update
);
