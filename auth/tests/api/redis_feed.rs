//! Revocations across nodes through the machine's Redis: what an auth service writes and
//! announces, and what `redis_feed::follow` makes of it.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use futures_util::StreamExt as _;
use switchboard_auth::redis_feed::{follow, revocation_channel, revocation_key};
use switchboard_auth::{Auth, AuthError, Revocations, TokenError};
use switchboard_protocol::rest::TokenPair;

use crate::support::services::{redis_conn, REDIS_ADDR, REDIS_URL};
use crate::support::AbortOnDrop;
use crate::support::{claims_of, next_revocation, sid_of, within, Backend, Env, Harness};
use switchboard_testkit::Proxy;

/// `until` and TTL (seconds) of the revocation key of `sid`.
async fn recorded(prefix: &str, sid: &str) -> (Option<u64>, i64) {
    let mut conn = redis_conn().await;
    let key = revocation_key(prefix, sid);
    let until: Option<u64> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    (until, ttl)
}

async fn logout(h: &Harness, pair: &TokenPair) {
    let resp = h
        .request("POST", "/v1/auth/logout", Some(&pair.access_token), None)
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.json);
}

/// A follower of `prefix` feeding a `Revocations` of its own, and a receiver of what it applies.
fn follower(
    url: &str,
    prefix: &str,
) -> (
    AbortOnDrop,
    Revocations,
    tokio::sync::broadcast::Receiver<String>,
) {
    let revocations = Revocations::new();
    let rx = revocations.subscribe();
    let task = follow(url, prefix, revocations.clone());
    (AbortOnDrop(task), revocations, rx)
}

async fn logout_is_recorded_with_a_ttl_and_announced(backend: Backend) {
    let h = Harness::with_redis(backend).await;
    let prefix = h.env.redis.as_ref().unwrap().0.clone();
    let (first, sid1) = h.user("alice").await;
    let second = h.login("alice").await;
    let sid2 = sid_of(&second);

    // A raw subscriber, confirmed before the logout, sees the announcement itself.
    let mut raw = redis::Client::open(REDIS_URL)
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    raw.subscribe(revocation_channel(&prefix)).await.unwrap();
    let (_task, theirs, mut applied) = follower(REDIS_URL, &prefix);

    let exp = claims_of(&h.auth, &first.access_token).await.exp;
    logout(&h, &first).await;
    let (until, ttl) = recorded(&prefix, &sid1).await;
    let until = until.expect("the revocation key is set before logout answers");
    assert!(until >= exp, "until {until} covers the token's exp {exp}");
    let remaining = i64::try_from(until).unwrap() - now();
    assert!(
        ttl > 0 && ttl <= remaining + 1,
        "ttl {ttl}, remaining {remaining}"
    );
    let msg = within("the announcement", raw.on_message().next())
        .await
        .unwrap();
    assert_eq!(msg.get_payload::<String>().unwrap(), sid1);

    // The follower got it (by message or by its first scan); it is now surely subscribed, so
    // the next one can only reach it as a message.
    assert_eq!(next_revocation(&mut applied).await, sid1);
    logout(&h, &second).await;
    assert_eq!(next_revocation(&mut applied).await, sid2);
    assert!(theirs.is_revoked(&sid1) && theirs.is_revoked(&sid2));
}

async fn a_follower_started_later_loads_earlier_revocations(backend: Backend) {
    let h = Harness::with_redis(backend).await;
    let prefix = h.env.redis.as_ref().unwrap().0.clone();
    let (alice, sid) = h.user("alice").await;
    logout(&h, &alice).await;

    let (_task, theirs, mut applied) = follower(REDIS_URL, &prefix);
    assert_eq!(next_revocation(&mut applied).await, sid);
    assert!(theirs.is_revoked(&sid));
}

async fn reuse_and_account_deletion_are_announced(backend: Backend) {
    let h = Harness::with_redis(backend).await;
    let prefix = h.env.redis.as_ref().unwrap().0.clone();
    let (_task, _theirs, mut applied) = follower(REDIS_URL, &prefix);

    let (alice, reused) = h.user("alice").await;
    assert_eq!(h.refresh(&alice.refresh_token).await.status, StatusCode::OK);
    let resp = h.refresh(&alice.refresh_token).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "reuse");
    assert_eq!(next_revocation(&mut applied).await, reused);
    assert!(recorded(&prefix, &reused).await.0.is_some());

    let (bob, sid1) = h.user("bob").await;
    let sid2 = sid_of(&h.login("bob").await);
    let resp = h
        .request("DELETE", "/v1/auth/me", Some(&bob.access_token), None)
        .await;
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    let got = BTreeSet::from([
        next_revocation(&mut applied).await,
        next_revocation(&mut applied).await,
    ]);
    assert_eq!(got, BTreeSet::from([sid1.clone(), sid2.clone()]));
    for sid in [sid1, sid2] {
        assert!(recorded(&prefix, &sid).await.0.is_some(), "{sid}");
    }
}

/// Two auth services on one database and one Redis (two auth nodes, or two hubs with
/// in-process auth): a logout on one is enforced by the other.
#[tokio::test]
async fn services_sharing_redis_enforce_each_others_revocations() {
    let env = Env::new(Backend::Postgres, true).await;
    let a = Harness::open(env, |_| {}).await;
    let b = Auth::open(a.env.config()).await.unwrap();
    let mut b_revoked = b.subscribe_revocations();
    let (alice, sid) = a.user("alice").await;
    b.verifier().verify(&alice.access_token).await.unwrap();

    logout(&a, &alice).await;
    assert_eq!(next_revocation(&mut b_revoked).await, sid);
    let err = b.verifier().verify(&alice.access_token).await;
    assert!(matches!(err, Err(TokenError::Revoked)), "{err:?}");
}

/// A node that recorded a revocation but died before announcing it is covered: the next start
/// announces the revocations in the store.
#[tokio::test]
async fn open_announces_the_revocations_in_the_store() {
    let env = Env::new(Backend::Postgres, true).await;
    let prefix = env.redis.as_ref().unwrap().0.clone();
    let h = Harness::open(env, |cfg| cfg.redis_url = None).await;
    let (alice, sid) = h.user("alice").await;
    logout(&h, &alice).await;
    assert_eq!(recorded(&prefix, &sid).await.0, None, "no Redis yet");

    let h = h.reopen().await; // the default configuration of the env: with Redis
    assert!(recorded(&prefix, &sid).await.0.is_some());
    assert!(h.auth.revocations().is_revoked(&sid));
}

#[tokio::test]
async fn a_follower_catches_up_after_redis_goes_away() {
    let h = Harness::with_redis(Backend::Sqlite).await;
    let prefix = h.env.redis.as_ref().unwrap().0.clone();
    let proxy = Proxy::start(REDIS_ADDR).await;
    let (_task, theirs, mut applied) = follower(&proxy.redis_url(), &prefix);
    let (alice, sid1) = h.user("alice").await;
    let during = h.login("alice").await;
    let sid2 = sid_of(&during);

    logout(&h, &alice).await;
    assert_eq!(next_revocation(&mut applied).await, sid1, "connected");

    // Redis vanishes for the follower; a revocation happens meanwhile.
    proxy.cut().await;
    logout(&h, &during).await;
    assert!(!theirs.is_revoked(&sid2), "the follower cannot know yet");

    // Back: it reconnects on its own and its scan finds what it missed.
    proxy.restore();
    assert_eq!(next_revocation(&mut applied).await, sid2);
}

/// Announcing never fails a logout: while Redis is away the revocation waits in the retry
/// queue, and reaches the other nodes when Redis is back.
#[tokio::test]
async fn a_logout_while_redis_is_away_is_announced_when_it_returns() {
    let proxy = Proxy::start(REDIS_ADDR).await;
    let url = proxy.redis_url();
    let h = Harness::open(Env::new(Backend::Sqlite, true).await, |cfg| {
        cfg.redis_url = Some(url);
    })
    .await;
    let prefix = h.env.redis.as_ref().unwrap().0.clone();
    let (_task, _theirs, mut applied) = follower(REDIS_URL, &prefix);
    let (alice, sid) = h.user("alice").await;

    proxy.cut().await;
    logout(&h, &alice).await;
    assert!(
        h.auth.revocations().is_revoked(&sid),
        "enforced here at once"
    );
    assert_eq!(recorded(&prefix, &sid).await.0, None, "not in Redis yet");

    proxy.restore();
    assert_eq!(next_revocation(&mut applied).await, sid);
    assert!(recorded(&prefix, &sid).await.0.is_some());
}

#[tokio::test]
async fn an_unreachable_redis_fails_the_open() {
    let env = Env::new(Backend::Sqlite, false).await;
    let mut cfg = env.config();
    cfg.redis_url = Some("redis://127.0.0.1:1".into());
    let err = Auth::open(cfg).await.unwrap_err();
    assert!(matches!(err, AuthError::Redis(_)), "{err:?}");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

backend_tests!(
    logout_is_recorded_with_a_ttl_and_announced,
    a_follower_started_later_loads_earlier_revocations,
    reuse_and_account_deletion_are_announced,
);
