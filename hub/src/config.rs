//! The hub's configuration: one `clap` struct, every field a flag and an environment variable.
//! A malformed value is a start-up error naming the flag, never a silent default.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Configuration of a hub node. With no flags it runs embedded: auth in-process, in-process
/// fanout, SQLite under `./switchboard-data/`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "switchboard-hub",
    version,
    about = "Switchboard realtime chat hub"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Address of the metrics listener (`GET /metrics`, Prometheus text format), or `off`. It
    /// is never the public address: metrics are for the operator's network only. Several nodes
    /// on one host need one address each.
    #[arg(
        long,
        env = "SWITCHBOARD_METRICS_LISTEN",
        default_value = "127.0.0.1:9464",
        value_parser = switchboard_kit::metrics::MetricsListen::parse
    )]
    pub metrics_listen: switchboard_kit::metrics::MetricsListen,

    /// Directory for the SQLite databases and the signing key (created if missing).
    #[arg(
        long,
        env = "SWITCHBOARD_DATA_DIR",
        default_value = "./switchboard-data"
    )]
    pub data_dir: PathBuf,

    /// Origins allowed to open WebSockets from a browser, comma-separated (e.g.
    /// `https://chat.example.com`), matched exactly (scheme included). Empty: the same-origin
    /// rule of `--public-url`. Requests without an Origin header (non-browser clients) are always
    /// allowed.
    #[arg(long, env = "SWITCHBOARD_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// A URL browsers reach this hub at (e.g. `https://chat.example.com`), repeatable or
    /// comma-separated: a browser Origin with scheme `http`/`https` and one of these hosts
    /// (port included) may open WebSockets. None: only loopback names (`localhost`,
    /// `127.0.0.1`, `[::1]`) on the listen port, when the hub listens on a loopback address.
    #[arg(long = "public-url", env = "SWITCHBOARD_PUBLIC_URL", value_delimiter = ',', value_parser = crate::ws::origin::PublicUrl::parse)]
    pub public_urls: Vec<crate::ws::origin::PublicUrl>,

    /// Serve `GET /v1/echo`, a WebSocket echo endpoint for conformance suites.
    #[arg(long, env = "SWITCHBOARD_ECHO_ENDPOINT")]
    pub echo_endpoint: bool,

    /// Largest message on the echo endpoint, in bytes.
    #[arg(long, env = "SWITCHBOARD_ECHO_MAX_MESSAGE_BYTES", default_value_t = switchboard_protocol::limits::DEFAULT_ECHO_MAX_MESSAGE_BYTES)]
    pub echo_max_message_bytes: usize,

    /// Largest WebSocket message on `/v1/ws` after reassembly, in bytes; larger closes with 1009.
    #[arg(long, env = "SWITCHBOARD_MAX_FRAME_BYTES", default_value_t = switchboard_protocol::limits::DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,

    /// Sustained client frames per second per connection (0: the burst is never refilled).
    #[arg(long, env = "SWITCHBOARD_RATE_PER_SEC", default_value_t = switchboard_protocol::limits::DEFAULT_RATE_PER_SEC)]
    pub rate_per_sec: u32,

    /// Burst of client frames per connection.
    #[arg(long, env = "SWITCHBOARD_RATE_BURST", default_value_t = switchboard_protocol::limits::DEFAULT_RATE_BURST)]
    pub rate_burst: u32,

    /// Time a new connection has to send `hello`, in milliseconds.
    #[arg(long, env = "SWITCHBOARD_HELLO_TIMEOUT_MS", default_value_t = switchboard_protocol::limits::HELLO_TIMEOUT_MS)]
    pub hello_timeout_ms: u64,

    /// Interval of the server's WebSocket pings, in milliseconds. A peer silent for two
    /// intervals is dropped.
    #[arg(long, env = "SWITCHBOARD_HEARTBEAT_MS", default_value_t = 20_000)]
    pub heartbeat_ms: u64,

    /// Capacity of each connection's outbound queue, in frames. A subscriber whose queue is full
    /// is closed with 4000 (slow consumer).
    #[arg(long, env = "SWITCHBOARD_OUTBOUND_QUEUE_LEN", default_value_t = 1024)]
    pub outbound_queue_len: usize,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "SWITCHBOARD_ACCESS_TTL_SECS", default_value_t = 900)]
    pub access_ttl_secs: u64,

    /// Time given to open connections to close on shutdown, in milliseconds.
    #[arg(long, env = "SWITCHBOARD_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,

    /// PostgreSQL URL (e.g. `postgres://postgres@127.0.0.1/switchboard`). Set: messages, rooms
    /// and (without `--auth-url`) accounts live there instead of SQLite.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Redis URL (e.g. `redis://127.0.0.1:6379`). Set: events fan out between nodes through Redis
    /// pub/sub, and revocations are shared through it.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel, so several clusters (or test runs) share a server.
    #[arg(long, env = "SWITCHBOARD_REDIS_PREFIX", default_value = "sb:")]
    pub redis_prefix: String,

    /// URL of a separate auth node (`switchboard-auth`). Set: tokens are verified with its JWKS,
    /// users are looked up through it, and `/v1/auth/*` is forwarded to it. Unset: auth runs
    /// in-process.
    #[arg(long, env = "SWITCHBOARD_AUTH_URL")]
    pub auth_url: Option<String>,

    /// Most argon2id password hashes the embedded auth computes at once (each takes ~19 MiB,
    /// allocated once per slot, and a core for tens of milliseconds). Default 2. With
    /// `--auth-url` the auth node's own flags apply.
    #[arg(long, env = "SWITCHBOARD_HASH_CONCURRENCY", default_value_t = switchboard_auth::config::DEFAULT_HASH_CONCURRENCY)]
    pub hash_concurrency: usize,

    /// Login, registration and hashing-queue limits of the embedded auth (the same flags as
    /// `switchboard-auth`'s; with `--auth-url` the auth node's apply).
    #[command(flatten)]
    pub auth_limits: switchboard_auth::node::AuthLimitFlags,

    /// Account policies of the embedded auth (`--single-session`, `--free-deleted-usernames`;
    /// with `--auth-url` the auth node's apply).
    #[command(flatten)]
    pub auth_accounts: switchboard_auth::node::AccountFlags,

    /// Job workers of the embedded auth (`--job-workers`, `--job-lease-ms`, ...; the same flags
    /// as `switchboard-auth`'s; with `--auth-url` the auth node runs the jobs).
    #[command(flatten)]
    pub auth_jobs: switchboard_auth::jobs::JobFlags,
    /// The mail transport, sender and cluster-wide rate of the embedded auth (the same flags as
    /// `switchboard-auth`'s): the hub process sends the welcome mails. With `--auth-url` they
    /// are not used: the auth nodes run the mail jobs with their own mail flags (a hub given
    /// `--smtp-url` as well as `--auth-url` says so in a warning at start).
    #[command(flatten)]
    pub mail: switchboard_auth::mail::MailFlags,

    /// The secret the hubs and the auth node share (at least 16 bytes): with `--auth-url`, the
    /// hub presents it to the auth node's internal routes to read the webhook endpoints and to
    /// look users up for the server API. Give every hub and the auth node the same value.
    /// Without it, a hub with `--auth-url` delivers no webhooks of its events, and the server
    /// API finds only users the hub has seen. Not used without `--auth-url`.
    #[arg(long, env = "SWITCHBOARD_SERVICE_TOKEN", hide_env_values = true,
          value_parser = switchboard_auth::webhooks::ServiceToken::parse)]
    pub service_token: Option<switchboard_auth::webhooks::ServiceToken>,

    /// Media: attachments' bound, the hot cache, the garbage collector (`--max-attachment-bytes`,
    /// `--media-*`).
    #[command(flatten)]
    pub media: crate::media::flags::MediaFlags,

    /// Webhook delivery (`--webhook-timeout-ms`, `--webhook-allow-link-local`): the same flags
    /// as `switchboard-auth`'s; this node delivers the hub's events.
    #[command(flatten)]
    pub webhook: switchboard_webhooks::flags::WebhookFlags,

    /// The webhook endpoints of the embedded auth (`--webhooks-file`, `--webhook-reload-ms`;
    /// the same flags as `switchboard-auth`'s). With `--auth-url` the auth node's apply.
    #[command(flatten)]
    pub auth_webhooks: switchboard_auth::webhooks::WebhookConfigFlags,

    /// This node's name in logs and in Redis. Default: a random id.
    #[arg(long, env = "SWITCHBOARD_NODE_ID")]
    pub node_id: Option<String>,

    /// Largest batch of messages the PostgreSQL writer commits at once.
    #[arg(long, env = "SWITCHBOARD_BATCH_MAX_SIZE", default_value_t = 512)]
    pub batch_max_size: usize,

    /// Longest a message waits for its batch to fill before the commit, in milliseconds.
    #[arg(long, env = "SWITCHBOARD_BATCH_MAX_AGE_MS", default_value_t = 5)]
    pub batch_max_age_ms: u64,

    /// Bound on waiting for PostgreSQL or Redis before a request fails with `unavailable`, in
    /// milliseconds.
    #[arg(long, env = "SWITCHBOARD_DB_TIMEOUT_MS", default_value_t = 2_000)]
    pub db_timeout_ms: u64,

    /// PostgreSQL connections per node.
    #[arg(long, env = "SWITCHBOARD_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: usize,

    /// PostgreSQL batch writers per node: transactions of messages in flight at once, rooms
    /// sharded across them (a room's messages keep their order). At least 1, at most
    /// `--db-pool-size` (a larger value is lowered to it).
    #[arg(long, env = "SWITCHBOARD_PG_WRITERS", default_value_t = crate::store::postgres::DEFAULT_WRITERS)]
    pub pg_writers: usize,

    /// Sustained sends per second per user on this node, over all their connections and REST
    /// calls; beyond it they get `rate_limited` (0: the burst is never refilled). `typing` has
    /// its own fixed limit, one per user and room every 2 s.
    #[arg(long, env = "SWITCHBOARD_USER_RATE_PER_SEC", default_value_t = 50)]
    pub user_rate_per_sec: u32,

    /// Burst of sends per user.
    #[arg(long, env = "SWITCHBOARD_USER_RATE_BURST", default_value_t = 100)]
    pub user_rate_burst: u32,

    /// Sustained requests per second per API key to the server API (`/v1/server/*`) on this
    /// node; beyond it 429 `rate_limited` (0: the burst is never refilled). A bot's posts also
    /// count against the per-user send limit, keyed by the bot.
    #[arg(
        long,
        env = "SWITCHBOARD_SERVER_API_RATE_PER_SEC",
        default_value_t = 100
    )]
    pub server_api_rate_per_sec: u32,

    /// Burst of server API requests per API key.
    #[arg(long, env = "SWITCHBOARD_SERVER_API_RATE_BURST", default_value_t = 200)]
    pub server_api_rate_burst: u32,

    /// Group rooms one user may create per hour on this node: a burst of this many, refilled
    /// at this many per hour; beyond it `POST /v1/rooms` gets 429 `rate_limited` with
    /// `Retry-After`. 0: no limit.
    #[arg(long, env = "SWITCHBOARD_ROOMS_PER_HOUR", default_value_t = 30)]
    pub rooms_per_hour: u32,

    /// Most WebSocket connections this node holds; further upgrades get 503 `unavailable`
    /// (the load balancer or client tries another node).
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS", default_value_t = 15_000)]
    pub max_connections: usize,

    /// WebSocket connections that have not authenticated (no valid `Authorization` header on the
    /// upgrade, no token in `hello` yet); further anonymous upgrades get 503 `unavailable`.
    /// Default: a quarter of `--max-connections` (rounded up).
    #[arg(long, env = "SWITCHBOARD_MAX_ANONYMOUS_CONNECTIONS")]
    pub max_anonymous_connections: Option<usize>,

    /// WebSocket connections per client IP (after the PROXY protocol); further upgrades from
    /// that address get 429 `rate_limited`.
    #[arg(
        long,
        env = "SWITCHBOARD_MAX_CONNECTIONS_PER_IP",
        default_value_t = 1_000
    )]
    pub max_connections_per_ip: usize,

    /// Open HTTP connections that are not (yet) WebSockets. At the cap, a new connection
    /// closes the oldest one that is waiting for a request head (idle or half-sent); if every
    /// one is busy with a request, the new connection is closed.
    #[arg(
        long,
        env = "SWITCHBOARD_MAX_HTTP_CONNECTIONS",
        default_value_t = 1_024
    )]
    pub max_http_connections: usize,

    /// Time a client has to send a complete request head, in milliseconds, counted from the
    /// connection's accept or from the end of the previous response; past it the connection is
    /// closed.
    #[arg(
        long,
        env = "SWITCHBOARD_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub header_read_timeout_ms: u64,

    /// Time a keep-alive connection may sit idle between a response and the first byte of the
    /// next request, in milliseconds (at most `--header-read-timeout-ms` takes effect).
    #[arg(
        long,
        env = "SWITCHBOARD_KEEP_ALIVE_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub keep_alive_timeout_ms: u64,

    /// Load balancers (IPs or CIDRs, comma-separated) whose connections start with a PROXY
    /// protocol header (v1 or v2) giving the real client's address. A connection from such an
    /// address without a valid header is closed; from any other address a header is not
    /// parsed (it is an invalid HTTP request). Empty: no PROXY protocol.
    #[arg(long, env = "SWITCHBOARD_PROXY_PROTOCOL_FROM", value_delimiter = ',', value_parser = crate::listener::proxy_header::parse_net)]
    pub proxy_protocol_from: Vec<ipnet::IpNet>,

    /// Bytes of events queued to one connection before it is closed with 4000 (slow
    /// consumer), besides the frame count of `--outbound-queue-len`.
    #[arg(long, env = "SWITCHBOARD_OUTBOUND_QUEUE_BYTES", default_value_t = 1 << 20)]
    pub outbound_queue_bytes: usize,

    /// Least time between two writes of room events to one connection (microseconds; 0: no
    /// limit). An event arriving sooner waits, and everything queued by then shares one write;
    /// an event after a quiet spell is written at once. Replies are not held back unless an
    /// event waits with them.
    #[arg(long, env = "SWITCHBOARD_WRITE_COALESCE_US", default_value_t = 5000)]
    pub write_coalesce_us: u64,

    /// Messages per room kept in memory (for rooms with local subscribers) to serve `sub` with
    /// a recent `since` without reading the store; 0 disables the hot window.
    #[arg(long, env = "SWITCHBOARD_HOT_WINDOW", default_value_t = 256)]
    pub hot_window: usize,

    /// Delete messages older than this many seconds (0: keep every message). A `sub` whose
    /// `since` is older than what is retained gets `history_expired`.
    #[arg(long, env = "SWITCHBOARD_RETENTION_SECS", default_value_t = 0)]
    pub retention_secs: u64,

    /// How often retention runs, in milliseconds.
    #[arg(
        long,
        env = "SWITCHBOARD_RETENTION_SWEEP_MS",
        default_value_t = 3_600_000
    )]
    pub retention_sweep_ms: u64,

    /// Most messages a `sub` with `since` replays (catch-up); a `sub` whose `since` is further
    /// back gets `catchup_too_large` and is not subscribed (the client pages with `history`).
    #[arg(
        long,
        env = "SWITCHBOARD_MAX_CATCHUP_MESSAGES",
        default_value_t = 1_000
    )]
    pub max_catchup_messages: u64,

    /// Most rooms one connection may be subscribed to at once; the `sub` of one more gets
    /// `too_many_subscriptions`.
    #[arg(long, env = "SWITCHBOARD_MAX_SUBSCRIPTIONS", default_value_t = 1_000)]
    pub max_subscriptions: usize,

    /// Longest a fragmented WebSocket message may stay unfinished, in milliseconds (from its
    /// first fragment); then the connection is closed with 1008.
    #[arg(
        long,
        env = "SWITCHBOARD_FRAGMENT_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub fragment_timeout_ms: u64,

    /// Bytes of unfinished fragmented messages this node holds over all its connections; a
    /// fragment that would go over it closes its connection with 1013 (try again later).
    #[arg(long, env = "SWITCHBOARD_MAX_REASSEMBLY_BYTES", default_value_t = 64 << 20)]
    pub max_reassembly_bytes: usize,

    /// On SIGTERM, how long the node keeps serving while `/readyz` answers 503 `draining`,
    /// before it closes its WebSockets with 1012, in milliseconds: long enough for the load
    /// balancer to mark it down first (HAProxy `inter 1s fall 2`: about 2 s). A second signal
    /// ends the wait at once.
    #[arg(long, env = "SWITCHBOARD_DRAIN_DELAY_MS", default_value_t = DEFAULT_DRAIN_DELAY_MS)]
    pub drain_delay_ms: u64,

    /// Log output: `text` (human-readable lines, coloured only on a terminal) or `json` (one
    /// object per line). The level filter is `RUST_LOG` (default `info`).
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: switchboard_kit::logging::LogFormat,
}

/// Default `--drain-delay-ms`: HAProxy's checks (`inter 1s fall 2`, deploy/haproxy.cfg) mark a
/// node down about 2 s after it starts failing them; 5 s leaves room for a slow check.
pub const DEFAULT_DRAIN_DELAY_MS: u64 = 5_000;

impl Config {
    /// The cap on anonymous WebSocket connections (`--max-anonymous-connections`, default a
    /// quarter of `--max-connections`, rounded up).
    pub fn anonymous_cap(&self) -> usize {
        self.max_anonymous_connections
            .unwrap_or(self.max_connections.div_ceil(4))
    }
}
