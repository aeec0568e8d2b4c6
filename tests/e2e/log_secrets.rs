//! Secrets never reach the logs. The real binaries run as child processes (the hub alone when
//! embedded; the auth node and a hub on PostgreSQL and Redis when scaled) with `RUST_LOG=debug`
//! and `--log-format json`, their whole output captured; the test drives registration, a
//! failed and a good login, a refresh, REST calls, WebSocket `hello` (token in the frame and in
//! the upgrade's `Authorization` header), a refused forged token, a server API key (used,
//! presented with a wrong secret, revoked) and a logout, then searches
//! the captured logs for every password and token it used. It also checks that the logs are
//! JSON lines carrying the request and connection spans, so that an empty or broken capture
//! cannot pass.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use switchboard_client::protocol::ws::ClientFrame;
use switchboard_client::{Api, Connection};
use switchboard_tests::backend::{scaled, RedisPrefix, TestDatabase, REDIS_URL};
use switchboard_tests::inproc::LIFTED_AUTH_LIMITS;
use switchboard_tests::private::{self, free_port, Signal};

use crate::support::{unique_name, within, within_for};

/// Bound on a node coming up (migrations, first bind) and on its exit after SIGTERM.
const START_LIMIT: Duration = Duration::from_secs(30);
const STOP_LIMIT: Duration = Duration::from_secs(15);

/// A node run from its binary, output (stdout and stderr) appended to `log`; SIGKILLed on drop.
struct Node {
    child: Option<Child>,
    base: String,
    log: PathBuf,
}

impl Node {
    /// Starts `package`'s binary on a free loopback port with `args`, and waits until `health`
    /// answers 200.
    async fn start(package: &str, args: &[String], dir: &Path, health: &str) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = dir.join(format!("{package}.log"));
        let out = File::create(&log).expect("create the log file");
        let err = out.try_clone().expect("clone the log file");
        let child = Command::new(switchboard_tests::binary::binary(package, package))
            .args(["--listen", &listen, "--log-format", "json"])
            .args(args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("start {package}: {e}"));
        let node = Self {
            child: Some(child),
            base: format!("http://{listen}"),
            log,
        };
        let url = format!("{}{health}", node.base);
        within_for(START_LIMIT, &format!("{package} to answer {url}"), async {
            loop {
                if let Ok(response) = reqwest::get(&url).await {
                    if response.status().is_success() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        node
    }

    /// SIGTERM, then waits for the exit, so that everything it logs is in the file.
    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            private::signal(&child, Signal::TERM);
            private::wait_exit(&mut child, STOP_LIMIT)
                .await
                .expect("the node exits after SIGTERM");
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).expect("read the log")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The flags that lift the login and registration limits (every client here is 127.0.0.1).
fn lifted_limits() -> Vec<String> {
    LIFTED_AUTH_LIMITS
        .iter()
        .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
        .collect()
}

/// The nodes of the configuration under test (the hub last), after the services they use (so
/// that they are dropped first).
async fn start_nodes(dir: &Path) -> (Option<(TestDatabase, RedisPrefix)>, Vec<Node>) {
    let hub_data = dir.join("hub-data");
    let mut hub_args = vec![
        "--data-dir".to_owned(),
        hub_data.to_str().expect("UTF-8").to_owned(),
        "--drain-delay-ms".to_owned(),
        "0".to_owned(),
    ];
    if !scaled() {
        hub_args.extend(lifted_limits());
        let hub = Node::start("switchboard-hub", &hub_args, dir, "/readyz").await;
        return (None, vec![hub]);
    }
    let db = TestDatabase::create().await;
    let prefix = RedisPrefix::new();
    let auth_data = dir.join("auth-data");
    let mut auth_args = vec![
        "--data-dir".to_owned(),
        auth_data.to_str().expect("UTF-8").to_owned(),
        "--database-url".to_owned(),
        db.url.clone(),
        "--redis-url".to_owned(),
        REDIS_URL.to_owned(),
        "--redis-prefix".to_owned(),
        prefix.0.clone(),
        "--trusted-proxies".to_owned(),
        "127.0.0.1".to_owned(),
        "--drain-delay-ms".to_owned(),
        "0".to_owned(),
    ];
    auth_args.extend(lifted_limits());
    let auth = Node::start("switchboard-auth", &auth_args, dir, "/readyz").await;
    hub_args.extend([
        "--database-url".to_owned(),
        db.url.clone(),
        "--redis-url".to_owned(),
        REDIS_URL.to_owned(),
        "--redis-prefix".to_owned(),
        prefix.0.clone(),
        "--auth-url".to_owned(),
        auth.base.clone(),
    ]);
    let hub = Node::start("switchboard-hub", &hub_args, dir, "/readyz").await;
    (Some((db, prefix)), vec![auth, hub])
}

/// Runs `switchboard-hub api-key ARGS` on the store of the hub of `start_nodes`; its output.
fn api_key(dir: &Path, services: Option<&(TestDatabase, RedisPrefix)>, args: &[&str]) -> String {
    let mut command = Command::new(switchboard_tests::binary::binary(
        "switchboard-hub",
        "switchboard-hub",
    ));
    command
        .arg("api-key")
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("hub-data"))
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null());
    if let Some((db, _)) = services {
        command.args(["--database-url", &db.url]);
    }
    let out = command.output().expect("run switchboard-hub api-key");
    assert!(out.status.success(), "api-key {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The secrets of one run and where they must not appear.
struct Secrets(Vec<(&'static str, String)>);

impl Secrets {
    fn token(&mut self, what: &'static str, token: &str) {
        self.0.push((what, token.to_owned()));
        // A JWT's signature alone is enough to find it in a log cut short.
        if let Some(signature) = token.rsplit('.').next().filter(|s| s.len() >= 16) {
            if signature != token {
                self.0.push((what, signature.to_owned()));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_tokens_never_appear_in_the_logs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (services, mut nodes) = start_nodes(dir.path()).await;
    let hub = nodes.last().expect("a hub");
    let api = Api::new(&hub.base);
    let ws_url = format!("{}/v1/ws", hub.base.replacen("http", "ws", 1));

    let username = unique_name("logsecret");
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let mut secrets = Secrets(vec![
        ("password", password.clone()),
        ("wrong password", wrong.clone()),
    ]);

    within(
        "register",
        api.register(&username, &format!("{username}@example.com"), &password),
    )
    .await
    .expect("register");
    let refused = within("a failed login", api.login(&username, &wrong)).await;
    assert!(refused.is_err(), "a wrong password is refused");
    let first = within("login", api.login(&username, &password))
        .await
        .expect("login");
    secrets.token("first access token", &first.access_token);
    secrets.token("first refresh token", &first.refresh_token);
    let second = within("refresh", api.refresh(&first.refresh_token))
        .await
        .expect("refresh");
    secrets.token("second access token", &second.access_token);
    secrets.token("second refresh token", &second.refresh_token);

    let authed = api.with_token(&second.access_token);
    within("me", authed.me()).await.expect("me");
    let room = within(
        "create a room",
        authed.create_room(&unique_name("logroom"), false),
    )
    .await
    .expect("create a room");

    // The token in `hello`, then in the upgrade's Authorization header.
    let (mut conn, _) = within(
        "hello",
        Connection::connect(&ws_url, Some(&second.access_token)),
    )
    .await
    .expect("hello with a token");
    within(
        "sub",
        conn.request(ClientFrame::Sub {
            id: None,
            room: room.id.clone(),
            since: None,
        }),
    )
    .await
    .expect("sub");
    within("close", conn.close()).await.expect("close");
    let bearer = format!("Bearer {}", second.access_token);
    let mut conn = within(
        "an upgrade with a bearer",
        Connection::connect_raw(&ws_url, &[("Authorization", bearer.as_str())]),
    )
    .await
    .expect("upgrade");
    within("hello", conn.hello(None)).await.expect("welcome");
    within("close", conn.close()).await.expect("close");

    // A forged token (another signature) is refused, and not logged either.
    let forged = format!("{}AAAA", second.access_token);
    secrets.token("forged token", &forged);
    let refused = within(
        "hello with a forged token",
        Connection::connect(&ws_url, Some(&forged)),
    )
    .await;
    assert!(refused.is_err(), "a forged token is refused");
    let (conn, _) = within("an anonymous hello", Connection::connect(&ws_url, None))
        .await
        .expect("anonymous hello");
    within("close", conn.close()).await.expect("close");
    let forged_rest = Api::new(&hub.base).with_token(&forged);
    assert!(within("me with a forged token", forged_rest.me())
        .await
        .is_err());

    // An API key of the server API: used, presented with a wrong secret, revoked, used again.
    let key = api_key(dir.path(), services.as_ref(), &["create", "logbackend"]);
    let key = key
        .lines()
        .find(|l| l.starts_with("sbk_"))
        .expect("a key printed")
        .to_owned();
    let mut wrong_key = key.clone();
    let last = if wrong_key.ends_with('A') { 'B' } else { 'A' };
    wrong_key.pop();
    wrong_key.push(last);
    for (what, k) in [("API key", &key), ("wrong API key", &wrong_key)] {
        secrets.0.push((what, k.clone()));
        // The secret part alone (after `sbk_<id>_`) is enough to find it.
        secrets.0.push((what, k[21..].to_owned()));
    }
    let server_call = |credential: String| {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let url = format!("{}/v1/server/publish", hub.base);
        let body =
            serde_json::json!({"room": room.id, "body": "from a bot", "idempotency_key": "log-1"});
        async move {
            let response = http.post(url).bearer_auth(credential).json(&body).send();
            within("a server API call", response)
                .await
                .expect("send")
                .status()
                .as_u16()
        }
    };
    assert_eq!(server_call(key.clone()).await, 201);
    assert_eq!(server_call(wrong_key.clone()).await, 401);
    api_key(dir.path(), services.as_ref(), &["revoke", "logbackend"]);
    assert_eq!(server_call(key.clone()).await, 401);

    within("logout", authed.logout()).await.expect("logout");

    for node in &mut nodes {
        node.stop().await;
    }
    let mut problems = Vec::new();
    let mut saw_user_request = false;
    let mut saw_user_conn = false;
    for node in &nodes {
        let log = node.log();
        for (what, secret) in &secrets.0 {
            if log.contains(secret.as_str()) {
                problems.push(format!("the {what} appears in {}", node.log.display()));
            }
        }
        let mut lines = 0;
        for line in log.lines().filter(|l| l.starts_with('{')) {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
            lines += 1;
            let spans = event["spans"].as_array().cloned().unwrap_or_default();
            for span in &spans {
                if span["user"] == username.as_str() {
                    saw_user_request |= span["name"] == "request";
                    saw_user_conn |= span["name"] == "conn";
                }
            }
        }
        assert!(
            lines > 10,
            "{} holds too few JSON log lines ({lines}):\n{log}",
            node.log.display()
        );
    }
    assert!(problems.is_empty(), "secrets in the logs: {problems:?}");
    assert!(
        saw_user_request,
        "a request span names the user once it is known"
    );
    assert!(
        saw_user_conn,
        "a connection span names the user once it is known"
    );
}
