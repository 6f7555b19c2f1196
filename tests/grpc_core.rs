//! The gRPC core over real connections, on SQLite and PostgreSQL.
mod common;

use chrono::Duration;
use common::{Backend, TestEnv, with_token};
use provisioning_proto::pb::{self, Attribute, Operator, comparison, filter};
use provisioning_server::clock::Clock as _;
use tonic::Code;
use tonic_types::StatusExt as _;

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

fn field(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .and_then(|i| i.metadata.get("field").cloned())
        .unwrap_or_default()
}

fn new_user(user_name: &str) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        user_name: user_name.to_owned(),
        ..Default::default()
    }
}

fn cmp(attribute: Attribute, op: Operator, value: &str) -> pb::Filter {
    pb::Filter {
        kind: Some(filter::Kind::Compare(pb::Comparison {
            attribute: attribute as i32,
            op: op as i32,
            value: Some(comparison::Value::StringValue(value.to_owned())),
        })),
    }
}

fn not(f: pb::Filter) -> pb::Filter {
    pb::Filter {
        kind: Some(filter::Kind::Not(Box::new(f))),
    }
}

fn and(filters: Vec<pb::Filter>) -> pb::Filter {
    pb::Filter {
        kind: Some(filter::Kind::And(pb::FilterList { filters })),
    }
}

fn or(filters: Vec<pb::Filter>) -> pb::Filter {
    pb::Filter {
        kind: Some(filter::Kind::Or(pb::FilterList { filters })),
    }
}

fn present(attribute: Attribute) -> pb::Filter {
    pb::Filter {
        kind: Some(filter::Kind::Present(attribute as i32)),
    }
}

async fn accounts_lifecycle(b: Backend) {
    let env = TestEnv::start(b).await;
    let mut accounts = env.accounts().await;
    let acme = accounts
        .create_account(env.admin(pb::CreateAccountRequest {
            slug: "acme".into(),
            display_name: "Acme Inc".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acme.roles, vec!["admin", "rep"]);
    assert_eq!(acme.default_role, "rep");
    assert!(!acme.scim_enabled);

    let custom = accounts
        .create_account(env.admin(pb::CreateAccountRequest {
            slug: "beta".into(),
            roles: vec!["Owner".into(), "viewer".into()],
            default_role: "viewer".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(custom.roles, vec!["owner", "viewer"]);
    assert_eq!(custom.display_name, "beta");

    let dup = accounts
        .create_account(env.admin(pb::CreateAccountRequest {
            slug: "acme".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);
    assert_eq!(reason(&dup), "ALREADY_EXISTS");

    for (req, bad_field) in [
        (
            pb::CreateAccountRequest {
                slug: "Not A Slug".into(),
                ..Default::default()
            },
            "slug",
        ),
        (
            pb::CreateAccountRequest {
                slug: "".into(),
                ..Default::default()
            },
            "slug",
        ),
        (
            pb::CreateAccountRequest {
                slug: "gamma".into(),
                roles: vec!["bad role!".into()],
                ..Default::default()
            },
            "roles",
        ),
        (
            pb::CreateAccountRequest {
                slug: "delta".into(),
                default_role: "boss".into(),
                ..Default::default()
            },
            "default_role",
        ),
    ] {
        let err = accounts.create_account(env.admin(req)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(field(&err), bad_field);
        assert!(!err.message().contains("Not A Slug") && !err.message().contains("bad role!"));
    }

    let got = accounts
        .get_account(env.admin(pb::GetAccountRequest {
            account: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, acme);
    let missing = accounts
        .get_account(env.admin(pb::GetAccountRequest {
            account: "nope".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let first = accounts
        .list_accounts(env.admin(pb::ListAccountsRequest {
            page_size: 1,
            page_token: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.accounts.len(), 1);
    assert_eq!(first.accounts[0].slug, "acme");
    let second = accounts
        .list_accounts(env.admin(pb::ListAccountsRequest {
            page_size: 1,
            page_token: first.next_page_token,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.accounts[0].slug, "beta");
    assert!(second.next_page_token.is_empty());
}

async fn scim_switch_issues_a_token_once(b: Backend) {
    let env = TestEnv::start(b).await;
    let token = env.account_with_token("acme").await;
    assert!(token.starts_with("scim_"));
    let mut accounts = env.accounts().await;
    let again = accounts
        .set_scim_enabled(env.admin(pb::SetScimEnabledRequest {
            account: "acme".into(),
            enabled: true,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        again.issued_token.is_none(),
        "a live token exists: no new one"
    );

    let mut users = env.users().await;
    users
        .create_user(with_token(new_user("a@example.com"), &token))
        .await
        .unwrap();

    accounts
        .set_scim_enabled(env.admin(pb::SetScimEnabledRequest {
            account: "acme".into(),
            enabled: false,
        }))
        .await
        .unwrap();
    let off = users
        .list_users(with_token(
            pb::ListUsersRequest {
                count: 10,
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(off.code(), Code::FailedPrecondition);
    assert_eq!(reason(&off), "SCIM_DISABLED");
    assert!(off.message().contains("SCIM Enabled"), "{}", off.message());

    let on = accounts
        .set_scim_enabled(env.admin(pb::SetScimEnabledRequest {
            account: "acme".into(),
            enabled: true,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(on.issued_token.is_none());
    users
        .list_users(with_token(
            pb::ListUsersRequest {
                count: 10,
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("the same token works again");
}

async fn authentication_cases(b: Backend) {
    let env = TestEnv::start(b).await;
    let acme = env.account_with_token("acme").await;
    let other = env.account_with_token("other").await;
    let mut users = env.users().await;
    let jane = users
        .create_user(with_token(new_user("jane@example.com"), &acme))
        .await
        .unwrap()
        .into_inner();

    // No credential, a bad one, a non-bearer one.
    let list = || pb::ListUsersRequest {
        count: 10,
        ..Default::default()
    };
    let err = users
        .list_users(tonic::Request::new(list()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = users
        .list_users(with_token(list(), "scim_not-a-real-token"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(reason(&err), "UNAUTHENTICATED");
    let mut basic = tonic::Request::new(list());
    basic
        .metadata_mut()
        .insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    assert_eq!(
        users.list_users(basic).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // The admin credential works everywhere, naming the account.
    let all = users
        .list_users(env.admin(pb::ListUsersRequest {
            account: "acme".into(),
            count: 10,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.total_results, 1);
    // ... but not where the SCIM facade marks the call as SCIM-only.
    let mut scim_only = env.admin(list());
    scim_only
        .metadata_mut()
        .insert("x-scim-only", "1".parse().unwrap());
    assert_eq!(
        users.list_users(scim_only).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // A SCIM token of another account: its user ids are NOT_FOUND, naming the
    // account is PERMISSION_DENIED.
    let err = users
        .get_user(with_token(
            pb::GetUserRequest {
                account: String::new(),
                id: jane.id.clone(),
            },
            &other,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = users
        .get_user(with_token(
            pb::GetUserRequest {
                account: "acme".into(),
                id: jane.id.clone(),
            },
            &other,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = users
        .update_user(with_token(
            pb::UpdateUserRequest {
                id: jane.id.clone(),
                active: Some(false),
                ..Default::default()
            },
            &other,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let listed = users
        .list_users(with_token(list(), &other))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_results, 0);

    // A SCIM token may not call admin RPCs.
    let mut accounts = env.accounts().await;
    let err = accounts
        .get_account(with_token(
            pb::GetAccountRequest {
                account: "acme".into(),
            },
            &acme,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut tokens = env.tokens().await;
    let err = tokens
        .issue_token(with_token(
            pb::IssueTokenRequest {
                account: "acme".into(),
                ..Default::default()
            },
            &acme,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut audit = env.audit().await;
    let err = audit
        .list_events(with_token(
            pb::ListEventsRequest {
                account: "acme".into(),
                ..Default::default()
            },
            &acme,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

async fn token_revocation_rotation_and_expiry(b: Backend) {
    let env = TestEnv::start(b).await;
    let first = env.account_with_token("acme").await;
    let mut tokens = env.tokens().await;
    let mut users = env.users().await;
    let list = || pb::ListUsersRequest {
        count: 1,
        ..Default::default()
    };
    users.list_users(with_token(list(), &first)).await.unwrap();

    // Rotation with a grace period: the old token works until it ends.
    let second = tokens
        .rotate_token(env.admin(pb::RotateTokenRequest {
            account: "acme".into(),
            grace: Some(prost_types::Duration {
                seconds: 600,
                nanos: 0,
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    users
        .list_users(with_token(list(), &first))
        .await
        .expect("inside the grace period");
    users
        .list_users(with_token(list(), &second.secret))
        .await
        .unwrap();
    env.clock.advance(Duration::seconds(601));
    let err = users
        .list_users(with_token(list(), &first))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    users
        .list_users(with_token(list(), &second.secret))
        .await
        .unwrap();

    // Rotation without grace: the old token stops at once.
    let third = tokens
        .rotate_token(env.admin(pb::RotateTokenRequest {
            account: "acme".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        users
            .list_users(with_token(list(), &second.secret))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    users
        .list_users(with_token(list(), &third.secret))
        .await
        .unwrap();

    // Revocation is immediate.
    let info = third.info.unwrap();
    let revoked = tokens
        .revoke_token(env.admin(pb::RevokeTokenRequest {
            token_id: info.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        users
            .list_users(with_token(list(), &third.secret))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let missing = tokens
        .revoke_token(env.admin(pb::RevokeTokenRequest {
            token_id: "not-an-id".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // Expiry.
    let expires = env.clock.now() + Duration::hours(1);
    let expiring = tokens
        .issue_token(env.admin(pb::IssueTokenRequest {
            account: "acme".into(),
            description: "expiring".into(),
            expires_at: Some(prost_types::Timestamp {
                seconds: expires.timestamp(),
                nanos: 0,
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    users
        .list_users(with_token(list(), &expiring.secret))
        .await
        .unwrap();
    env.clock.advance(Duration::hours(2));
    assert_eq!(
        users
            .list_users(with_token(list(), &expiring.secret))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    // Listing shows metadata and last use, never a secret.
    let listed = tokens
        .list_tokens(env.admin(pb::ListTokensRequest {
            account: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(listed.len(), 4);
    assert!(
        listed
            .iter()
            .all(|t| t.prefix.len() == 12 && t.prefix.starts_with("scim_"))
    );
    assert!(
        listed
            .iter()
            .find(|t| t.description == "expiring")
            .unwrap()
            .last_used_at
            .is_some()
    );
}

async fn secrets_are_stored_only_as_hashes(b: Backend) {
    let env = TestEnv::start(b).await;
    let token = env.account_with_token("acme").await;
    let mut users = env.users().await;
    users
        .create_user(with_token(new_user("a@example.com"), &token))
        .await
        .unwrap();
    env.running().core.flush_last_used().await.unwrap();
    let mut all = String::new();
    for table in ["accounts", "scim_tokens", "users", "audit_events"] {
        all.push_str(&env.dump_table(table).await);
    }
    assert!(all.contains("a@example.com"), "the dump reads real rows");
    assert!(!all.contains(&token), "the token secret is stored nowhere");
    assert!(!all.contains(&token[5..]), "not even without its prefix");
    assert!(!all.contains(common::ADMIN_TOKEN));
    assert!(
        all.contains(&provisioning_server::keys::hash_secret(&token)),
        "its hash is"
    );
    let tokens = env
        .tokens()
        .await
        .list_tokens(env.admin(pb::ListTokensRequest {
            account: "acme".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        tokens.tokens[0].last_used_at.is_some(),
        "last use flushed to the database"
    );
    assert!(
        !env.dump_table("scim_tokens")
            .await
            .contains("last_used_at=NULL")
    );
    let file = env.sqlite_file_bytes();
    assert_eq!(file.is_empty(), b == Backend::Postgres);
    let needle = token.as_bytes();
    assert!(
        !file.windows(needle.len()).any(|w| w == needle),
        "not in the database file either"
    );
}

async fn create_and_read_users(b: Backend) {
    let env = TestEnv::start(b).await;
    let token = env.account_with_token("acme").await;
    let mut users = env.users().await;
    let jane = users
        .create_user(with_token(
            pb::CreateUserRequest {
                user_name: "  jane@example.com ".into(),
                external_id: "00ujl29u0le5T6Aj10h7".into(),
                given_name: "Jane".into(),
                family_name: "Doe".into(),
                email: "Jane@Example.com".into(),
                phone_number: "+1 555 0100".into(),
                timezone: "america/new_york".into(),
                role: "ADMIN".into(),
                role_type: "custom".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(jane.user_name, "jane@example.com", "trimmed");
    assert_eq!(jane.timezone, "America/New_York", "canonical IANA name");
    assert_eq!(jane.role, "admin");
    assert_eq!(jane.role_type, "custom");
    assert_eq!(jane.email, "Jane@Example.com");
    assert!(jane.active);
    assert_eq!(jane.version, 1);
    assert_eq!(jane.account, "acme");
    let got = users
        .get_user(with_token(
            pb::GetUserRequest {
                id: jane.id.clone(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, jane);
    let defaulted = users
        .create_user(with_token(new_user("bob@example.com"), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(defaulted.role, "rep", "the account's default role");
    assert!(defaulted.email.is_empty() && defaulted.timezone.is_empty());

    for id in ["not-a-uuid", "00000000-0000-0000-0000-000000000000"] {
        let err = users
            .get_user(with_token(
                pb::GetUserRequest {
                    id: id.into(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(reason(&err), "NOT_FOUND");
    }
}

async fn validation_errors_name_the_field_and_never_echo_values(b: Backend) {
    let env = TestEnv::start(b).await;
    let token = env.account_with_token("acme").await;
    let mut users = env.users().await;
    let secretish = "Sup3rSecretValue";
    let long = "x".repeat(300);
    let cases: Vec<(pb::CreateUserRequest, &str)> = vec![
        (new_user(""), "userName"),
        (new_user("   "), "userName"),
        (new_user(&format!("{secretish}\u{7}")), "userName"),
        (new_user(&long), "userName"),
        (
            pb::CreateUserRequest {
                email: format!("{secretish}-not-an-email"),
                ..new_user("a")
            },
            "email",
        ),
        (
            pb::CreateUserRequest {
                role: secretish.into(),
                ..new_user("a")
            },
            "role",
        ),
        (
            pb::CreateUserRequest {
                timezone: format!("Mars/{secretish}"),
                ..new_user("a")
            },
            "timezone",
        ),
        (
            pb::CreateUserRequest {
                given_name: long.clone(),
                ..new_user("a")
            },
            "givenName",
        ),
        (
            pb::CreateUserRequest {
                phone_number: "1\n2".into(),
                ..new_user("a")
            },
            "phoneNumber",
        ),
    ];
    for (req, expected) in cases {
        let err = users
            .create_user(with_token(req, &token))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{expected}");
        assert_eq!(reason(&err), "INVALID_ARGUMENT");
        assert_eq!(field(&err), expected);
        assert!(!err.message().contains(secretish), "{}", err.message());
        assert!(!err.message().contains(&long));
    }
    let listed = users
        .list_users(with_token(
            pb::ListUsersRequest {
                count: 10,
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_results, 0, "nothing was created");
}

async fn user_names_are_unique_across_unicode_case(b: Backend) {
    let env = TestEnv::start(b).await;
    let token = env.account_with_token("acme").await;
    let other = env.account_with_token("other").await;
    let mut users = env.users().await;
    users
        .create_user(with_token(new_user("élodie@example.com"), &token))
        .await
        .unwrap();
    for dup in [
        "ÉLODIE@example.com",
        "E\u{301}lodie@EXAMPLE.com",
        " élodie@example.com ",
    ] {
        let err = users
            .create_user(with_token(new_user(dup), &token))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::AlreadyExists, "{dup}");
        assert_eq!(reason(&err), "ALREADY_EXISTS");
    }
    // Another account may have the same user name.
    users
        .create_user(with_token(new_user("ÉLODIE@example.com"), &other))
        .await
        .unwrap();
    // Lookup folds the same way.
    let found = users
        .check_login(with_token(
            pb::CheckLoginRequest {
                account: String::new(),
                user: Some(pb::check_login_request::User::UserName(
                    "ÉLODIE@EXAMPLE.COM".into(),
                )),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(found.allowed);
    // externalId uniqueness only when asked for.
    let with_ext = |name: &str, unique: bool| pb::CreateUserRequest {
        external_id: "ext-1".into(),
        unique_external_id: unique,
        ..new_user(name)
    };
    users
        .create_user(with_token(with_ext("x@example.com", true), &token))
        .await
        .unwrap();
    let err = users
        .create_user(with_token(with_ext("y@example.com", true), &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    users
        .create_user(with_token(with_ext("z@example.com", false), &token))
        .await
        .unwrap();
}

async fn concurrent_creates_of_one_user_name_have_one_winner(b: Backend) {
    let env = TestEnv::start(b).await;
    let token = env.account_with_token("acme").await;
    for names in [
        [
            "jane@example.com",
            "JANE@example.com",
            "Jane@Example.COM",
            "jAnE@eXample.com",
        ],
        [
            "élodie@example.com",
            "ÉLODIE@EXAMPLE.COM",
            "E\u{301}LODIE@example.com",
            "élodie@EXAMPLE.com",
        ],
    ] {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let name = names[i % names.len()].to_owned();
            let channel = env.channel().await;
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = pb::user_service_client::UserServiceClient::new(channel);
                client
                    .create_user(with_token(new_user(&name), &token))
                    .await
            }));
        }
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => won += 1,
                Err(err) => assert_eq!(err.code(), Code::AlreadyExists, "{err:?}"),
            }
        }
        assert_eq!(won, 1, "exactly one create wins");
    }
    let listed = env
        .users()
        .await
        .list_users(with_token(
            pb::ListUsersRequest {
                count: 10,
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_results, 2);
    assert_eq!(listed.users.len(), 2);
}

async fn updates_change_only_what_may_change(b: Backend) {
    let env = TestEnv::start(b).await;
    let token = env.account_with_token("acme").await;
    let mut users = env.users().await;
    let jane = users
        .create_user(with_token(
            pb::CreateUserRequest {
                given_name: "Jane".into(),
                email: "jane@example.com".into(),
                ..new_user("jane@example.com")
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let update = |changes: pb::UpdateUserRequest| pb::UpdateUserRequest {
        id: jane.id.clone(),
        ..changes
    };

    let out = users
        .update_user(with_token(
            update(pb::UpdateUserRequest {
                user_name: Some("jane.doe@example.com".into()),
                email: Some("jane.doe@example.com".into()),
                role: Some("Admin".into()),
                expected_version: Some(1),
                ..Default::default()
            }),
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(out.changed);
    let user = out.user.unwrap();
    assert_eq!(
        (
            user.user_name.as_str(),
            user.email.as_str(),
            user.role.as_str()
        ),
        ("jane.doe@example.com", "jane.doe@example.com", "admin")
    );
    assert_eq!(user.version, 2);
    assert_eq!(user.given_name, "Jane");

    // The same values again: nothing changes, no new version, no event.
    let events_before = env
        .audit()
        .await
        .list_events(env.admin(pb::ListEventsRequest {
            account: "acme".into(),
            page_size: 100,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .events
        .len();
    let same = users
        .update_user(with_token(
            update(pb::UpdateUserRequest {
                user_name: Some("JANE.DOE@example.com".into()).filter(|_| false),
                email: Some("jane.doe@example.com".into()),
                role: Some("admin".into()),
                active: Some(true),
                ..Default::default()
            }),
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!same.changed);
    assert_eq!(same.user.unwrap().version, 2);
    let events_after = env
        .audit()
        .await
        .list_events(env.admin(pb::ListEventsRequest {
            account: "acme".into(),
            page_size: 100,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .events
        .len();
    assert_eq!(events_before, events_after);

    // A stale version is ABORTED and changes nothing.
    let err = users
        .update_user(with_token(
            update(pb::UpdateUserRequest {
                email: Some("x@example.com".into()),
                expected_version: Some(1),
                ..Default::default()
            }),
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(reason(&err), "VERSION_CONFLICT");

    // Invalid values fail a plain update and change nothing.
    let err = users
        .update_user(with_token(
            update(pb::UpdateUserRequest {
                email: Some("x@example.com".into()),
                role: Some("boss".into()),
                ..Default::default()
            }),
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(field(&err), "role");
    let now = users
        .get_user(with_token(
            pb::GetUserRequest {
                id: jane.id.clone(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.email, "jane.doe@example.com");

    // Renaming onto another user's name is ALREADY_EXISTS.
    users
        .create_user(with_token(new_user("bob@example.com"), &token))
        .await
        .unwrap();
    let err = users
        .update_user(with_token(
            update(pb::UpdateUserRequest {
                user_name: Some("BOB@example.com".into()),
                ..Default::default()
            }),
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    // Role "" resets to the default role.
    let reset = users
        .update_user(with_token(
            update(pb::UpdateUserRequest {
                role: Some(String::new()),
                ..Default::default()
            }),
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reset.user.unwrap().role, "rep");
}

async fn deactivation_is_lenient_and_keeps_data(b: Backend) {
    let env = TestEnv::start(b).await;
    let token = env.account_with_token("acme").await;
    let mut users = env.users().await;
    let jane = users
        .create_user(with_token(
            pb::CreateUserRequest {
                email: "jane@example.com".into(),
                timezone: "Europe/Paris".into(),
                ..new_user("jane@example.com")
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    // A deactivation carrying a stale role still goes through.
    let out = users
        .update_user(with_token(
            pb::UpdateUserRequest {
                id: jane.id.clone(),
                active: Some(false),
                role: Some("no-longer-allowed".into()),
                email: Some("not an email".into()),
                lenient: true,
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    let user = out.user.unwrap();
    assert!(!user.active);
    assert_eq!(user.role, "rep");
    assert_eq!(user.email, "jane@example.com");
    assert_eq!(user.timezone, "Europe/Paris", "data kept");
    assert_eq!(out.ignored_fields, vec!["email", "role"]);
    let events = env
        .audit()
        .await
        .list_events(env.admin(pb::ListEventsRequest {
            account: "acme".into(),
            page_size: 1,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events[0].action, "user.deactivated");
    assert_eq!(events[0].ignored_fields, vec!["email", "role"]);
    assert_eq!(events[0].changed_fields, vec!["active"]);

    let login = |user: pb::check_login_request::User| pb::CheckLoginRequest {
        account: String::new(),
        user: Some(user),
    };
    let check = users
        .check_login(with_token(
            login(pb::check_login_request::User::Id(jane.id.clone())),
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!check.allowed);
    assert_eq!(check.reason, "inactive");
    let unknown = users
        .check_login(with_token(
            login(pb::check_login_request::User::UserName(
                "who@example.com".into(),
            )),
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (unknown.allowed, unknown.reason.as_str()),
        (false, "unknown_user")
    );

    // Still readable and listable while inactive.
    users
        .get_user(with_token(
            pb::GetUserRequest {
                id: jane.id.clone(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap();

    // Reactivation restores the same record.
    let back = users
        .reactivate_user(with_token(
            pb::SetActiveRequest {
                id: jane.id.clone(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(back.active);
    assert_eq!(back.id, jane.id);
    assert_eq!(back.version, 3);
    let check = users
        .check_login(with_token(
            login(pb::check_login_request::User::Id(jane.id.clone())),
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(check.allowed);
    // Deactivate through the dedicated RPC too, with a stale version.
    let err = users
        .deactivate_user(with_token(
            pb::SetActiveRequest {
                id: jane.id.clone(),
                expected_version: Some(1),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    let off = users
        .deactivate_user(with_token(
            pb::SetActiveRequest {
                id: jane.id.clone(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!off.active);
    // Without lenient, invalid values fail even a deactivation.
    let err = users
        .update_user(with_token(
            pb::UpdateUserRequest {
                id: jane.id.clone(),
                active: Some(true),
                role: Some("nope".into()),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

async fn list_paging_is_stable(b: Backend) {
    let env = TestEnv::start(b).await;
    let token = env.account_with_token("acme").await;
    let mut users = env.users().await;
    for i in 0..25 {
        users
            .create_user(with_token(
                new_user(&format!("user{i:02}@example.com")),
                &token,
            ))
            .await
            .unwrap();
    }
    let page = |start: i64, count: i64, filter: Option<pb::Filter>| pb::ListUsersRequest {
        start_index: start,
        count,
        filter,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let reply = users
            .list_users(with_token(page(start, 10, None), &token))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.total_results, 25);
        assert_eq!(reply.start_index, start);
        if reply.users.is_empty() {
            break;
        }
        start += reply.users.len() as i64;
        seen.extend(reply.users.into_iter().map(|u| u.user_name));
    }
    let expected: Vec<String> = (0..25).map(|i| format!("user{i:02}@example.com")).collect();
    assert_eq!(seen, expected);

    let zero = users
        .list_users(with_token(page(1, 0, None), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((zero.total_results, zero.users.len()), (25, 0));
    let below = users
        .list_users(with_token(page(-5, 2, None), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(below.start_index, 1);
    assert_eq!(below.users[0].user_name, "user00@example.com");
    let capped = users
        .list_users(with_token(page(1, 100_000, None), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(capped.users.len(), 25);

    // Filtered pages keep the same order.
    let filtered = users
        .list_users(with_token(
            page(3, 2, Some(cmp(Attribute::UserName, Operator::Sw, "USER1"))),
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(filtered.total_results, 10);
    let names: Vec<_> = filtered
        .users
        .iter()
        .map(|u| u.user_name.as_str())
        .collect();
    assert_eq!(names, ["user12@example.com", "user13@example.com"]);
    // The total is right on a short last page, past the end, and for counts
    // only.
    for (start, count, total, len) in [
        (9, 5, 10, 2),
        (1, 50, 10, 10),
        (20, 5, 10, 0),
        (1, 0, 10, 0),
    ] {
        let reply = users
            .list_users(with_token(
                page(
                    start,
                    count,
                    Some(cmp(Attribute::UserName, Operator::Sw, "user1")),
                ),
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (reply.total_results, reply.users.len()),
            (total, len),
            "start {start} count {count}"
        );
    }
}

async fn filters_are_evaluated_in_the_database(b: Backend) {
    let env = TestEnv::start(b).await;
    let token = env.account_with_token("acme").await;
    let mut users = env.users().await;
    let mk = |name: &str, given: &str, email: &str, ext: &str| pb::CreateUserRequest {
        user_name: name.into(),
        given_name: given.into(),
        email: email.into(),
        external_id: ext.into(),
        ..Default::default()
    };
    let jane = users
        .create_user(with_token(
            mk("jane@example.com", "Jane", "jane@example.com", "EXT-1"),
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    users
        .create_user(with_token(
            mk("élodie@exemple.fr", "Élodie", "", "ext-2"),
            &token,
        ))
        .await
        .unwrap();
    users
        .create_user(with_token(
            mk("100%_sure@example.com", "", "pct@example.com", ""),
            &token,
        ))
        .await
        .unwrap();
    users
        .update_user(with_token(
            pb::UpdateUserRequest {
                id: jane.id.clone(),
                active: Some(false),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap();

    let names = |filter: pb::Filter| {
        let token = token.clone();
        let mut users = users.clone();
        async move {
            let reply = users
                .list_users(with_token(
                    pb::ListUsersRequest {
                        filter: Some(filter),
                        count: 100,
                        ..Default::default()
                    },
                    &token,
                ))
                .await;
            reply.map(|r| {
                r.into_inner()
                    .users
                    .into_iter()
                    .map(|u| u.user_name)
                    .collect::<Vec<_>>()
            })
        }
    };
    let all = [
        "jane@example.com",
        "élodie@exemple.fr",
        "100%_sure@example.com",
    ];
    let pick = |idx: &[usize]| idx.iter().map(|i| all[*i].to_owned()).collect::<Vec<_>>();

    assert_eq!(
        names(cmp(Attribute::UserName, Operator::Eq, "JANE@EXAMPLE.COM"))
            .await
            .unwrap(),
        pick(&[0])
    );
    assert_eq!(
        names(cmp(Attribute::UserName, Operator::Eq, "ÉLODIE@EXEMPLE.FR"))
            .await
            .unwrap(),
        pick(&[1])
    );
    assert_eq!(
        names(cmp(Attribute::UserName, Operator::Co, "EXAMPLE"))
            .await
            .unwrap(),
        pick(&[0, 2])
    );
    assert_eq!(
        names(cmp(Attribute::UserName, Operator::Sw, "Él"))
            .await
            .unwrap(),
        pick(&[1])
    );
    assert_eq!(
        names(cmp(Attribute::UserName, Operator::Ew, ".FR"))
            .await
            .unwrap(),
        pick(&[1])
    );
    // LIKE wildcards are plain characters.
    assert_eq!(
        names(cmp(Attribute::UserName, Operator::Co, "%_"))
            .await
            .unwrap(),
        pick(&[2])
    );
    assert_eq!(
        names(cmp(Attribute::UserName, Operator::Co, "_"))
            .await
            .unwrap(),
        pick(&[2])
    );
    assert_eq!(
        names(cmp(Attribute::UserName, Operator::Sw, "%"))
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    // Ordering is byte-wise on the folded key.
    assert_eq!(
        names(cmp(Attribute::UserName, Operator::Gt, "j"))
            .await
            .unwrap(),
        pick(&[0, 1])
    );
    assert_eq!(
        names(cmp(Attribute::UserName, Operator::Le, "jane@example.com"))
            .await
            .unwrap(),
        pick(&[0, 2])
    );
    // Case-exact attributes.
    assert_eq!(
        names(cmp(Attribute::ExternalId, Operator::Eq, "EXT-1"))
            .await
            .unwrap(),
        pick(&[0])
    );
    assert_eq!(
        names(cmp(Attribute::ExternalId, Operator::Eq, "ext-1"))
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        names(cmp(Attribute::ExternalId, Operator::Co, "xt"))
            .await
            .unwrap(),
        pick(&[1])
    );
    // Absent attributes: ne and not(...) are true, comparisons false.
    assert_eq!(
        names(cmp(Attribute::Email, Operator::Ne, "jane@example.com"))
            .await
            .unwrap(),
        pick(&[1, 2])
    );
    assert_eq!(
        names(not(cmp(Attribute::Email, Operator::Co, "example")))
            .await
            .unwrap(),
        pick(&[1])
    );
    assert_eq!(
        names(present(Attribute::Email)).await.unwrap(),
        pick(&[0, 2])
    );
    assert_eq!(
        names(not(present(Attribute::ExternalId))).await.unwrap(),
        pick(&[2])
    );
    assert_eq!(
        names(cmp(Attribute::GivenName, Operator::Eq, "élodie"))
            .await
            .unwrap(),
        pick(&[1])
    );
    // Booleans, and/or, ids.
    let active = |value: bool| pb::Filter {
        kind: Some(filter::Kind::Compare(pb::Comparison {
            attribute: Attribute::Active as i32,
            op: Operator::Eq as i32,
            value: Some(comparison::Value::BoolValue(value)),
        })),
    };
    assert_eq!(names(active(false)).await.unwrap(), pick(&[0]));
    assert_eq!(
        names(and(vec![active(true), present(Attribute::Email)]))
            .await
            .unwrap(),
        pick(&[2])
    );
    assert_eq!(
        names(or(vec![
            cmp(Attribute::Id, Operator::Eq, &jane.id),
            cmp(Attribute::UserName, Operator::Sw, "100")
        ]))
        .await
        .unwrap(),
        pick(&[0, 2])
    );
    assert_eq!(
        names(cmp(Attribute::Id, Operator::Eq, "not-a-uuid"))
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        names(cmp(Attribute::Id, Operator::Ne, "not-a-uuid"))
            .await
            .unwrap()
            .len(),
        3
    );
    // Dates.
    let created = |op: Operator, seconds: i64| pb::Filter {
        kind: Some(filter::Kind::Compare(pb::Comparison {
            attribute: Attribute::Created as i32,
            op: op as i32,
            value: Some(comparison::Value::TimeValue(prost_types::Timestamp {
                seconds,
                nanos: 0,
            })),
        })),
    };
    let now = env.clock.now().timestamp();
    assert_eq!(names(created(Operator::Le, now)).await.unwrap().len(), 3);
    assert_eq!(names(created(Operator::Gt, now)).await.unwrap().len(), 0);
    // Nulls.
    let null = |op: Operator| pb::Filter {
        kind: Some(filter::Kind::Compare(pb::Comparison {
            attribute: Attribute::Email as i32,
            op: op as i32,
            value: Some(comparison::Value::NullValue(true)),
        })),
    };
    assert_eq!(names(null(Operator::Eq)).await.unwrap(), pick(&[1]));
    assert_eq!(names(null(Operator::Ne)).await.unwrap(), pick(&[0, 2]));

    // Malformed trees are INVALID_FILTER.
    for bad in [
        pb::Filter { kind: None },
        cmp(Attribute::Unspecified, Operator::Eq, "x"),
        cmp(Attribute::Id, Operator::Co, "x"),
        pb::Filter {
            kind: Some(filter::Kind::Compare(pb::Comparison {
                attribute: Attribute::Active as i32,
                op: Operator::Gt as i32,
                value: Some(comparison::Value::BoolValue(true)),
            })),
        },
        pb::Filter {
            kind: Some(filter::Kind::Compare(pb::Comparison {
                attribute: Attribute::UserName as i32,
                op: Operator::Eq as i32,
                value: Some(comparison::Value::BoolValue(true)),
            })),
        },
        (0..70).fold(present(Attribute::Email), |f, _| not(f)),
    ] {
        let err = names(bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(reason(&err), "INVALID_FILTER");
    }
}

async fn audit_trail_records_every_change(b: Backend) {
    let env = TestEnv::start(b).await;
    let token = env.account_with_token("acme").await;
    let other = env.account_with_token("other").await;
    let mut users = env.users().await;
    // Another account's changes never show in this account's trail (the
    // exact lists below would break).
    users
        .create_user(with_token(new_user("bob@example.com"), &other))
        .await
        .unwrap();
    let mut request = with_token(new_user("jane@example.com"), &token);
    request
        .metadata_mut()
        .insert("x-request-id", "req-123".parse().unwrap());
    let jane = users.create_user(request).await.unwrap().into_inner();
    users
        .update_user(with_token(
            pb::UpdateUserRequest {
                id: jane.id.clone(),
                role: Some("admin".into()),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap();
    let mut audit = env.audit().await;
    let page = |token: &str, size: i32| pb::ListEventsRequest {
        account: "acme".into(),
        page_size: size,
        page_token: token.into(),
    };
    let first = audit
        .list_events(env.admin(page("", 2)))
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<_> = first.events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["user.updated", "user.created"]);
    assert_eq!(first.events[0].changed_fields, vec!["role"]);
    assert_eq!(first.events[0].target_id, jane.id);
    assert!(first.events[0].actor.starts_with("token:"));
    assert_eq!(first.events[1].request_id, "req-123");
    let rest = audit
        .list_events(env.admin(page(&first.next_page_token, 100)))
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<_> = rest.events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["token.issued", "account.scim_enabled", "account.created"]
    );
    assert!(rest.events.iter().all(|e| e.actor == "admin"));
    assert!(rest.next_page_token.is_empty());
}

backend_tests!(
    accounts_lifecycle,
    scim_switch_issues_a_token_once,
    authentication_cases,
    token_revocation_rotation_and_expiry,
    secrets_are_stored_only_as_hashes,
    create_and_read_users,
    validation_errors_name_the_field_and_never_echo_values,
    user_names_are_unique_across_unicode_case,
    concurrent_creates_of_one_user_name_have_one_winner,
    updates_change_only_what_may_change,
    deactivation_is_lenient_and_keeps_data,
    list_paging_is_stable,
    filters_are_evaluated_in_the_database,
    audit_trail_records_every_change,
);
