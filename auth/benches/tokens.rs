//! Access tokens: issuing one (what every login and refresh does) and verifying one (what the hub
//! does locally for every `hello` and every authenticated REST call, with no call to auth).
//!
//! Run with `cargo bench -p switchboard-auth --bench tokens` (add `-- --quick` for a short run).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::SigningKey;
use switchboard_auth::{Claims, KeySource, LocalKeys, Revocations, Verifier};

/// Issuer and audience of the default configuration.
const ISSUER: &str = "switchboard";
/// Revoked sessions in the set the verifier consults: a busy node's, not an empty one.
const REVOKED: usize = 1_000;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// The claims the auth service signs at login (see its `access_token`): a fresh `jti` each time.
fn claims(now: u64) -> Claims {
    Claims {
        iss: ISSUER.to_owned(),
        aud: ISSUER.to_owned(),
        sub: uuid::Uuid::now_v7().to_string(),
        sid: uuid::Uuid::now_v7().to_string(),
        jti: uuid::Uuid::now_v7().to_string(),
        exp: now + 900,
        iat: now,
        name: "alice".to_owned(),
        role: "user".to_owned(),
    }
}

fn tokens(c: &mut Criterion) {
    let keys = Arc::new(
        LocalKeys::from_signing_key(&SigningKey::generate(&mut rand::rngs::OsRng))
            .expect("a generated key encodes"),
    );
    let revocations = Revocations::new();
    let now = unix_now();
    for _ in 0..REVOKED {
        revocations.revoke(&uuid::Uuid::now_v7().to_string(), now + 900);
    }
    // The hub's verifier in the embedded configuration: `Auth::verifier`, over the local keys.
    let verifier = Verifier::new(
        Arc::clone(&keys) as Arc<dyn KeySource>,
        revocations,
        ISSUER,
        ISSUER,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");

    let mut group = c.benchmark_group("token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("issue", |b| {
        b.iter(|| keys.sign(&claims(black_box(now))).expect("signs"))
    });
    let token = keys.sign(&claims(now)).expect("signs");
    runtime
        .block_on(verifier.verify(&token))
        .expect("the token verifies");
    group.bench_function("verify", |b| {
        b.to_async(&runtime).iter(|| async {
            verifier
                .verify(black_box(&token))
                .await
                .expect("the token verifies")
        })
    });
    group.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
