//! The Pusher channels protocol as a [`Target`] (sockudo, or any Pusher-compatible server).
//!
//! Subscribers open `ws://host:port/app/{key}?protocol=7&client=bench&version=1.0`, wait for
//! `pusher:connection_established`, send `pusher:subscribe` for a public channel and wait for
//! `pusher_internal:subscription_succeeded`. Deliveries arrive as
//! `{"event":"bench","channel":...,"data":"<body>"}`; `pusher:ping` is answered with
//! `pusher:pong`. Publishers trigger events through the HTTP API
//! (`POST /apps/{app_id}/events`), signed as the Pusher HTTP API reference describes:
//! `auth_key`, `auth_timestamp`, `auth_version=1.0` and `body_md5` in the query, and
//! `auth_signature` = hex HMAC-SHA256 of `"POST\n{path}\n{sorted query}"` with the app secret.
//! An HTTP `200` is the acknowledgement; nothing is stored.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

use super::{Outcome, Publisher, SubscriberSpec, Target, TargetConfig, TargetKind};
use crate::error::{BenchError, Result};
use crate::net::{self, WsStream};

/// Name of the event the bench triggers.
pub const EVENT: &str = "bench";

/// How long a subscriber waits for the connection and the subscription to be confirmed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Upper bound on one HTTP publish.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A Pusher-protocol server.
pub struct Pusher {
    ws_urls: Vec<String>,
    api: String,
    app_id: String,
    key: String,
    secret: String,
    http: reqwest::Client,
}

impl Pusher {
    pub fn new(config: &TargetConfig) -> Result<Self> {
        if config.app_key.is_empty() || config.app_secret.is_empty() || config.app_id.is_empty() {
            return Err(BenchError::Config(
                "the pusher target needs --app-id, --app-key and --app-secret".into(),
            ));
        }
        let ws_urls = config
            .urls
            .iter()
            .map(|url| {
                format!(
                    "{}/app/{}?protocol=7&client=bench&version=1.0",
                    url.trim_end_matches('/'),
                    config.app_key
                )
            })
            .collect();
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(BenchError::Http)?;
        Ok(Self {
            ws_urls,
            api: config.api_base(),
            app_id: config.app_id.clone(),
            key: config.app_key.clone(),
            secret: config.app_secret.clone(),
            http,
        })
    }
}

#[async_trait]
impl Target for Pusher {
    fn kind(&self) -> TargetKind {
        TargetKind::Pusher
    }

    async fn prepare_rooms(&mut self, count: usize) -> Result<Vec<String>> {
        // Public channels exist as soon as someone subscribes: nothing to create.
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        Ok((0..count).map(|i| format!("bench-{tag}-{i}")).collect())
    }

    fn subscriber_spec(&self) -> SubscriberSpec {
        SubscriberSpec::Pusher {
            ws_urls: self.ws_urls.clone(),
        }
    }

    async fn publisher(&self, _index: usize) -> Result<Box<dyn Publisher>> {
        Ok(Box::new(HttpPublisher {
            http: self.http.clone(),
            api: self.api.clone(),
            app_id: self.app_id.clone(),
            key: self.key.clone(),
            secret: self.secret.clone(),
            in_flight: FuturesUnordered::new(),
        }))
    }

    fn stores_messages(&self) -> bool {
        false
    }
}

/// One HTTP request per message, any number in flight (reqwest keeps the connections).
struct HttpPublisher {
    http: reqwest::Client,
    api: String,
    app_id: String,
    key: String,
    secret: String,
    in_flight: FuturesUnordered<BoxFuture<'static, Outcome>>,
}

#[async_trait]
impl Publisher for HttpPublisher {
    async fn start(&mut self, room: &str, body: String, tag: u64) -> Result<()> {
        let payload = serde_json::json!({"name": EVENT, "channel": room, "data": body}).to_string();
        let path = format!("/apps/{}/events", self.app_id);
        let timestamp = crate::payload::now_us() / 1_000_000;
        let query = signed_query(&self.key, &self.secret, &path, &payload, timestamp);
        let request = self
            .http
            .post(format!("{}{path}?{}", self.api, query_string(&query)))
            .header("content-type", "application/json")
            .body(payload);
        self.in_flight.push(Box::pin(async move {
            let result = match request.send().await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    Err(format!("HTTP {status}: {text}"))
                }
                Err(err) => Err(err.to_string()),
            };
            Outcome { tag, result }
        }));
        Ok(())
    }

    async fn next_outcome(&mut self) -> Result<Outcome> {
        match self.in_flight.next().await {
            Some(outcome) => Ok(outcome),
            None => std::future::pending().await,
        }
    }
}

/// The query parameters of a signed HTTP API request, `auth_signature` last.
pub fn signed_query(
    key: &str,
    secret: &str,
    path: &str,
    body: &str,
    timestamp: u64,
) -> Vec<(String, String)> {
    let mut params = BTreeMap::new();
    params.insert("auth_key".to_owned(), key.to_owned());
    params.insert("auth_timestamp".to_owned(), timestamp.to_string());
    params.insert("auth_version".to_owned(), "1.0".to_owned());
    params.insert(
        "body_md5".to_owned(),
        hex::encode(Md5::digest(body.as_bytes())),
    );
    let signature = sign("POST", path, &params, secret);
    let mut query: Vec<(String, String)> = params.into_iter().collect();
    query.push(("auth_signature".to_owned(), signature));
    query
}

/// Hex HMAC-SHA256 over `"{METHOD}\n{path}\n{k=v&... sorted by lowercase key, unescaped}"`.
pub fn sign(method: &str, path: &str, params: &BTreeMap<String, String>, secret: &str) -> String {
    let mut sorted: Vec<(String, &String)> =
        params.iter().map(|(k, v)| (k.to_lowercase(), v)).collect();
    sorted.sort();
    let query = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let to_sign = format!("{method}\n{path}\n{query}");
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `k=v&k=v`; every value the bench signs is URL-safe (hex, digits, the key, `1.0`).
fn query_string(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Waits for `pusher:connection_established`, subscribes to `channel`, waits for
/// `pusher_internal:subscription_succeeded`.
pub async fn subscribe_lean(ws: &mut WsStream, channel: &str) -> Result<()> {
    net::wait_for(
        ws,
        HANDSHAKE_TIMEOUT,
        "pusher:connection_established",
        |text| {
            if text.contains("pusher:connection_established") {
                Some(Ok(()))
            } else if text.contains("pusher:error") {
                Some(Err(BenchError::Server(format!("connect: {text}"))))
            } else {
                None
            }
        },
    )
    .await?;
    let subscribe =
        serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel}}).to_string();
    net::send_text(ws, subscribe).await?;
    net::wait_for(ws, HANDSHAKE_TIMEOUT, "subscription_succeeded", |text| {
        if text.contains("pusher_internal:subscription_succeeded") {
            Some(Ok(()))
        } else if text.contains("pusher:error") || text.contains("subscription_error") {
            Some(Err(BenchError::Server(format!("subscribe: {text}"))))
        } else {
            None
        }
    })
    .await
}

/// `pusher:pong` for a `pusher:ping`.
pub fn reply_to(text: &str) -> Option<String> {
    text.contains(r#""event":"pusher:ping""#)
        .then(|| r#"{"event":"pusher:pong","data":{}}"#.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the Pusher HTTP API reference ("Worked authentication example").
    #[test]
    fn signs_the_worked_example_of_the_pusher_docs() {
        let body = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let query = signed_query(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "/apps/3/events",
            body,
            1353088179,
        );
        let get = |k: &str| query.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("body_md5"), "ec365a775a4cd0599faeb73354201b6f");
        assert_eq!(
            get("auth_signature"),
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
        assert_eq!(
            query_string(&query),
            "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0\
             &body_md5=ec365a775a4cd0599faeb73354201b6f\
             &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }

    #[test]
    fn answers_pings_only() {
        assert_eq!(
            reply_to(r#"{"event":"pusher:ping","data":{}}"#).as_deref(),
            Some(r#"{"event":"pusher:pong","data":{}}"#)
        );
        assert_eq!(reply_to(r#"{"event":"bench","data":"x"}"#), None);
    }

    #[test]
    fn urls_and_credentials() {
        let mut config = TargetConfig {
            kind: TargetKind::Pusher,
            urls: vec!["ws://127.0.0.1:6001".into()],
            api: None,
            app_id: "bench".into(),
            app_key: "bench-key".into(),
            app_secret: "bench-secret".into(),
            auth_subscribers: false,
        };
        let pusher = Pusher::new(&config).unwrap();
        let spec = pusher.subscriber_spec();
        assert_eq!(
            spec.url(0),
            "ws://127.0.0.1:6001/app/bench-key?protocol=7&client=bench&version=1.0"
        );
        assert_eq!(pusher.api, "http://127.0.0.1:6001");
        config.app_secret.clear();
        assert!(Pusher::new(&config).is_err());
    }
}
