//! `/metrics`: served on the metrics listener only (`--metrics-listen`), never on the public
//! port; real traffic over real sockets moves the counters, gauges and histograms it should.
//! Every scrape is an HTTP request to the hub's metrics address, as Prometheus makes.

use std::collections::HashMap;

use futures_util::StreamExt;
use switchboard_client::protocol::close;
use switchboard_client::protocol::ws::{ClientFrame, ServerFrame};
use switchboard_client::protocol::ErrorCode;
use switchboard_client::tungstenite::Message as WsMessage;
use switchboard_client::{ClientError, Connection};

use crate::support::{
    closed, events_until_pong, next_event, next_message, within, TestServer, NO_RATE_LIMITS, WAIT,
};

/// One scrape: every sample, by series as rendered (`name` or `name{labels}`).
struct Scrape {
    text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    async fn of(url: &str) -> Self {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let resp = within("a scrape", client.get(url).send())
            .await
            .expect("the metrics listener answers");
        assert_eq!(resp.status(), 200);
        let kind = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        let text = resp.text().await.unwrap();
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("`series value`");
                (series.to_owned(), value.parse().expect("a number"))
            })
            .collect();
        Self { text, samples }
    }

    /// The hub's scrape, and with the scaled backend the auth node's too (embedded, auth's
    /// metrics are on the hub's listener).
    async fn auth_of(server: &TestServer) -> Self {
        match server.auth_metrics_url() {
            Some(url) => Self::of(&url).await,
            None => Self::of(&server.metrics_url()).await,
        }
    }

    /// The value of `series`; 0 for a series not rendered.
    #[track_caller]
    fn get(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }

    #[track_caller]
    fn assert(&self, series: &str, expected: f64) {
        assert_eq!(self.get(series), expected, "{series} in\n{}", self.text);
    }
}

/// The public port answers `/metrics` like any unknown route: the JSON 404. The metrics
/// listener serves `/metrics` and nothing else.
#[tokio::test]
async fn metrics_are_served_on_their_own_listener_only() {
    let server = TestServer::start().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for path in ["/metrics", "/metrics/", "/v1/metrics"] {
        let resp = http
            .get(format!("{}{path}", server.http_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path} on the public port");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
    }

    let scrape = Scrape::of(&server.metrics_url()).await;
    assert!(
        scrape
            .samples
            .keys()
            .any(|s| s.starts_with("switchboard_build_info{")
                && s.contains("binary=\"switchboard-hub\"")
                && s.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))),
        "{}",
        scrape.text
    );
    scrape.assert("switchboard_connections", 0.0);

    let metrics_root = server.metrics_url().trim_end_matches("/metrics").to_owned();
    let resp = http
        .get(format!("{metrics_root}/v1/rooms"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
}

/// Two users chat: the gauges count their sockets and subscriptions, frames in and out are
/// counted by type, each message's fanout latency is recorded once, the store's batches hold
/// the three messages, and a refused token and its close are counted.
#[tokio::test]
async fn chat_traffic_moves_the_counters() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        within("sub", ws.subscribe(&room.id, None))
            .await
            .expect("sub");
    }
    for body in ["one", "two", "three"] {
        within("ack", alice_ws.send_message(&room.id, body, None))
            .await
            .expect("ack");
    }
    for ws in [&mut alice_ws, &mut bob_ws] {
        for _ in 0..3 {
            next_message(ws).await;
        }
    }
    // A token that is not a JWT: refused in `hello`, the socket closed with 1008 (awaited, so
    // the close frame was written, and counted, before the scrape).
    let mut refused = within("upgrade", Connection::connect_raw(&server.ws_url(), &[]))
        .await
        .expect("upgrade");
    match refused.hello(Some("not-a-token")).await {
        Err(ClientError::Rejected { code, .. }) => assert_eq!(code, ErrorCode::Unauthorized),
        other => panic!("expected the token refused, got {other:?}"),
    }
    assert_eq!(closed(&mut refused).await.1, Some(close::POLICY));

    let hub = Scrape::of(&server.metrics_url()).await;
    hub.assert("switchboard_connections", 2.0);
    hub.assert("switchboard_subscriptions", 2.0);
    hub.assert("switchboard_rooms_with_subscribers", 1.0);
    hub.assert("switchboard_client_frames_total{type=\"hello\"}", 3.0);
    hub.assert("switchboard_client_frames_total{type=\"sub\"}", 2.0);
    hub.assert("switchboard_client_frames_total{type=\"send\"}", 3.0);
    hub.assert("switchboard_server_frames_total{type=\"welcome\"}", 2.0);
    hub.assert("switchboard_server_frames_total{type=\"subbed\"}", 2.0);
    hub.assert("switchboard_server_frames_total{type=\"ack\"}", 3.0);
    hub.assert("switchboard_server_frames_total{type=\"message\"}", 6.0);
    hub.assert("switchboard_server_frames_total{type=\"error\"}", 1.0);
    // Messages, plus whatever presence events the subscriptions caused.
    assert!(
        hub.get("switchboard_deliveries_total") >= 6.0,
        "{}",
        hub.text
    );
    // One sample per message: when the last of its two subscribers' writers took it.
    hub.assert("switchboard_fanout_latency_seconds_count", 3.0);
    hub.assert("switchboard_store_batch_size_sum", 3.0);
    let batches = hub.get("switchboard_store_batch_size_count");
    assert!((1.0..=3.0).contains(&batches), "{}", hub.text);
    hub.assert("switchboard_store_commit_seconds_count", batches);
    hub.assert("switchboard_store_errors_total", 0.0);
    hub.assert(
        "switchboard_token_verification_failures_total{reason=\"malformed\"}",
        1.0,
    );
    hub.assert("switchboard_close_codes_total{code=\"1008\"}", 1.0);

    let auth = Scrape::auth_of(&server).await;
    auth.assert("switchboard_auth_registrations_total", 2.0);
    auth.assert("switchboard_auth_logins_total{result=\"ok\"}", 2.0);
    auth.assert("switchboard_auth_logins_total{result=\"failed\"}", 0.0);

    // Gone sockets leave the gauges. The hub forgets a socket after the close handshake, with
    // no event a client can await: the test polls the scrape (bounded by `within`).
    alice_ws.close().await.expect("close");
    bob_ws.close().await.expect("close");
    within("the gauges to drop", async {
        loop {
            let scrape = Scrape::of(&server.metrics_url()).await;
            if scrape.get("switchboard_connections") == 0.0
                && scrape.get("switchboard_subscriptions") == 0.0
            {
                scrape.assert("switchboard_rooms_with_subscribers", 0.0);
                scrape.assert("switchboard_close_codes_total{code=\"1000\"}", 2.0);
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// A frame over the connection's budget is refused and counted under its limit; a failed
/// login is counted as failed.
#[tokio::test]
async fn refusals_are_counted_by_limit() {
    // A burst of two frames, never refilled: the third is refused, whatever the machine's pace.
    let server = TestServer::start_with(&["--rate-per-sec", "0", "--rate-burst", "2"]).await;
    let alice = server.user("alice").await;
    let mut ws = server.connect(&alice).await;
    for n in 1..=3 {
        ws.send(&ClientFrame::Ping { id: None })
            .await
            .expect("ping");
        match next_event(&mut ws).await {
            ServerFrame::Pong { .. } if n < 3 => {}
            ServerFrame::Error { code, .. } if n == 3 => assert_eq!(code, ErrorCode::RateLimited),
            other => panic!("ping {n}: unexpected {other:?}"),
        }
    }
    let failed = server
        .api()
        .login(&alice.username, "not the password")
        .await;
    assert!(failed.is_err(), "a wrong password is refused");

    let hub = Scrape::of(&server.metrics_url()).await;
    hub.assert("switchboard_rate_limited_total{limit=\"frames\"}", 1.0);
    hub.assert("switchboard_rate_limited_total{limit=\"sends\"}", 0.0);
    hub.assert("switchboard_client_frames_total{type=\"ping\"}", 3.0);
    hub.assert("switchboard_server_frames_total{type=\"pong\"}", 2.0);
    let auth = Scrape::auth_of(&server).await;
    auth.assert("switchboard_auth_logins_total{result=\"failed\"}", 1.0);
}

/// A subscriber that does not read is closed with 4000, and counted as a slow consumer and as
/// a 4000 sent.
#[tokio::test]
async fn a_slow_consumer_is_counted() {
    let mut flags = vec!["--outbound-queue-len", "8"];
    flags.extend(NO_RATE_LIMITS);
    let server = TestServer::start_with(&flags).await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    let mut slow = crate::support::slow_subscriber(&server, &room.id).await;
    let mut fast = server.connect(&alice).await;
    let body = "x".repeat(4000);
    // Pipelined batches, acks read, until the hub gives up on the slow reader.
    'flood: for _ in 0..40 {
        for _ in 0..25 {
            let frame = ClientFrame::Send {
                id: None,
                room: room.id.clone(),
                body: body.clone(),
                client_msg_id: None,
                attachments: Vec::new(),
            };
            fast.send(&frame).await.expect("send");
        }
        let acks = events_until_pong(&mut fast).await;
        assert!(acks.iter().all(|f| matches!(f, ServerFrame::Ack { .. })));
        let scrape = Scrape::of(&server.metrics_url()).await;
        if scrape.get("switchboard_slow_consumer_closes_total") > 0.0 {
            break 'flood;
        }
    }
    let code = tokio::time::timeout(WAIT * 2, async {
        while let Some(message) = slow.next().await {
            match message {
                Ok(WsMessage::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(err) => panic!("read failed: {err}"),
            }
        }
        None
    })
    .await
    .expect("the slow reader is closed");
    assert_eq!(code, Some(close::SLOW_CONSUMER));
    let hub = Scrape::of(&server.metrics_url()).await;
    hub.assert("switchboard_slow_consumer_closes_total", 1.0);
    hub.assert("switchboard_close_codes_total{code=\"4000\"}", 1.0);
}

/// `--metrics-listen`: loopback by default, `off`, or an address that `run` binds (and a node
/// whose metrics address is taken does not start, naming it).
#[tokio::test]
async fn the_metrics_flag_is_bound_by_run() {
    use clap::Parser as _;
    use switchboard_hub::Config;
    let parse = |args: &[&str]| {
        Config::try_parse_from([&["switchboard-hub"], args].concat())
            .map(|cfg| cfg.metrics_listen.to_string())
            .map_err(|e| e.to_string())
    };
    assert_eq!(parse(&[]).as_deref(), Ok("127.0.0.1:9464"));
    assert_eq!(parse(&["--metrics-listen", "off"]).as_deref(), Ok("off"));
    let err = parse(&["--metrics-listen", "public"]).unwrap_err();
    assert!(err.contains("--metrics-listen"), "{err}");

    let metrics = format!("127.0.0.1:{}", switchboard_tests::private::free_port());
    let start = |dir: &std::path::Path| {
        let mut cfg = Config::try_parse_from([
            "switchboard-hub",
            "--data-dir",
            dir.to_str().unwrap(),
            "--metrics-listen",
            &metrics,
            "--drain-delay-ms",
            "0",
        ])
        .unwrap();
        // Embedded whatever the environment says: the test is about the flag.
        (cfg.database_url, cfg.redis_url, cfg.auth_url) = (None, None, None);
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(switchboard_hub::run(listener, cfg, async move {
                let _ = stopped.await;
            }));
            (stop, task)
        }
    };
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (stop, first) = start(first_dir.path()).await;
    let url = format!("http://{metrics}/metrics");
    let scrape = within("the first hub's metrics", async {
        loop {
            // Bound before `run` serves anything: the first answer is the hub's.
            match reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .get(&url)
                .send()
                .await
            {
                Ok(resp) => return resp.text().await.unwrap(),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    assert!(scrape.contains("switchboard_connections 0"), "{scrape}");
    let (_, second) = start(second_dir.path()).await;
    let err = within("the second hub to fail", second)
        .await
        .unwrap()
        .expect_err("the metrics address is taken");
    assert!(format!("{err:#}").contains(&metrics), "{err:#}");
    let _ = stop.send(());
    within("the first hub to stop", first)
        .await
        .unwrap()
        .expect("a clean stop");
}
