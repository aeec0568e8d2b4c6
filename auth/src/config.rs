//! [`AuthConfig`]: everything the auth service needs to know at start, passed in explicitly.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// Default lifetime of an access token (15 minutes).
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Default lifetime of a refresh token, counted from its issue (30 days). Every refresh issues a
/// new one, so an active session lives on while an idle one dies after this long.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Default number of argon2id hashes computed at the same time (see `password.rs` for why this
/// is bounded).
pub const DEFAULT_HASH_CONCURRENCY: usize = 2;
/// Default bound on requests waiting for a hashing slot; further logins and registrations get
/// 503 `unavailable` with `Retry-After` at once.
pub const DEFAULT_HASH_QUEUE: usize = 32;
/// Default limit on failed logins per account: about one per 6 s after a burst of 3 (Synapse's
/// `rc_login.failed_attempts`).
pub const DEFAULT_LOGIN_ACCOUNT_LIMIT: RateLimit = RateLimit {
    per_sec: 0.17,
    burst: 3,
};
/// Default limit on login attempts (failed or not) per client address: one per 2 s after a
/// burst of 10, enough for people behind one NAT, too slow to guess passwords over many
/// accounts.
pub const DEFAULT_LOGIN_IP_LIMIT: RateLimit = RateLimit {
    per_sec: 0.5,
    burst: 10,
};
/// Default limit on registrations per client address: about one per 6 s after a burst of 3
/// (Synapse's `rc_registration`).
pub const DEFAULT_REGISTER_IP_LIMIT: RateLimit = RateLimit {
    per_sec: 0.17,
    burst: 3,
};
/// Default lifetime of a password-reset token (30 minutes).
pub const DEFAULT_RESET_TTL: Duration = Duration::from_secs(30 * 60);

/// Default `iss` and `aud` of the tokens.
pub const DEFAULT_ISSUER: &str = "switchboard";
/// Default prefix of every Redis key and channel (shared with the hub's `--redis-prefix`).
pub const DEFAULT_REDIS_PREFIX: &str = "sb:";

/// Configuration of [`crate::Auth`]. Build it with [`AuthConfig::new`] and change fields as
/// needed; the `switchboard-auth` binary maps its flags onto it ([`crate::node::NodeConfig`]).
#[derive(Clone)]
pub struct AuthConfig {
    /// Directory holding `signing-key.pem` (the Ed25519 private key, mode 0600) and, without
    /// [`database_url`](Self::database_url), `auth.db` (SQLite). Created if missing.
    pub data_dir: PathBuf,
    /// PostgreSQL URL (`postgres://user@host/db`). When set, users and sessions live there, in
    /// schema `auth`, shared by every node that uses the same database; otherwise in SQLite
    /// under `data_dir`.
    pub database_url: Option<String>,
    /// Redis URL (`redis://host:port`). When set, every revocation is also recorded there
    /// (`{prefix}revoked:{sid}`, expiring with the session's last access token) and announced
    /// on `{prefix}revocations`, and this service follows the revocations other nodes announce.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel, so several deployments (or tests) can share one
    /// Redis. Default `sb:`.
    pub redis_prefix: String,
    /// `iss` claim written into access tokens and required when verifying them.
    pub issuer: String,
    /// `aud` claim written into access tokens and required when verifying them.
    pub audience: String,
    /// Lifetime of an access token (`exp - iat`). Whole seconds; sub-second parts are dropped.
    pub access_ttl: Duration,
    /// Lifetime of each refresh token from its issue.
    pub refresh_ttl: Duration,
    /// Most argon2id hashes computed at once (at least 1).
    pub hash_concurrency: usize,
    /// Most requests waiting for a hashing slot; beyond it, 503 `unavailable` at once.
    pub hash_queue: usize,
    /// Failed logins per account (keyed by username, known or not).
    pub login_account_limit: RateLimit,
    /// Login attempts per client address (IPv4 address, or IPv6 /64).
    pub login_ip_limit: RateLimit,
    /// Registrations per client address (IPv4 address, or IPv6 /64).
    pub register_ip_limit: RateLimit,
    /// Peers whose `X-Forwarded-For` is believed (the hubs in front of an auth node). A request
    /// carrying [`crate::ClientIp`] (set by the server that accepted it) never consults the
    /// header; otherwise the client is the TCP peer, or, when the peer is trusted, the last
    /// address in `X-Forwarded-For` that is not itself trusted. Empty: the header is ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// Account policies (`--single-session`, `--free-deleted-usernames`).
    pub accounts: AccountPolicy,
    /// Where the service's metrics are registered (logins, registrations, refreshes, token
    /// failures): the auth node's registry, or the hub's when auth is embedded. Default: a
    /// disabled registry (nothing recorded).
    pub metrics: std::sync::Arc<switchboard_kit::metrics::Registry>,
    /// This node's job workers (`--job-*` flags, [`crate::jobs::JobFlags`]) and the lanes'
    /// spacings. The mail lane's ([`crate::jobs::MAIL_LANE`]) is not read from here:
    /// [`crate::Auth::open`] sets it from [`mail`](Self::mail)'s rate
    /// ([`crate::jobs::pool_config`]).
    pub jobs: switchboard_jobs::PoolConfig,
    /// Handlers of job kinds, besides the welcome mail's ([`crate::mail::WelcomeMailHandler`],
    /// which [`crate::Auth::open`] always registers, sending through the service's mailer). A
    /// handler here of the same kind replaces it (tests). A kind without a handler is never
    /// claimed: its jobs stay ready. Default: none.
    pub job_handlers: Vec<std::sync::Arc<dyn switchboard_jobs::Handler>>,
    /// How mail leaves (`--smtp-url`, `--mail-from`, `--mail-rate-per-sec`,
    /// `--smtp-timeout-secs`). Default: the outbox in `data_dir/outbox`.
    pub mail: crate::mail::MailConfig,
    /// Where browsers reach the page (`https://chat.example.com`, no trailing slash): the base
    /// of the links in password-reset mails (`{public_url}/#reset=<token>`). `None`: reset
    /// requests are answered as usual but no token is made and no mail sent (logged). The
    /// embedded hub sets its first `--public-url` (or its listen address); an auth node its own
    /// `--public-url`.
    pub public_url: Option<String>,
    /// Run the mail jobs (welcome and password-reset mails) on this node's workers, with the
    /// mailer above. Default on. Off: those jobs wait, ready, unless `job_handlers` has
    /// handlers for them (tests of the queue itself use this).
    pub mail_jobs: bool,
    /// Lifetime of a password-reset token. Default [`DEFAULT_RESET_TTL`] (30 minutes); tests
    /// shorten it to see a token expire without waiting.
    pub reset_ttl: Duration,
    /// Webhook endpoints from configuration (`--webhooks-file`), the URL policy of the
    /// endpoints (`allow_link_local`) and how often the registry is reloaded from the store.
    /// Default: no configured endpoint, link-local refused, reloaded every 5 s.
    pub webhooks: crate::webhooks::WebhookConfig,
    /// The token hubs present on `/v1/internal/*` (`--service-token`), at least
    /// [`crate::webhooks::MIN_SERVICE_TOKEN_BYTES`] bytes. `None` (the default): every internal
    /// request is refused with 401.
    pub service_token: Option<String>,
}

/// What the operator decides about accounts. Both are off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountPolicy {
    /// A login ends every other session of the user (their sockets close with 1008).
    pub single_session: bool,
    /// Deleting an account frees its username for a new account. Off: the name stays reserved,
    /// so nobody can appear as the author of a deleted user's messages.
    pub free_deleted_usernames: bool,
}

/// A limit of `per_sec` events per second on average after a burst of `burst`, as a GCRA
/// (`governor`): one more event is allowed every `1 / per_sec` seconds, and up to `burst` may
/// be saved up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained events per second (finite, above 0; fractions allowed).
    pub per_sec: f64,
    /// Events allowed at once after a quiet spell (at least 1).
    pub burst: u32,
}

impl RateLimit {
    /// The `governor` quota of this limit.
    ///
    /// # Errors
    /// [`crate::AuthError::Config`] (naming `what`) if `per_sec` is not finite and above 0 or
    /// its period rounds to zero, or if `burst` is 0.
    pub(crate) fn quota(&self, what: &str) -> Result<governor::Quota, crate::AuthError> {
        let bad = || {
            crate::AuthError::Config(format!(
                "{what}: the rate must be above 0 and the burst at least 1 (got {} per second, burst {})",
                self.per_sec, self.burst
            ))
        };
        if !(self.per_sec.is_finite() && self.per_sec > 0.0) {
            return Err(bad());
        }
        let period = Duration::try_from_secs_f64(1.0 / self.per_sec).map_err(|_| bad())?;
        let burst = std::num::NonZeroU32::new(self.burst).ok_or_else(bad)?;
        Ok(governor::Quota::with_period(period)
            .ok_or_else(bad)?
            .allow_burst(burst))
    }
}

/// Parses a `--trusted-proxies` entry: a CIDR (`10.0.0.0/8`) or a single address (`10.0.0.7`).
///
/// # Errors
/// A message naming the value, for clap.
pub fn parse_ip_net(value: &str) -> Result<IpNet, String> {
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{value:?} is neither an IP address nor a CIDR"))
}

/// Parses a public URL (`--public-url` of the auth node): `http` or `https`, a host, no
/// credentials, query or fragment; returned without a trailing slash, so that
/// `{url}/#reset=...` is the page.
///
/// # Errors
/// A message naming the value, for clap.
pub fn parse_public_url(value: &str) -> Result<String, String> {
    let bad = || format!("{value:?} is not an http(s) URL like https://chat.example.com");
    let value = value.trim();
    let (scheme, rest) = value.split_once("://").ok_or_else(bad)?;
    let authority = rest.split('/').next().unwrap_or("");
    let ok = matches!(scheme, "http" | "https")
        && !authority.is_empty()
        && !authority.contains('@')
        && !rest.contains(['?', '#'])
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(value.trim_end_matches('/').to_owned())
    } else {
        Err(bad())
    }
}

impl AuthConfig {
    /// A configuration with the defaults: SQLite in `data_dir`, no Redis (prefix `sb:`), issuer
    /// and audience `switchboard`, access tokens for 15 minutes, refresh tokens for 30 days, 2
    /// concurrent password hashes with 32 waiting at most, the default login and registration
    /// limits, no trusted proxies, the default job workers and no extra job handlers, and mail
    /// to the outbox at one per second.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            redis_url: None,
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_ISSUER.to_owned(),
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            hash_concurrency: DEFAULT_HASH_CONCURRENCY,
            hash_queue: DEFAULT_HASH_QUEUE,
            login_account_limit: DEFAULT_LOGIN_ACCOUNT_LIMIT,
            login_ip_limit: DEFAULT_LOGIN_IP_LIMIT,
            register_ip_limit: DEFAULT_REGISTER_IP_LIMIT,
            trusted_proxies: Vec::new(),
            accounts: AccountPolicy::default(),
            metrics: switchboard_kit::metrics::Registry::disabled(),
            jobs: switchboard_jobs::PoolConfig::default(),
            job_handlers: Vec::new(),
            mail: crate::mail::MailConfig::default(),
            public_url: None,
            mail_jobs: true,
            reset_ttl: DEFAULT_RESET_TTL,
            webhooks: crate::webhooks::WebhookConfig::default(),
            service_token: None,
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    /// Like a derived `Debug`, but URLs are shown without their password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("hash_concurrency", &self.hash_concurrency)
            .field("hash_queue", &self.hash_queue)
            .field("login_account_limit", &self.login_account_limit)
            .field("login_ip_limit", &self.login_ip_limit)
            .field("register_ip_limit", &self.register_ip_limit)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("accounts", &self.accounts)
            .field("jobs", &self.jobs)
            .field(
                "job_handlers",
                &self
                    .job_handlers
                    .iter()
                    .map(|h| h.kind())
                    .collect::<Vec<_>>(),
            )
            .field("mail", &self.mail)
            .field("public_url", &self.public_url)
            .field("mail_jobs", &self.mail_jobs)
            .field("reset_ttl", &self.reset_ttl)
            .field("webhooks", &self.webhooks)
            .field("service_token", &self.service_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `scheme://user:***@host/...` for `scheme://user:secret@host/...`, for logs; other strings
/// unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_public_url, redact_url};

    #[test]
    fn public_urls_are_http_or_https_without_credentials() {
        assert_eq!(
            parse_public_url("https://chat.example.com/").unwrap(),
            "https://chat.example.com"
        );
        assert_eq!(
            parse_public_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "chat.example.com",
            "ftp://chat.example.com",
            "https://",
            "https://u:p@chat.example.com",
            "https://chat.example.com/?x=1",
            "https://chat.example.com/#x",
            "https://chat example.com",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://sb:hunter2@db:5432/sb"),
            "postgres://sb:***@db:5432/sb"
        );
        assert_eq!(redact_url("redis://:pw@cache/0"), "redis://:***@cache/0");
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/sb"),
            "postgres://postgres@127.0.0.1/sb"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
