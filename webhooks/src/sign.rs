//! The `X-Switchboard-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256>`, the MAC keyed
//! with the endpoint's secret over `"<t>.<body>"` (the timestamp, a full stop, the raw body
//! bytes). A receiver recomputes it over the body it read, compares in constant time, and
//! refuses a `t` too far from its clock (replays). OPERATIONS.md has a test vector.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header's name.
pub const SIGNATURE_HEADER: &str = "X-Switchboard-Signature";
/// The event id's header (the same for every endpoint's delivery of one event).
pub const EVENT_ID_HEADER: &str = "X-Switchboard-Event";
/// The delivery id's header (the job's id: one per endpoint and event, the same on retries).
pub const DELIVERY_ID_HEADER: &str = "X-Switchboard-Delivery";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], ts: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` sent at `ts` (Unix seconds) to an endpoint with `secret`.
pub fn signature(secret: &[u8], ts: i64, body: &[u8]) -> String {
    let tag = mac(secret, ts, body).finalize().into_bytes();
    format!("t={ts},v1={}", hex::encode(tag))
}

/// Whether `header` is a valid signature of `body` under `secret`, made at most `tolerance_s`
/// seconds from `now` (Unix seconds). Compares in constant time. What a receiver does.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_s: i64) -> bool {
    let mut ts = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => ts = v.parse::<i64>().ok(),
            Some(("v1", v)) => tags.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(ts) = ts else { return false };
    if (now - ts).abs() > tolerance_s {
        return false;
    }
    tags.iter()
        .any(|tag| mac(secret, ts, body).verify_slice(tag).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of OPERATIONS.md ("Verifying a webhook"): keep them equal.
    #[test]
    fn the_documented_test_vector_holds() {
        let secret = b"whsec_test";
        let body = br#"{"id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","type":"message.created","ts":1733400000000,"data":{"room":"general","seq":1,"from":"alice","body":"hi","bot":false}}"#;
        let header = signature(secret, 1_733_400_000, body);
        assert_eq!(
            header,
            "t=1733400000,v1=7741fe0a8cc64b8e0a1ce926c6190c7f3fe3e0731c8838ba5a1b127845df2674"
        );
        assert!(verify(secret, &header, body, 1_733_400_100, 300));
        assert!(
            !verify(secret, &header, body, 1_733_400_000 + 301, 300),
            "too old"
        );
        assert!(
            !verify(b"whsec_other", &header, body, 1_733_400_000, 300),
            "wrong secret"
        );
        let mut tampered = body.to_vec();
        tampered[10] ^= 1;
        assert!(
            !verify(secret, &header, &tampered, 1_733_400_000, 300),
            "tampered body"
        );
        assert!(
            !verify(secret, "v1=00", body, 1_733_400_000, 300),
            "no timestamp"
        );
        assert!(
            !verify(secret, "t=x,v1=zz", body, 1_733_400_000, 300),
            "garbage"
        );
    }
}
