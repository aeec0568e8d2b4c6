//! Roles and account administration: the `admin` command, `/v1/admin/users*`, deleting users
//! (tombstones, reserved or freed usernames, admins never deleted over HTTP).

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::{json, Value};
use switchboard_auth::admin::AdminCommand;
use switchboard_auth::{AuthError, TokenError};

use crate::support::{
    assert_error, claims_of, next_revocation, sid_of, Backend, Harness, PASSWORD,
};

fn create(username: &str, email: &str) -> AdminCommand {
    AdminCommand::Create {
        username: username.to_owned(),
        email: email.to_owned(),
        password_stdin: true,
    }
}

fn promote(username: &str) -> AdminCommand {
    AdminCommand::Promote {
        username: username.to_owned(),
    }
}

fn demote(username: &str) -> AdminCommand {
    AdminCommand::Demote {
        username: username.to_owned(),
    }
}

async fn the_admin_command_creates_promotes_and_demotes(backend: Backend) {
    let h = Harness::new(backend).await;
    let done = h
        .admin(create("root", "root@example.com"), &format!("{PASSWORD}\n"))
        .await
        .unwrap();
    assert!(done.contains("root"), "{done}");
    let root = h.login("root").await;
    assert_eq!(root.user.role, "admin");
    assert_eq!(claims_of(&h.auth, &root.access_token).await.role, "admin");

    // `create` makes a new account only: an existing name is refused (use `promote`).
    let again = h
        .admin(create("root", "other@example.com"), "password123\n")
        .await;
    assert!(matches!(again, Err(AuthError::UsernameTaken)), "{again:?}");
    // The registration rules apply, and a password must be given.
    for (cmd, stdin) in [
        (create("Root!", "x@example.com"), "password123\n"),
        (create("carol", "not-an-email"), "password123\n"),
        (create("carol", "carol@example.com"), "short\n"),
        (create("carol", "carol@example.com"), ""),
    ] {
        let refused = h.admin(cmd.clone(), stdin).await;
        assert!(
            matches!(refused, Err(AuthError::BadRequest(_))),
            "{cmd:?}: {refused:?}"
        );
    }
    assert_eq!(h.auth.user_by_username("carol").await.unwrap(), None);

    // Promote and demote work on live accounts; the next refresh carries the new role.
    let (alice, _) = h.user("alice").await;
    assert_eq!(alice.user.role, "user");
    h.admin(promote("alice"), "").await.unwrap();
    let refreshed = h.refresh(&alice.refresh_token).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.json);
    assert_eq!(refreshed.json["user"]["role"], "admin");
    let token = refreshed.json["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&h.auth, &token).await.role, "admin");
    h.admin(demote("alice"), "").await.unwrap();
    let refreshed = h
        .refresh(refreshed.json["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(refreshed.json["user"]["role"], "user");
    for cmd in [promote("nobody"), demote("nobody")] {
        let refused = h.admin(cmd, "").await;
        assert!(
            matches!(refused, Err(AuthError::UserNotFound)),
            "{refused:?}"
        );
    }
}

/// Every admin route: 401 without a token or with a bad one, 403 `forbidden` for a user (and
/// for an admin demoted since the token was issued), before anything is read or changed.
async fn admin_routes_refuse_anonymous_callers_and_users(backend: Backend) {
    let h = Harness::new(backend).await;
    let admin = h.admin_user("root").await;
    let (bob, _) = h.user("bob").await;
    let bob_id = bob.user.id.clone();
    let routes = [
        ("GET", "/v1/admin/users".to_owned(), None),
        (
            "PATCH",
            format!("/v1/admin/users/{bob_id}"),
            Some(r#"{"email":"hijacked@example.com"}"#),
        ),
        ("DELETE", format!("/v1/admin/users/{bob_id}"), None),
        (
            "PUT",
            format!("/v1/admin/users/{bob_id}/role"),
            Some(r#"{"role":"admin"}"#),
        ),
    ];
    for (method, path, body) in &routes {
        let anonymous = h.request(method, path, None, *body).await;
        assert_error(&anonymous, StatusCode::UNAUTHORIZED, "unauthorized");
        let forged = h.request(method, path, Some("not.a.token"), *body).await;
        assert_error(&forged, StatusCode::UNAUTHORIZED, "unauthorized");
        let user = h
            .request(method, path, Some(&bob.access_token), *body)
            .await;
        assert_error(&user, StatusCode::FORBIDDEN, "forbidden");
    }
    // Nothing changed.
    let me = h.me(&bob.access_token).await;
    assert_eq!(me.json["user"]["email"], "bob@example.com");
    assert_eq!(me.json["user"]["role"], "user");

    // The stored role decides: a demoted admin's token no longer opens the routes.
    let ok = h
        .request("GET", "/v1/admin/users", Some(&admin.access_token), None)
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    h.admin(demote("root"), "").await.unwrap();
    let demoted = h
        .request("GET", "/v1/admin/users", Some(&admin.access_token), None)
        .await;
    assert_error(&demoted, StatusCode::FORBIDDEN, "forbidden");
}

async fn admins_list_users_in_pages(backend: Backend) {
    let h = Harness::new(backend).await;
    let admin = h.admin_user("root").await;
    for name in ["amy", "ben", "cat", "dan"] {
        h.register(name).await;
    }
    h.login("ben").await;
    let (gone, _) = h.user("eve").await;
    let deleted = h
        .request("DELETE", "/v1/auth/me", Some(&gone.access_token), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    let list = |query: &str| {
        let path = format!("/v1/admin/users{query}");
        let token = admin.access_token.clone();
        let h = &h;
        async move { h.request("GET", &path, Some(&token), None).await }
    };
    let all = list("").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.json);
    let names: Vec<&str> = all.json["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    // Registration order; the deleted account is not listed.
    assert_eq!(names, ["root", "amy", "ben", "cat", "dan"]);
    assert!(all.json.get("next_cursor").is_none(), "{}", all.json);
    let users = all.json["users"].as_array().unwrap();
    let ben = &users[2];
    assert_eq!(ben["email"], "ben@example.com");
    assert_eq!(ben["role"], "user");
    assert!(ben["created_ts"].as_i64().unwrap() > 1_700_000_000_000);
    assert!(ben["last_login_ts"].as_i64().unwrap() >= ben["created_ts"].as_i64().unwrap());
    assert!(
        users[1].get("last_login_ts").is_none(),
        "amy never logged in"
    );
    assert_eq!(users[0]["role"], "admin");

    // Pages of two, following the cursor to the end.
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = list(&query).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.json);
        let users = page.json["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        seen.extend(
            users
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_owned()),
        );
        match page.json["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, names);

    // Search by part of the username.
    let found = list("?q=an").await;
    let found: Vec<&Value> = found.json["users"].as_array().unwrap().iter().collect();
    let found: Vec<&str> = found
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["dan"]);

    // Bounds: limit 1..=100, cursors and searches of sane size and alphabet.
    let long = "x".repeat(65);
    for bad in [
        "?limit=0".to_owned(),
        "?limit=101".to_owned(),
        "?limit=-1".to_owned(),
        format!("?cursor={long}"),
        "?q=A%25".to_owned(),
        format!("?q={}", "a".repeat(33)),
    ] {
        assert_error(&list(&bad).await, StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(list("?limit=100").await.status, StatusCode::OK);
}

async fn admins_change_emails(backend: Backend) {
    let h = Harness::new(backend).await;
    let admin = h.admin_user("root").await;
    let (bob, _) = h.user("bob").await;
    h.register("carol").await;
    let path = format!("/v1/admin/users/{}", bob.user.id);
    let patch = |path: String, body: Value| {
        let token = admin.access_token.clone();
        let h = &h;
        async move {
            h.request("PATCH", &path, Some(&token), Some(&body.to_string()))
                .await
        }
    };

    let ok = patch(path.clone(), json!({"email": "bob@example.org"})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    assert_eq!(ok.json["user"]["email"], "bob@example.org");
    assert_eq!(ok.json["user"]["username"], "bob");
    assert_eq!(
        h.me(&bob.access_token).await.json["user"]["email"],
        "bob@example.org"
    );

    assert_error(
        &patch(path.clone(), json!({"email": "nope"})).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        &patch(path.clone(), json!({"mail": "x@example.com"})).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    // Taken by carol, whatever the case.
    assert_error(
        &patch(path.clone(), json!({"email": "Carol@Example.com"})).await,
        StatusCode::CONFLICT,
        "email_taken",
    );
    // One's own address again is no conflict.
    let same = patch(path.clone(), json!({"email": "bob@example.org"})).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.json);
    assert_error(
        &patch(
            "/v1/admin/users/no-such-id".to_owned(),
            json!({"email": "x@example.com"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    );
}

async fn admins_delete_users_but_never_admins(backend: Backend) {
    let h = Harness::new(backend).await;
    let admin = h.admin_user("root").await;
    let other_admin = h.admin_user("boss").await;
    let (bob, sid1) = h.user("bob").await;
    let second = h.login("bob").await;
    let sid2 = sid_of(&second);
    let (carol, _) = h.user("carol").await;
    let mut revoked = h.auth.subscribe_revocations();

    let path = format!("/v1/admin/users/{}", bob.user.id);
    let resp = h
        .request("DELETE", &path, Some(&admin.access_token), None)
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.json);
    let announced = BTreeSet::from([
        next_revocation(&mut revoked).await,
        next_revocation(&mut revoked).await,
    ]);
    assert_eq!(announced, BTreeSet::from([sid1, sid2]));
    for pair in [&bob, &second] {
        let err = h.auth.verifier().verify(&pair.access_token).await;
        assert!(matches!(err, Err(TokenError::Revoked)), "{err:?}");
        assert_error(
            &h.refresh(&pair.refresh_token).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }
    // The tombstone: others see a deleted user under the reserved name.
    let lookup = h
        .request("GET", "/v1/users/bob", Some(&carol.access_token), None)
        .await;
    assert_eq!(lookup.status, StatusCode::OK, "{}", lookup.json);
    assert_eq!(
        lookup.json,
        json!({"user": {"id": bob.user.id, "username": "bob", "role": "user", "deleted": true}})
    );
    assert_eq!(h.auth.user_by_username("bob").await.unwrap(), None);
    let register = h
        .post(
            "/v1/auth/register",
            json!({"username": "bob", "email": "new@example.com", "password": PASSWORD}),
        )
        .await;
    assert_error(&register, StatusCode::CONFLICT, "username_taken");
    // Gone: a second deletion finds nobody.
    assert_error(
        &h.request("DELETE", &path, Some(&admin.access_token), None)
            .await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    );

    // Admins are never deleted over HTTP: not another admin, not oneself, not by DELETE /me.
    for target in [&other_admin.user.id, &admin.user.id] {
        let resp = h
            .request(
                "DELETE",
                &format!("/v1/admin/users/{target}"),
                Some(&admin.access_token),
                None,
            )
            .await;
        assert_error(&resp, StatusCode::CONFLICT, "forbidden_target");
    }
    let me = h
        .request("DELETE", "/v1/auth/me", Some(&admin.access_token), None)
        .await;
    assert_error(&me, StatusCode::CONFLICT, "forbidden_target");
    assert!(revoked.try_recv().is_err(), "no admin session revoked");
    assert_eq!(h.me(&other_admin.access_token).await.status, StatusCode::OK);
    // Demoted from the command line, the account can be deleted.
    h.admin(demote("boss"), "").await.unwrap();
    let resp = h
        .request(
            "DELETE",
            &format!("/v1/admin/users/{}", other_admin.user.id),
            Some(&admin.access_token),
            None,
        )
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.json);
    assert_eq!(next_revocation(&mut revoked).await, sid_of(&other_admin));
}

async fn deleted_usernames_are_freed_only_when_the_operator_says_so(backend: Backend) {
    let h = Harness::with_config(backend, |cfg| cfg.accounts.free_deleted_usernames = true).await;
    let (alice, _) = h.user("alice").await;
    let (bob, _) = h.user("bob").await;
    let resp = h
        .request("DELETE", "/v1/auth/me", Some(&alice.access_token), None)
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.json);
    // No tombstone under the name: it is free, and a newcomer takes it.
    let lookup = h
        .request("GET", "/v1/users/alice", Some(&bob.access_token), None)
        .await;
    assert_error(&lookup, StatusCode::NOT_FOUND, "user_not_found");
    let newcomer = h.register("alice").await;
    assert_ne!(newcomer["user"]["id"], json!(alice.user.id));
    let err = h.auth.verifier().verify(&alice.access_token).await;
    assert!(matches!(err, Err(TokenError::Revoked)), "{err:?}");
    let fresh = h.login("alice").await;
    assert_eq!(fresh.user.id, newcomer["user"]["id"].as_str().unwrap());
}

/// `PUT /v1/admin/users/{id}/role`: an admin promotes and demotes; a demotion ends every
/// session of the account at once; the refusals; an admin never demotes themself.
async fn admins_promote_and_demote_over_http(backend: Backend) {
    let h = Harness::new(backend).await;
    let root = h.admin_user("root").await;
    let (bob, sid1) = h.user("bob").await;
    let second = h.login("bob").await;
    let sid2 = sid_of(&second);
    let mut revoked = h.auth.subscribe_revocations();
    let put = |id: &str, body: &str, token: &str| {
        let (path, body, token) = (
            format!("/v1/admin/users/{id}/role"),
            body.to_owned(),
            token.to_owned(),
        );
        let h = &h;
        async move { h.request("PUT", &path, Some(&token), Some(&body)).await }
    };

    // Promoted: the answer is the account as an admin sees it; no session ends; the admin
    // routes open at once (stored role) and the next refresh carries the role.
    let ok = put(&bob.user.id, r#"{"role":"admin"}"#, &root.access_token).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    assert_eq!(ok.json["user"]["id"], json!(bob.user.id));
    assert_eq!(ok.json["user"]["username"], "bob");
    assert_eq!(ok.json["user"]["email"], "bob@example.com");
    assert_eq!(ok.json["user"]["role"], "admin");
    assert!(revoked.try_recv().is_err(), "a promotion ends no session");
    let list = h
        .request("GET", "/v1/admin/users", Some(&bob.access_token), None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.json);
    let refreshed = h.refresh(&second.refresh_token).await;
    assert_eq!(refreshed.json["user"]["role"], "admin");
    let second_access = refreshed.json["access_token"].as_str().unwrap().to_owned();
    // Promoting an admin again changes nothing and is no error.
    let again = put(&bob.user.id, r#"{"role":"admin"}"#, &root.access_token).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.json);

    // Demoted by another admin: every session of the account ends (tokens revoked, refresh
    // refused, sockets closed by the broadcast), so the old `role` claim dies with them.
    let ok = put(&bob.user.id, r#"{"role":"user"}"#, &root.access_token).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    assert_eq!(ok.json["user"]["role"], "user");
    let announced = BTreeSet::from([
        next_revocation(&mut revoked).await,
        next_revocation(&mut revoked).await,
    ]);
    assert_eq!(announced, BTreeSet::from([sid1, sid2]));
    for token in [&bob.access_token, &second_access] {
        let err = h.auth.verifier().verify(token).await;
        assert!(matches!(err, Err(TokenError::Revoked)), "{err:?}");
    }
    assert_error(
        &h.refresh(refreshed.json["refresh_token"].as_str().unwrap())
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let back = h.login("bob").await;
    assert_eq!(back.user.role, "user");
    assert_error(
        &h.request("GET", "/v1/admin/users", Some(&back.access_token), None)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    // Refusals: a bad role or body (400), an unknown id (404), oneself (409).
    for body in [
        r#"{"role":"root"}"#,
        r#"{"role":"Admin"}"#,
        r#"{"role":null}"#,
        r#"{}"#,
        "not json",
    ] {
        assert_error(
            &put(&bob.user.id, body, &root.access_token).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        );
    }
    assert_error(
        &put("no-such-id", r#"{"role":"admin"}"#, &root.access_token).await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    );
    let (gone, gone_sid) = h.user("gone").await;
    let deleted = h
        .request("DELETE", "/v1/auth/me", Some(&gone.access_token), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(next_revocation(&mut revoked).await, gone_sid);
    assert_error(
        &put(&gone.user.id, r#"{"role":"admin"}"#, &root.access_token).await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    );
    assert_error(
        &put(&root.user.id, r#"{"role":"user"}"#, &root.access_token).await,
        StatusCode::CONFLICT,
        "forbidden_target",
    );
    // "Promoting" oneself is harmless (already an admin).
    let me = put(&root.user.id, r#"{"role":"admin"}"#, &root.access_token).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.json);
    assert_eq!(h.me(&root.access_token).await.json["user"]["role"], "admin");
    // None of the refusals ended a session.
    assert!(revoked.try_recv().is_err(), "no session revoked");

    // Two admins: one may demote the other, never the last one themself.
    let boss = h.admin_user("boss").await;
    let ok = put(&root.user.id, r#"{"role":"user"}"#, &boss.access_token).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.json);
    assert_error(
        &put(&boss.user.id, r#"{"role":"user"}"#, &root.access_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &put(&boss.user.id, r#"{"role":"user"}"#, &boss.access_token).await,
        StatusCode::CONFLICT,
        "forbidden_target",
    );
}

/// Two admins demoting each other at the same moment: the caller's role is checked in the
/// transaction of the change, so one succeeds and the other is refused, and one admin remains,
/// whatever the interleaving.
async fn admins_demoting_each_other_at_once_leave_one_admin(backend: Backend) {
    let h = Harness::new(backend).await;
    for round in 0..5 {
        let (a, b) = (format!("amy{round}"), format!("ben{round}"));
        let amy = h.admin_user(&a).await;
        let ben = h.admin_user(&b).await;
        let demote = |target: &str, token: &str| {
            let (path, token) = (format!("/v1/admin/users/{target}/role"), token.to_owned());
            let h = &h;
            async move {
                h.request("PUT", &path, Some(&token), Some(r#"{"role":"user"}"#))
                    .await
            }
        };
        let (by_amy, by_ben) = tokio::join!(
            demote(&ben.user.id, &amy.access_token),
            demote(&amy.user.id, &ben.access_token)
        );
        // The loser is refused: 403 when its role is checked after the winner's change, 401
        // when the winner's demotion had already revoked its session.
        let mut statuses = [by_amy.status, by_ben.status];
        statuses.sort();
        assert!(
            matches!(
                statuses,
                [
                    StatusCode::OK,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ]
            ),
            "{} {}",
            by_amy.json,
            by_ben.json
        );
        let roles = [
            h.auth.user_by_username(&a).await.unwrap().unwrap().role,
            h.auth.user_by_username(&b).await.unwrap().unwrap().role,
        ];
        assert_eq!(
            roles.iter().filter(|r| *r == "admin").count(),
            1,
            "{roles:?}"
        );
    }
}

backend_tests!(
    admins_demoting_each_other_at_once_leave_one_admin,
    admins_promote_and_demote_over_http,
    the_admin_command_creates_promotes_and_demotes,
    admin_routes_refuse_anonymous_callers_and_users,
    admins_list_users_in_pages,
    admins_change_emails,
    admins_delete_users_but_never_admins,
    deleted_usernames_are_freed_only_when_the_operator_says_so,
);

/// `switchboard-auth admin ...`: the binary's command, on a data dir (SQLite), with the
/// password on standard input; failures exit non-zero with the reason.
#[tokio::test]
async fn the_binary_makes_admins_from_the_command_line() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    let env = crate::support::Env::new(Backend::Sqlite, false).await;
    let data_dir = env.data_dir();
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-auth"))
            .arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(&data_dir)
            .env_remove("DATABASE_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run switchboard-auth admin");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().expect("wait")
    };
    let args = [
        "create",
        "root",
        "--email",
        "root@example.com",
        "--password-stdin",
    ];
    let made = run(&args, &format!("{PASSWORD}\n"));
    assert!(made.status.success(), "{made:?}");
    assert!(String::from_utf8_lossy(&made.stdout).contains("created admin root"));
    let again = run(&args, &format!("{PASSWORD}\n"));
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("taken"),
        "{again:?}"
    );
    let nobody = run(&["promote", "nobody"], "");
    assert!(!nobody.status.success());
    assert!(
        String::from_utf8_lossy(&nobody.stderr).contains("no such user"),
        "{nobody:?}"
    );
    // Without --password-stdin and without a terminal, no password: refused.
    let blind = run(
        &["create", "carol", "--email", "carol@example.com"],
        "password123\n",
    );
    assert!(!blind.status.success());

    let h = Harness::open(env, |_| {}).await;
    let root = h.login("root").await;
    assert_eq!(root.user.role, "admin");
    assert_eq!(h.auth.user_by_username("carol").await.unwrap(), None);
}
