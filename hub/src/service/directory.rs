//! [`UserDirectory`], the seam through which the service finds users by username, and its two
//! implementations: the in-process auth service ([`switchboard_auth::Auth`]) and a remote auth
//! node ([`RemoteUsers`]). Both give the same answers (the contract suite at the end checks
//! it): a registered user's id and username, `None` for a username nobody has, including any
//! string that is not a valid username.

use switchboard_auth::remote::RemoteDirectory;

use super::Identity;
use crate::error::Result;
use crate::store::UserRef;

/// Looks up users by username (the auth service, in-process or remote).
#[async_trait::async_trait]
pub trait UserDirectory: Send + Sync + 'static {
    /// The user with this username, if any. `caller` is who asks (a remote directory
    /// authenticates the lookup with the caller's token).
    async fn find(&self, username: &str, caller: &Identity) -> Result<Option<UserRef>>;

    /// The user with this username, looked up for the server API, which has no user's token
    /// to present: `Some(answer)` from a directory that can look users up without one (the
    /// in-process auth service), `None` from one that cannot (a remote auth node, whose lookup
    /// route wants a user's token); the caller then falls back to the users the hub knows
    /// (`Store::known_user`).
    async fn find_without_token(&self, username: &str) -> Result<Option<Option<UserRef>>>;
}

#[async_trait::async_trait]
impl UserDirectory for switchboard_auth::Auth {
    async fn find(&self, username: &str, _caller: &Identity) -> Result<Option<UserRef>> {
        Ok(self.user_by_username(username).await?.map(|u| UserRef {
            id: u.id,
            username: u.username,
        }))
    }

    async fn find_without_token(&self, username: &str) -> Result<Option<Option<UserRef>>> {
        Ok(Some(self.user_by_username(username).await?.map(|u| {
            UserRef {
                id: u.id,
                username: u.username,
            }
        })))
    }
}

/// A remote auth node's user directory, behind the hub's seam. With the service token
/// ([`RemoteUsers::with_service_token`]), it also answers lookups without a user's token (the
/// server API's), through the auth node's internal route.
pub struct RemoteUsers {
    dir: RemoteDirectory,
    service: bool,
}

impl RemoteUsers {
    /// The directory of the auth node `dir` talks to, for users' lookups only.
    pub fn new(dir: RemoteDirectory) -> Self {
        Self {
            dir,
            service: false,
        }
    }

    /// The same, also answering lookups without a user's token, presenting `token` (the
    /// auth node's `--service-token`).
    pub fn with_service_token(self, token: &str) -> Self {
        Self {
            dir: self.dir.with_service_token(token),
            service: true,
        }
    }
}

fn user_ref(u: switchboard_protocol::rest::User) -> UserRef {
    UserRef {
        id: u.id,
        username: u.username,
    }
}

#[async_trait::async_trait]
impl UserDirectory for RemoteUsers {
    async fn find(&self, username: &str, caller: &Identity) -> Result<Option<UserRef>> {
        Ok(self
            .dir
            .user_by_username(&caller.token, username)
            .await?
            .map(user_ref))
    }

    async fn find_without_token(&self, username: &str) -> Result<Option<Option<UserRef>>> {
        if !self.service {
            return Ok(None);
        }
        match self.dir.user_by_username_as_service(username).await {
            Ok(found) => Ok(Some(found.map(user_ref))),
            Err(e) => {
                // A refusal here is a configuration error (the hub's and the auth node's
                // `--service-token` differ), not the caller's: said loudly, answered 503.
                if matches!(e, switchboard_auth::remote::RemoteError::Refused { .. }) {
                    tracing::error!(error = %e, "the auth node refused this hub's --service-token");
                }
                Err(switchboard_auth::AuthError::from(e).into())
            }
        }
    }
}

/// The contract of [`UserDirectory`]: [`directory_contract!`] stamps one test per check per
/// implementation (`check::in_process`, `check::remote`), so a failure names both. Both read
/// the same auth service: opened in-process on a temp dir (SQLite) and served over HTTP on
/// loopback, where [`RemoteUsers`] reaches it.
#[cfg(test)]
mod contract {
    use serde_json::json;
    use switchboard_auth::config::RateLimit;
    use switchboard_auth::remote::RemoteDirectory;
    use switchboard_auth::{Auth, AuthConfig};
    use switchboard_protocol::rest::TokenPair;
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    use super::{Identity, RemoteUsers, UserDirectory};
    use crate::store::UserRef;

    const PASSWORD: &str = "correct horse battery";
    /// The auth service's `--service-token` in these tests.
    const SERVICE_TOKEN: &str = "a-service-token-of-the-tests";

    /// An auth service with users `alice` and `bob`, served over HTTP; `caller` is bob.
    struct Fixture {
        auth: Auth,
        url: String,
        caller: Identity,
        alice: UserRef,
        _dir: tempfile::TempDir,
        _stop: oneshot::Sender<()>,
    }

    impl Fixture {
        async fn start() -> Self {
            let dir = tempfile::tempdir().expect("a temp dir");
            let mut cfg = AuthConfig::new(dir.path().join("auth"));
            let lifted = RateLimit {
                per_sec: 100_000.0,
                burst: 100_000,
            };
            (cfg.login_ip_limit, cfg.register_ip_limit) = (lifted, lifted);
            cfg.service_token = Some(SERVICE_TOKEN.into());
            let auth = Auth::open(cfg).await.expect("open auth");
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let url = format!("http://{}", listener.local_addr().expect("address"));
            let (stop, stopped) = oneshot::channel::<()>();
            let served = auth.clone();
            tokio::spawn(async move {
                switchboard_auth::node::serve(listener, &served, async {
                    let _ = stopped.await;
                })
                .await
            });
            let http = reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client");
            let mut tokens = Vec::new();
            for name in ["alice", "bob"] {
                let body = json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD});
                let resp = http
                    .post(format!("{url}/v1/auth/register"))
                    .json(&body)
                    .send()
                    .await
                    .expect("register");
                assert_eq!(resp.status(), 201, "register {name}");
                let pair: TokenPair = http
                    .post(format!("{url}/v1/auth/login"))
                    .json(&json!({"username": name, "password": PASSWORD}))
                    .send()
                    .await
                    .expect("login")
                    .json()
                    .await
                    .expect("a token pair");
                tokens.push(pair.access_token);
            }
            let alice = auth.verifier().verify(&tokens[0]).await.expect("valid");
            let bob = auth.verifier().verify(&tokens[1]).await.expect("valid");
            Self {
                caller: Identity {
                    id: bob.sub.into(),
                    username: bob.name.into(),
                    session: bob.sid.into(),
                    role: bob.role,
                    token: tokens[1].as_str().into(),
                },
                alice: UserRef {
                    id: alice.sub,
                    username: alice.name,
                },
                auth,
                url,
                _dir: dir,
                _stop: stop,
            }
        }
    }

    /// For each listed `async fn check(users: &dyn UserDirectory, f: &Fixture)`, a module
    /// `check` with the tests `in_process` and `remote`.
    macro_rules! directory_contract {
        ($($check:ident),* $(,)?) => {$(
            mod $check {
                use std::sync::Arc;

                #[tokio::test]
                async fn in_process() {
                    let f = super::Fixture::start().await;
                    let users: Arc<dyn super::UserDirectory> = Arc::new(f.auth.clone());
                    super::$check(&*users, &f).await;
                }

                #[tokio::test]
                async fn remote() {
                    let f = super::Fixture::start().await;
                    let users: Arc<dyn super::UserDirectory> = Arc::new(
                        super::RemoteUsers::new(super::RemoteDirectory::new(&f.url))
                            .with_service_token(super::SERVICE_TOKEN),
                    );
                    super::$check(&*users, &f).await;
                }
            }
        )*};
    }

    directory_contract!(
        a_registered_user_is_found,
        a_username_nobody_has_finds_nobody,
        a_string_that_is_no_username_finds_nobody,
        a_deleted_user_finds_nobody,
    );

    async fn a_registered_user_is_found(users: &dyn UserDirectory, f: &Fixture) {
        let found = users.find("alice", &f.caller).await.expect("a lookup");
        assert_eq!(found.as_ref(), Some(&f.alice));
        let me = users.find("bob", &f.caller).await.expect("a lookup");
        assert_eq!(me.map(|u| u.id), Some(f.caller.id.to_string()), "oneself");
        let server = users.find_without_token("alice").await.expect("a lookup");
        assert_eq!(
            server,
            Some(Some(f.alice.clone())),
            "the server API's lookup"
        );
    }

    async fn a_username_nobody_has_finds_nobody(users: &dyn UserDirectory, f: &Fixture) {
        let found = users.find("carol", &f.caller).await.expect("a lookup");
        assert_eq!(found, None);
        let server = users.find_without_token("carol").await.expect("a lookup");
        assert_eq!(server, Some(None), "the server API's lookup");
    }

    /// A deleted account (whose name stays reserved, and which the auth node's lookup answers
    /// as a tombstone) cannot be added to rooms or written to: nobody is found.
    async fn a_deleted_user_finds_nobody(users: &dyn UserDirectory, f: &Fixture) {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let body = json!({"username": "carol", "email": "carol@example.com", "password": PASSWORD});
        let resp = http
            .post(format!("{}/v1/auth/register", f.url))
            .json(&body)
            .send()
            .await
            .expect("register");
        assert_eq!(resp.status(), 201);
        let pair: TokenPair = http
            .post(format!("{}/v1/auth/login", f.url))
            .json(&json!({"username": "carol", "password": PASSWORD}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("a token pair");
        assert!(users
            .find("carol", &f.caller)
            .await
            .expect("a lookup")
            .is_some());
        let resp = http
            .delete(format!("{}/v1/auth/me", f.url))
            .bearer_auth(&pair.access_token)
            .send()
            .await
            .expect("delete");
        assert_eq!(resp.status(), 204);
        let found = users.find("carol", &f.caller).await.expect("a lookup");
        assert_eq!(found, None);
        let server = users.find_without_token("carol").await.expect("a lookup");
        assert_eq!(server, Some(None), "the server API's lookup");
    }

    /// Usernames are 3–32 of `[a-z0-9_.-]`: anything else, a path or another case included,
    /// names nobody (and a remote directory does not send it).
    async fn a_string_that_is_no_username_finds_nobody(users: &dyn UserDirectory, f: &Fixture) {
        let long = "a".repeat(33);
        for name in [
            "ALICE",
            "Alice",
            "al ice",
            "",
            "al",
            &long,
            "../alice",
            "alice/",
            "alice?x=1",
        ] {
            let found = users.find(name, &f.caller).await.expect("a lookup");
            assert_eq!(found, None, "{name:?}");
            let server = users.find_without_token(name).await.expect("a lookup");
            assert_eq!(server, Some(None), "{name:?}, the server API's lookup");
        }
    }
}
