//! The auth node is down while a hub restarts: the restarted hub cannot fetch the keys that
//! verify tokens, so it says "try again later" (`unavailable`, close 1013; 503 with
//! `Retry-After` on REST), never "unauthorized" (1008, which ends a session). Clients keep
//! retrying with the credentials they have, and are back without a new login once the auth node
//! is.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_client::protocol::ws::{ClientFrame, ServerFrame};
use switchboard_client::protocol::{close, ErrorCode};
use switchboard_client::reconnect::{ClientEvent, ReconnectingClient};
use switchboard_client::{Api, ClientError, Connection};
use tokio::sync::mpsc;

use crate::support::traffic::reconnect_config;
use crate::support::{closed_within, within, within_for, Cluster, WAIT};

/// Bound on the hub draining on SIGTERM (its `--shutdown-grace-ms` is 1 s) and exiting.
const STOP_LIMIT: Duration = Duration::from_secs(5);
/// Refused attempts the reconnecting client must make while the auth node is down, to show
/// that it keeps trying rather than giving up.
const REFUSED_ATTEMPTS: usize = 3;
/// Bound on the client being back once the auth node is (its backoff is capped at 1 s).
const RECOVERY_LIMIT: Duration = Duration::from_secs(20);

/// What the task driving the client hands over: every event, then the error that ended it.
type Event = Result<ClientEvent, ClientError>;

/// The next event, within `limit`; panics if the client ended.
async fn next(events: &mut mpsc::UnboundedReceiver<Event>, limit: Duration) -> ClientEvent {
    match within_for(limit, "a client event", events.recv()).await {
        Some(Ok(event)) => event,
        Some(Err(error)) => panic!("the reconnecting client ended: {error}"),
        None => panic!("the client task is gone"),
    }
}

/// Events until a message with `body` arrives; panics on a message with another body.
async fn until_message(events: &mut mpsc::UnboundedReceiver<Event>, body: &str) {
    loop {
        match next(events, WAIT).await {
            ClientEvent::Message(message) => {
                assert_eq!(message.body, body, "no other message in between");
                return;
            }
            other => eprintln!("client event: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_retry_through_an_auth_outage_and_resume_without_a_new_login() {
    let mut cluster = Cluster::start(1).await;
    let hub = cluster.hub_http(0);
    let alice = cluster.user("alice", &hub).await;
    let bob = cluster.user("bob", &hub).await;
    let room = alice.room_with(&[&bob]).await;

    // Alice's client gets its token from a source that only records what it hands out: it
    // cannot log in, and it never refreshes.
    let handed_out = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut config = reconnect_config(&cluster.hub_ws(0), alice.token());
    config.tokens = Arc::new({
        let handed_out = Arc::clone(&handed_out);
        let token = alice.token().to_owned();
        move || {
            handed_out.lock().expect("lock").push(token.clone());
            let token = token.clone();
            async move { Ok(Some(token)) }
        }
    });
    let mut client = within("connect", ReconnectingClient::connect(config))
        .await
        .expect("connect");
    within("subscribe", client.subscribe(&room.id, None))
        .await
        .expect("subscribe");
    let (tx, mut events) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            let event = client.next_event().await;
            let ended = event.is_err();
            if tx.send(event).is_err() || ended {
                return;
            }
        }
    });
    let post = |body: &'static str| {
        let api = bob.api.clone();
        let room = room.id.clone();
        async move {
            within("post", api.post_message(&room, body, None))
                .await
                .expect("post")
        }
    };
    post("before the outage").await;
    until_message(&mut events, "before the outage").await;

    // The auth node goes down, then the hub restarts: it has no keys now, and cannot fetch any.
    cluster.kill_auth();
    cluster.terminate_hub(0, STOP_LIMIT).await;
    cluster.restart_hub(0).await;

    // A hello with Alice's token: `unavailable`, then close 1013, not 1008.
    let mut probe = within("upgrade", Connection::connect_raw(&cluster.hub_ws(0), &[]))
        .await
        .expect("upgrade");
    let hello = ClientFrame::Hello {
        id: None,
        token: Some(alice.token().into()),
    };
    probe.send(&hello).await.expect("hello");
    match within("an answer to hello", probe.next_event()).await {
        Ok(ServerFrame::Error { code, .. }) => assert_eq!(code, ErrorCode::Unavailable),
        other => panic!("expected an unavailable error, got {other:?}"),
    }
    assert_eq!(
        closed_within(&mut probe, WAIT).await,
        Some(close::TRY_AGAIN_LATER)
    );
    // REST: 503 with Retry-After, not 401.
    let response = within(
        "GET /v1/rooms",
        reqwest::Client::new()
            .get(format!("{hub}/v1/rooms"))
            .bearer_auth(alice.token())
            .send(),
    )
    .await
    .expect("an answer");
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));

    // Alice's client keeps trying: attempt after attempt is refused, none ends it.
    let mut refused = 0;
    while refused < REFUSED_ATTEMPTS {
        if let ClientEvent::Reconnecting { cause, attempt, .. } = next(&mut events, WAIT).await {
            eprintln!("attempt {attempt}: {cause}");
            refused += usize::from(cause.starts_with(ErrorCode::Unavailable.as_str()));
        }
    }

    // The auth node is back (same key, same database): the client reconnects by itself and
    // resubscribes, and a message sent now reaches it.
    cluster.restart_auth().await;
    loop {
        match next(&mut events, RECOVERY_LIMIT).await {
            ClientEvent::Reconnected { attempt } => {
                eprintln!("reconnected at attempt {attempt}");
                break;
            }
            other => eprintln!("client event: {other:?}"),
        }
    }
    post("after the outage").await;
    until_message(&mut events, "after the outage").await;

    // The same access token all along, from a source that cannot log in ...
    let handed_out = handed_out.lock().expect("lock").clone();
    assert!(handed_out.len() > REFUSED_ATTEMPTS, "{handed_out:?}");
    assert!(handed_out.iter().all(|token| token == alice.token()));
    // ... and the session outlived the outage: its refresh token is still good.
    within(
        "refresh",
        Api::new(&hub).refresh(&alice.tokens.refresh_token),
    )
    .await
    .expect("the refresh token from before the outage still works");
    driver.abort();
}
