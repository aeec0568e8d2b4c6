//! An auth node served over real HTTP (`switchboard_auth::node::run` on a loopback listener),
//! and a small HTTP client for it.

use std::net::SocketAddr;

use clap::Parser as _;
use serde_json::{json, Value};
use switchboard_auth::node::{self, NodeConfig};
use switchboard_protocol::rest::TokenPair;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{within, PASSWORD};

/// Flags that lift the login, registration and hashing-queue limits.
const LIFTED_LIMITS: &[(&str, &str)] = &[
    ("--hash-queue", "100000"),
    ("--login-account-rate-per-sec", "100000"),
    ("--login-account-burst", "100000"),
    ("--login-ip-rate-per-sec", "100000"),
    ("--login-ip-burst", "100000"),
    ("--register-ip-rate-per-sec", "100000"),
    ("--register-ip-burst", "100000"),
];

/// A running auth node. [`Node::stop`] shuts it down and waits until its listener is closed.
pub struct Node {
    pub addr: SocketAddr,
    pub url: String,
    /// `http://127.0.0.1:PORT/metrics`: the node's metrics listener (a port of its own).
    pub metrics_url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Node {
    /// Starts a node on `listen` (e.g. `127.0.0.1:0`) with these extra flags, and the login,
    /// registration and hashing-queue limits lifted unless `flags` set them.
    pub async fn start(listen: &str, flags: &[&str]) -> Self {
        let mut all = flags.to_vec();
        for (flag, value) in LIFTED_LIMITS {
            if !flags.contains(flag) {
                all.extend([*flag, *value]);
            }
        }
        Self::start_with_limits(listen, &all).await
    }

    /// Starts a node on `listen` with these extra flags and the default limits.
    pub async fn start_with_limits(listen: &str, flags: &[&str]) -> Self {
        let listener = TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_url = format!("http://{}/metrics", metrics.local_addr().unwrap());
        let mut args = vec!["switchboard-auth", "--listen", listen];
        args.extend_from_slice(flags);
        // A stop is quick unless the test is about draining.
        if !flags.contains(&"--drain-delay-ms") {
            args.extend(["--drain-delay-ms", "0"]);
        }
        let mut cfg = NodeConfig::try_parse_from(args).unwrap();
        // Hermetic: a DATABASE_URL or REDIS_URL in the environment must not change the test.
        if !flags.contains(&"--database-url") {
            cfg.database_url = None;
        }
        if !flags.contains(&"--redis-url") {
            cfg.redis_url = None;
        }
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(node::run_with_metrics(
            listener,
            Some(metrics),
            cfg,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            url: format!("http://{addr}"),
            metrics_url,
            stop,
            task,
        }
    }

    /// Shuts the node down and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        within("the node to stop", self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// An HTTP client for a node.
pub struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    pub fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            base: base.to_owned(),
        }
    }

    /// `(status, JSON body or Null)`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = within("an HTTP answer", req.send()).await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    /// Registers and logs in `username`.
    pub async fn user(&self, username: &str) -> TokenPair {
        let post = reqwest::Method::POST;
        let (status, body) = self
            .call(
                post.clone(),
                "/v1/auth/register",
                None,
                Some(json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = self
            .call(
                post,
                "/v1/auth/login",
                None,
                Some(json!({"username": username, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }
}
