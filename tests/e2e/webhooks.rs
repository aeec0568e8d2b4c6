//! Signed webhooks end to end, in both configurations (embedded: the hub process delivers
//! every event; scaled: the hubs deliver theirs, the auth node the user events, and the hubs
//! read the endpoints from the auth node with the service token): an endpoint made through
//! the admin API receives every event of a room, signed, in order, after its receiver failed
//! the first attempts; a 410 disables the endpoint; the hub's admin job routes list deliveries
//! and refuse whoever is not an admin.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use switchboard_tests::webhook::{Request, WebhookSink};
use switchboard_webhooks::sign;

use crate::admin::{admin, call};
use crate::support::{unique_name, within, TestServer, TestUser};

const SECRET: &str = "whsec_e2e_0123456789abcdef";
/// Long enough for a delivery retried twice (backoff 1 s then 2 s, drawn from the upper half).
const DELIVERY_WAIT: Duration = Duration::from_secs(20);

/// Makes an endpoint `id` for `events` at `url`; returns its JSON.
async fn endpoint(root: &TestUser, id: &str, url: &str, events: &[&str]) -> Value {
    let (status, body) = call(
        &root.api,
        Method::POST,
        "/v1/admin/webhooks",
        Some(json!({"id": id, "url": url, "events": events, "secret": SECRET})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

/// The requests of `sink` answered 200, as (type, data) in arrival order, for `room`.
fn delivered(requests: &[Request], room: &str) -> Vec<(String, Value)> {
    requests
        .iter()
        .filter(|r| r.status == Some(200))
        .map(Request::json)
        .filter(|e| e["data"]["room"] == room)
        .map(|e| (e["type"].as_str().unwrap().to_owned(), e["data"].clone()))
        .collect()
}

/// Creates rooms of `owner` until `sink` receives the `room.created` of one: from then on the
/// hub knows the endpoint (a scaled hub refreshes its list from the auth node periodically).
async fn await_hub_knows(owner: &TestUser, sink: &WebhookSink) {
    within("the hub to know the endpoint", async {
        loop {
            let room = owner
                .api
                .create_room(&unique_name("probe"), false)
                .await
                .expect("create a probe room");
            let seen = tokio::time::timeout(
                Duration::from_millis(500),
                sink.wait_until(Duration::from_secs(3600), "the probe", |rs| {
                    rs.iter()
                        .any(|r| r.json()["data"]["room"] == room.id.as_str())
                }),
            )
            .await;
            if seen.is_ok() {
                return;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn every_event_of_a_room_arrives_signed_and_in_order_after_failed_attempts() {
    let server = TestServer::start().await;
    let root = admin(&server).await;
    let sink = WebhookSink::start().await;
    let all = [
        "message.created",
        "message.edited",
        "message.deleted",
        "member.joined",
        "member.left",
        "room.created",
        "user.registered",
        "user.deleted",
    ];
    endpoint(&root, "all", &sink.url("/hooks"), &all).await;
    let alice = server.user("alice").await;
    await_hub_knows(&alice, &sink).await;
    let bob = server.user("bob").await;
    sink.wait_until(DELIVERY_WAIT, "bob's user.registered", |rs| {
        rs.iter().any(|r| {
            let e = r.json();
            e["type"] == "user.registered" && e["data"]["username"] == bob.username.as_str()
        })
    })
    .await;

    // The room's first delivery fails twice; everything after it in the room waits.
    sink.answer_next(&[503, 500]);
    let room = alice
        .api
        .create_room(&unique_name("hooked"), false)
        .await
        .expect("create");
    alice
        .api
        .add_member(&room.id, &bob.username)
        .await
        .expect("add bob");
    // The third message carries a file: its delivery names it as the `message` frame does.
    let file = alice
        .api
        .upload_attachment(&room.id, "notes.txt", b"some notes\n".to_vec())
        .await
        .expect("upload");
    let mut seqs = Vec::new();
    for (body, attachments) in [
        ("one", vec![]),
        ("two", vec![]),
        ("three", vec![file.id.clone()]),
    ] {
        seqs.push(
            alice
                .api
                .post_message_with(&room.id, body, None, &attachments)
                .await
                .expect("post")
                .seq,
        );
    }
    alice
        .api
        .edit_message(&room.id, seqs[0], "one, edited")
        .await
        .expect("edit");
    alice
        .api
        .delete_message(&room.id, seqs[1])
        .await
        .expect("delete");
    bob.api.leave(&room.id).await.expect("leave");

    let requests = sink
        .wait_until(DELIVERY_WAIT, "the room's 8 events", |rs| {
            delivered(rs, &room.id).len() >= 8
        })
        .await;
    let events = delivered(&requests, &room.id);
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "room.created",
            "member.joined",
            "message.created",
            "message.created",
            "message.created",
            "message.edited",
            "message.deleted",
            "member.left"
        ]
    );
    assert_eq!(events[0].1["created_by"], alice.username.as_str());
    assert_eq!(events[1].1["username"], bob.username.as_str());
    for (i, body) in ["one", "two", "three"].iter().enumerate() {
        let data = &events[2 + i].1;
        assert_eq!(
            (&data["body"], &data["seq"]),
            (&json!(body), &json!(seqs[i]))
        );
        assert_eq!(
            (&data["from"], &data["bot"]),
            (&json!(alice.username), &json!(false))
        );
    }
    assert!(events[2].1.get("attachments").is_none(), "{}", events[2].1);
    assert_eq!(
        events[4].1["attachments"],
        serde_json::to_value([&file]).unwrap(),
        "the file, as uploaded"
    );
    assert_eq!(events[5].1["body"], "one, edited");
    assert_eq!(events[6].1["seq"], json!(seqs[1]));
    assert_eq!(events[7].1["username"], bob.username.as_str());

    // Every request is signed with the endpoint's secret, over the body it carries.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for r in &requests {
        let header = r.header(sign::SIGNATURE_HEADER).expect("a signature");
        assert!(
            sign::verify(SECRET.as_bytes(), header, &r.body, now, 300),
            "{header}"
        );
        assert!(!sign::verify(
            b"whsec_not_the_secret",
            header,
            &r.body,
            now,
            300
        ));
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hooks");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    // The failed attempts were the room's first event, and its retry repeats their ids.
    let attempts: Vec<&Request> = requests
        .iter()
        .filter(|r| {
            r.json()["data"]["room"] == room.id.as_str() && r.json()["type"] == "room.created"
        })
        .collect();
    assert_eq!(
        attempts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [Some(503), Some(500), Some(200)]
    );
    for header in [sign::EVENT_ID_HEADER, sign::DELIVERY_ID_HEADER] {
        let ids: Vec<_> = attempts.iter().map(|r| r.header(header)).collect();
        assert!(
            ids[0].is_some() && ids.iter().all(|id| *id == ids[0]),
            "{header}: {ids:?}"
        );
    }
    assert_eq!(
        attempts[0].header(sign::EVENT_ID_HEADER),
        attempts[0].json()["id"].as_str()
    );
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_admins_see_the_dead_delivery() {
    let server = TestServer::start().await;
    let root = admin(&server).await;
    let sink = WebhookSink::start().await;
    endpoint(&root, "gone", &sink.url("/gone"), &["room.created"]).await;
    let alice = server.user("alice").await;
    await_hub_knows(&alice, &sink).await;

    sink.answer_always(Some(410));
    let room = alice
        .api
        .create_room(&unique_name("after"), false)
        .await
        .expect("create");
    sink.wait_until(DELIVERY_WAIT, "the 410", |rs| {
        rs.iter().any(|r| r.status == Some(410))
    })
    .await;
    let list = within("the endpoint to be disabled", async {
        loop {
            let (status, list) = call(&root.api, Method::GET, "/v1/admin/webhooks", None).await;
            assert_eq!(status, 200, "{list}");
            if list["webhooks"][0]["enabled"] == false {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(list["webhooks"][0]["id"], "gone");

    // The delivery that got the 410 is dead, listed by the hub's admin route.
    let dead = within("the delivery to be dead", async {
        loop {
            let (status, page) = call(
                &root.api,
                Method::GET,
                "/v1/admin/hub/jobs?state=dead",
                None,
            )
            .await;
            assert_eq!(status, 200, "{page}");
            let found = page["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|j| {
                    j["kind"] == "webhook"
                        && j["payload"]["event"]["data"]["room"] == room.id.as_str()
                })
                .cloned();
            if let Some(job) = found {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        dead["last_error"].as_str().unwrap().contains("410"),
        "{dead}"
    );
    assert_eq!(dead["attempts"], 1, "a 410 is not retried: {dead}");

    // Disabled: no delivery is enqueued for it any more. Another endpoint, known to the hub
    // after the disabling, receives the next rooms; the disabled one nothing.
    let other = WebhookSink::start().await;
    endpoint(&root, "live", &other.url("/live"), &["room.created"]).await;
    await_hub_knows(&alice, &other).await;
    let before = sink.requests().len();
    let mut later = Vec::new();
    for _ in 0..3 {
        let room = alice
            .api
            .create_room(&unique_name("later"), false)
            .await
            .expect("create");
        later.push(room.id);
    }
    other
        .wait_until(DELIVERY_WAIT, "the later rooms", |rs| {
            later
                .iter()
                .all(|id| rs.iter().any(|r| r.json()["data"]["room"] == id.as_str()))
        })
        .await;
    assert_eq!(
        sink.requests().len(),
        before,
        "a disabled endpoint got requests"
    );
}

#[tokio::test]
async fn the_hub_job_routes_refuse_all_but_admins() {
    let server = TestServer::start().await;
    let root = admin(&server).await;
    let bob = server.user("bob").await;
    for (method, path) in [
        (Method::GET, "/v1/admin/hub/jobs"),
        (Method::POST, "/v1/admin/hub/jobs/0193-none/retry"),
    ] {
        let (status, body) = call(&server.api(), method.clone(), path, None).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (401, &json!("unauthorized")),
            "{path}"
        );
        let (status, body) = call(&bob.api, method.clone(), path, None).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (403, &json!("forbidden")),
            "{path}"
        );
    }
    let (status, body) = call(
        &root.api,
        Method::GET,
        "/v1/admin/hub/jobs?state=gone",
        None,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("bad_request")),
        "{body}"
    );
    let (status, body) = call(&root.api, Method::GET, "/v1/admin/hub/jobs?limit=101", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("bad_request")),
        "{body}"
    );
    let (status, body) = call(
        &root.api,
        Method::POST,
        "/v1/admin/hub/jobs/0193-none/retry",
        None,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("not_found")),
        "{body}"
    );
    let (status, body) = call(&root.api, Method::GET, "/v1/admin/hub/jobs", None).await;
    assert_eq!((status, &body["jobs"]), (200, &json!([])), "{body}");
}

/// The hub binary's bad webhook settings stop it at start, naming the flag (and never
/// repeating a service token): a `--webhooks-file` entry with a URL that does not parse or
/// names the metadata address (embedded auth), a `--webhook-timeout-ms` out of range, a
/// `--service-token` under 16 bytes.
#[tokio::test]
async fn bad_webhook_settings_stop_the_hub_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let hub = switchboard_tests::binary::binary("switchboard-hub", "switchboard-hub");
    let file = dir.path().join("hooks.json");
    let run = |args: Vec<String>| {
        let mut cmd = tokio::process::Command::new(&hub);
        cmd.args(["--listen", "127.0.0.1:0", "--metrics-listen", "off"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("SWITCHBOARD_AUTH_URL")
            .env_remove("SWITCHBOARD_SERVICE_TOKEN")
            .env_remove("SWITCHBOARD_WEBHOOKS_FILE")
            .kill_on_drop(true);
        async move { within("the hub to exit", cmd.output()).await.unwrap() }
    };
    for url in ["not a url", "http://169.254.169.254/latest/meta-data/"] {
        std::fs::write(
            &file,
            format!(r#"[{{"id":"crm","url":"{url}","secret":"0123456789abcdef","events":["room.created"]}}]"#),
        )
        .unwrap();
        let out = run(vec![
            "--webhooks-file".into(),
            file.to_str().unwrap().into(),
        ])
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}: {stderr}");
        assert!(
            stderr.contains("--webhooks-file") && stderr.contains("crm"),
            "{url}: {stderr}"
        );
    }
    let out = run(vec!["--webhook-timeout-ms".into(), "5".into()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--webhook-timeout-ms"), "{stderr}");
    let out = run(vec![
        "--auth-url".into(),
        "http://127.0.0.1:9".into(),
        "--service-token".into(),
        "tooShortS3cret".into(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("--service-token"), "{stderr}");
    assert!(
        !stderr.contains("tooShortS3cret"),
        "the token is not repeated: {stderr}"
    );
}

/// A receiver that never answers costs one attempt of `--webhook-timeout-ms`: the delivery is
/// retried (and then delivered), and other rooms' deliveries go on meanwhile.
#[tokio::test]
async fn a_hanging_receiver_times_out_and_stalls_no_worker() {
    let server = TestServer::start_with(&["--webhook-timeout-ms", "300"]).await;
    let root = admin(&server).await;
    let sink = WebhookSink::start().await;
    endpoint(&root, "slow", &sink.url("/slow"), &["room.created"]).await;
    let alice = server.user("alice").await;
    await_hub_knows(&alice, &sink).await;

    sink.hang(true);
    let hung = alice
        .api
        .create_room(&unique_name("hung"), false)
        .await
        .expect("create");
    sink.wait_until(DELIVERY_WAIT, "the hung attempt", |rs| {
        rs.iter()
            .any(|r| r.status.is_none() && r.json()["data"]["room"] == hung.id.as_str())
    })
    .await;
    sink.hang(false);
    let next = alice
        .api
        .create_room(&unique_name("next"), false)
        .await
        .expect("create");
    let requests = sink
        .wait_until(DELIVERY_WAIT, "both rooms delivered", |rs| {
            [&hung.id, &next.id].iter().all(|id| {
                rs.iter()
                    .any(|r| r.status == Some(200) && r.json()["data"]["room"] == id.as_str())
            })
        })
        .await;
    let attempts: Vec<Option<u16>> = requests
        .iter()
        .filter(|r| r.json()["data"]["room"] == hung.id.as_str())
        .map(|r| r.status)
        .collect();
    assert_eq!(
        attempts.first(),
        Some(&None),
        "the first attempt hung: {attempts:?}"
    );
    assert_eq!(
        attempts.last(),
        Some(&Some(200)),
        "then it was retried: {attempts:?}"
    );
}

/// An endpoint on the cloud metadata address (or any link-local one) is refused with the rule
/// (SSRF), unless the node runs with `--webhook-allow-link-local`.
#[tokio::test]
async fn a_metadata_url_is_refused_unless_allowed() {
    for (flags, allowed) in [
        (&[][..], false),
        (&["--webhook-allow-link-local"][..], true),
    ] {
        let server = TestServer::start_with(flags).await;
        let root = admin(&server).await;
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]:8080/hook",
        ] {
            let (status, body) = call(
                &root.api,
                Method::POST,
                "/v1/admin/webhooks",
                Some(json!({"id": unique_name("m"), "url": url, "events": ["room.created"]})),
            )
            .await;
            if allowed {
                assert_eq!(status, 201, "{url}: {body}");
            } else {
                assert_eq!(
                    (status, &body["error"]["code"]),
                    (400, &json!("bad_request")),
                    "{url}: {body}"
                );
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("link-local"),
                    "{body}"
                );
            }
        }
    }
}
