//! The job queue's admin routes through the hub, in both configurations (embedded: auth mounted
//! in the hub; scaled: forwarded to the auth node): a registration's welcome mail is listed as
//! ready (the hub runs no job workers here, `--job-workers 0`), and the refusals keep their
//! codes.

use reqwest::Method;
use serde_json::json;

use crate::admin::{admin, call};
use crate::support::TestServer;

#[tokio::test]
async fn admins_see_the_welcome_mail_of_a_registration() {
    let server = TestServer::start_with(&["--job-workers", "0"]).await;
    let root = admin(&server).await;
    let bob = server.user("bob").await;
    let (status, page) = call(
        &root.api,
        Method::GET,
        "/v1/admin/jobs?state=ready&limit=100",
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let mails: Vec<_> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|job| job["payload"]["username"] == bob.username.as_str())
        .collect();
    assert_eq!(mails.len(), 1, "{page}");
    assert_eq!(mails[0]["kind"], "welcome_mail");
    assert_eq!(
        mails[0]["payload"]["email"],
        format!("{}@example.com", bob.username)
    );
    let id = mails[0]["id"].as_str().unwrap();

    let (status, body) = call(
        &root.api,
        Method::POST,
        &format!("/v1/admin/jobs/{id}/retry"),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("conflict")),
        "{body}"
    );
    let (status, body) = call(&bob.api, Method::GET, "/v1/admin/jobs", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );
    let (status, body) = call(&server.api(), Method::GET, "/v1/admin/jobs", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("unauthorized")),
        "{body}"
    );
    let (status, body) = call(&root.api, Method::GET, "/v1/admin/jobs?state=gone", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("bad_request")),
        "{body}"
    );
}
