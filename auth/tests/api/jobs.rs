//! The job queue in the auth store: registration enqueues the welcome mail in the user's
//! transaction; a handler given in the config runs it (in place of the default, which sends
//! it: `welcome_mail`); admins list and retry jobs
//! (`/v1/admin/jobs*`), and every refusal has its code.

use std::sync::Arc;

use async_trait::async_trait;
use axum::http::StatusCode;
use serde_json::json;
use switchboard_auth::jobs::{MAIL_LANE, WELCOME_MAIL};
use switchboard_jobs::store::{Claim, Finish, Lease, Outcome};
use switchboard_jobs::{Handler, Job, JobFailure, State};
use tokio::sync::mpsc;

use crate::support::{assert_error, within, Backend, Harness, PASSWORD};

backend_tests!(
    registration_enqueues_exactly_one_welcome_mail,
    a_failed_registration_enqueues_nothing,
    a_handler_in_the_config_runs_the_welcome_mail,
    admins_list_jobs_by_state_in_pages,
    admins_retry_dead_jobs,
    the_job_routes_refuse_everyone_but_admins,
    the_job_routes_refuse_bad_input,
);

async fn ready_jobs(h: &Harness) -> Vec<Job> {
    h.auth
        .job_store()
        .list(State::Ready, None, 100)
        .await
        .unwrap()
}

async fn registration_enqueues_exactly_one_welcome_mail(backend: Backend) {
    let h = Harness::new(backend).await;
    let user = h.register("alice").await;
    let jobs = ready_jobs(&h).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    assert_eq!(
        (job.kind.as_str(), job.lane.as_deref()),
        (WELCOME_MAIL, Some(MAIL_LANE))
    );
    assert_eq!(
        job.payload,
        json!({"user_id": user["user"]["id"], "username": "alice", "email": "alice@example.com"})
    );
    assert_eq!(job.attempts, 0);
    // The CLI's placeholder address (RFC 2606 `.invalid`) gets no mail.
    let resp = h
        .post(
            "/v1/auth/register",
            json!({"username": "bob", "email": "bob@users.switchboard.invalid", "password": PASSWORD}),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.json);
    assert_eq!(ready_jobs(&h).await.len(), 1);
}

async fn a_failed_registration_enqueues_nothing(backend: Backend) {
    let h = Harness::new(backend).await;
    h.register("alice").await;
    let again = h
        .post(
            "/v1/auth/register",
            json!({"username": "alice", "email": "other@example.com", "password": PASSWORD}),
        )
        .await;
    assert_error(&again, StatusCode::CONFLICT, "username_taken");
    let bad = h
        .post(
            "/v1/auth/register",
            json!({"username": "carol", "email": "not an address", "password": PASSWORD}),
        )
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(ready_jobs(&h).await.len(), 1);
}

/// Sends each job it runs to the test.
struct Recorder(mpsc::UnboundedSender<Job>);

#[async_trait]
impl Handler for Recorder {
    fn kind(&self) -> &'static str {
        WELCOME_MAIL
    }

    async fn run(&self, job: &Job) -> Result<(), JobFailure> {
        let _ = self.0.send(job.clone());
        Ok(())
    }
}

async fn a_handler_in_the_config_runs_the_welcome_mail(backend: Backend) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let h = Harness::with_config(backend, |cfg| {
        cfg.job_handlers = vec![Arc::new(Recorder(tx))];
        cfg.jobs.workers = 1;
        // Registration nudges a worker: a poll this long proves it.
        cfg.jobs.poll = std::time::Duration::from_secs(3600);
    })
    .await;
    h.register("alice").await;
    let job = within("the welcome mail", rx.recv()).await.unwrap();
    assert_eq!((job.kind.as_str(), job.attempts), (WELCOME_MAIL, 1));
    assert_eq!(job.payload["username"], "alice");
    let store = h.auth.job_store();
    for _ in 0..500 {
        if store.get(&job.id).await.unwrap().unwrap().state == State::Done {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        store.get(&job.id).await.unwrap().unwrap().state,
        State::Done
    );
    h.auth.shutdown_jobs().await;
}

/// Kills the oldest ready job (as a handler's permanent failure would); returns its id.
async fn kill_one(h: &Harness) -> String {
    let store = h.auth.job_store();
    let now = switchboard_jobs::clock::now_ms();
    let claim = Claim {
        kinds: &[WELCOME_MAIL],
        worker: "test/0",
        now,
        lease_until: now + 60_000,
    };
    let job = store.claim(claim).await.unwrap().expect("a ready job");
    let error = "550 no such user".to_owned();
    let finish = Finish {
        lease: Lease::of(&job),
        outcome: Outcome::Dead { error },
        now,
        lane_spacing: None,
    };
    assert!(store.finish(finish).await.unwrap());
    job.id
}

async fn admins_list_jobs_by_state_in_pages(backend: Backend) {
    let h = Harness::new(backend).await;
    let admin = h.admin_user("root").await;
    for name in ["alice", "bob", "carol"] {
        h.register(name).await;
    }
    let dead = kill_one(&h).await; // root's
    let get = |q: &str| {
        let path = format!("/v1/admin/jobs{q}");
        let h = &h;
        let token = admin.access_token.clone();
        async move { h.request("GET", &path, Some(&token), None).await }
    };
    let page = get("").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.json);
    assert_eq!(
        page.json["jobs"].as_array().unwrap().len(),
        1,
        "dead by default"
    );
    let job = &page.json["jobs"][0];
    assert_eq!(job["id"], dead.as_str());
    assert_eq!(job["state"], "dead");
    assert_eq!(job["kind"], WELCOME_MAIL);
    assert_eq!(job["lane"], MAIL_LANE);
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["last_error"], "550 no such user");
    assert_eq!(job["payload"]["username"], "root");
    assert!(job["finished_ts"].is_i64() && job["created_ts"].is_i64());
    assert!(page.json.get("next_cursor").is_none());

    let first = get("?state=ready&limit=2").await;
    let names: Vec<_> = first.json["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["payload"]["username"].clone())
        .collect();
    assert_eq!(names, [json!("alice"), json!("bob")]);
    let cursor = first.json["next_cursor"].as_str().unwrap();
    let second = get(&format!("?state=ready&limit=2&cursor={cursor}")).await;
    assert_eq!(second.json["jobs"][0]["payload"]["username"], "carol");
    assert!(second.json.get("next_cursor").is_none());
    for state in ["running", "done"] {
        let empty = get(&format!("?state={state}")).await;
        assert_eq!(empty.json, json!({"jobs": []}));
    }
}

async fn admins_retry_dead_jobs(backend: Backend) {
    let h = Harness::new(backend).await;
    let admin = h.admin_user("root").await;
    let dead = kill_one(&h).await;
    let path = format!("/v1/admin/jobs/{dead}/retry");
    let retried = h
        .request("POST", &path, Some(&admin.access_token), None)
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.json);
    let job = &retried.json["job"];
    assert_eq!(
        (
            job["id"].as_str(),
            job["state"].as_str(),
            job["attempts"].as_u64()
        ),
        (Some(dead.as_str()), Some("ready"), Some(0))
    );
    assert!(job.get("finished_ts").is_none());
    let stored = h.auth.job_store().get(&dead).await.unwrap().unwrap();
    assert_eq!((stored.state, stored.attempts), (State::Ready, 0));
    // Ready now: a second retry conflicts.
    let again = h
        .request("POST", &path, Some(&admin.access_token), None)
        .await;
    assert_error(&again, StatusCode::CONFLICT, "conflict");
}

async fn the_job_routes_refuse_everyone_but_admins(backend: Backend) {
    let h = Harness::new(backend).await;
    h.admin_user("root").await;
    let (user, _) = h.user("alice").await;
    let dead = kill_one(&h).await;
    let retry = format!("/v1/admin/jobs/{dead}/retry");
    for (method, path) in [("GET", "/v1/admin/jobs"), ("POST", retry.as_str())] {
        assert_error(
            &h.request(method, path, None, None).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        assert_error(
            &h.request(method, path, Some("not.a.token"), None).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        assert_error(
            &h.request(method, path, Some(&user.access_token), None)
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    // A user is refused before the query is looked at.
    let bad = h
        .request(
            "GET",
            "/v1/admin/jobs?state=nope",
            Some(&user.access_token),
            None,
        )
        .await;
    assert_error(&bad, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        h.auth.job_store().get(&dead).await.unwrap().unwrap().state,
        State::Dead
    );
}

async fn the_job_routes_refuse_bad_input(backend: Backend) {
    let h = Harness::new(backend).await;
    let admin = h.admin_user("root").await;
    let token = Some(admin.access_token.as_str());
    for query in [
        "?state=nope",
        "?state=",
        "?limit=0",
        "?limit=101",
        "?limit=x",
        "?cursor=",
        &format!("?cursor={}", "x".repeat(200)),
    ] {
        let resp = h
            .request("GET", &format!("/v1/admin/jobs{query}"), token, None)
            .await;
        assert_error(&resp, StatusCode::BAD_REQUEST, "bad_request");
    }
    let unknown = h
        .request(
            "POST",
            "/v1/admin/jobs/01900000-0000-7000-8000-000000000000/retry",
            token,
            None,
        )
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");
    let ready = ready_jobs(&h).await.remove(0);
    let not_dead = h
        .request(
            "POST",
            &format!("/v1/admin/jobs/{}/retry", ready.id),
            token,
            None,
        )
        .await;
    assert_error(&not_dead, StatusCode::CONFLICT, "conflict");
    let wrong_method = h
        .request(
            "GET",
            &format!("/v1/admin/jobs/{}/retry", ready.id),
            token,
            None,
        )
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn the_job_flags_map_onto_the_config_and_refuse_bad_values() {
    use clap::Parser as _;
    use std::time::Duration;
    use switchboard_auth::node::NodeConfig;

    let parse = |args: &[&str]| {
        NodeConfig::try_parse_from([&["switchboard-auth"], args].concat())
            .map(|cfg| switchboard_auth::jobs::pool_config(&cfg.auth_config()).unwrap())
            .map_err(|e| e.to_string())
    };
    let jobs = parse(&[
        "--job-workers",
        "5",
        "--job-lease-ms",
        "1000",
        "--job-timeout-ms",
        "2000",
        "--job-poll-ms",
        "50",
        "--job-retention-hours",
        "2",
    ])
    .unwrap();
    assert_eq!(jobs.workers, 5);
    assert_eq!(
        (jobs.lease, jobs.timeout, jobs.poll, jobs.retention),
        (
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_millis(50),
            Duration::from_secs(7200)
        )
    );
    let defaults = parse(&[]).unwrap();
    assert_eq!(defaults.workers, 2);
    assert_eq!(
        (
            defaults.lease,
            defaults.timeout,
            defaults.poll,
            defaults.retention
        ),
        (
            Duration::from_secs(30),
            Duration::from_secs(60),
            Duration::from_secs(1),
            Duration::from_secs(168 * 3600)
        )
    );
    assert_eq!(
        defaults.lanes.get(MAIL_LANE),
        Some(&Duration::from_secs(1)),
        "one mail per second"
    );
    // --mail-rate-per-sec is what spaces the mail lane.
    for (rate, spacing) in [("4", 250), ("0.5", 2000)] {
        let jobs = parse(&["--mail-rate-per-sec", rate]).unwrap();
        assert_eq!(
            jobs.lanes.get(MAIL_LANE),
            Some(&Duration::from_millis(spacing)),
            "{rate}"
        );
    }
    for (flag, value) in [
        ("--job-lease-ms", "99"),
        ("--job-timeout-ms", "0"),
        ("--job-poll-ms", "9"),
        ("--job-workers", "many"),
        ("--job-retention-hours", "a week"),
    ] {
        let err = parse(&[flag, value]).unwrap_err();
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
}
