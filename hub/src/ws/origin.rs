//! The browser Origin rule of a WebSocket upgrade.
//!
//! A page may open a WebSocket to any server, and the browser then sends the page's origin. The
//! hub accepts an upgrade with an `Origin` header only when that origin is the hub's own:
//! - `--allowed-origins` set: the origin must equal one of them exactly (scheme included);
//! - else `--public-url` set: an `http`/`https` origin whose host and port are one of them;
//! - else: an `http`/`https` origin naming a loopback host (`localhost`, `127.0.0.1`, `[::1]`)
//!   on the listen port, when the hub listens on a loopback (or unspecified) address.
//!
//! **Invariant:** the request's `Host` header is never trusted: a DNS-rebinding page controls
//! it and sends a matching Origin (`rebind.attacker.example` for both).

use std::net::SocketAddr;

/// One `--public-url`: the host and port browsers reach the hub at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// Lower-case host; IPv6 addresses keep their brackets (`[::1]`), as in an Origin.
    host: String,
    /// The explicit port, or the scheme's default.
    port: u16,
    /// `http(s)://authority` as given (`ws`/`wss` read as `http`/`https`): the base of links
    /// to the page, such as those of password-reset mails.
    base: String,
}

/// An origin broken into the parts the rule compares.
#[derive(Debug, PartialEq, Eq)]
struct Authority {
    host: String,
    port: u16,
}

/// Parses `scheme://host[:port][/...]` with scheme `http`/`https` (`ws`/`wss` are read as
/// their HTTP twins, for `--public-url`). Userinfo is refused.
fn parse_authority(url: &str, accept_ws: bool) -> Option<Authority> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        "ws" if accept_ws => 80,
        "wss" if accept_ws => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{addr}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => p.parse().ok()?,
    };
    if host.is_empty() {
        return None;
    }
    Some(Authority {
        host: host.to_ascii_lowercase(),
        port,
    })
}

impl PublicUrl {
    /// Parses a `--public-url` value (`http`, `https`, `ws` or `wss` URL).
    ///
    /// # Errors
    /// A message for clap when the value is not such a URL.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let bad = || format!("{value:?} is not an http(s) URL like https://chat.example.com");
        let a = parse_authority(value, true).ok_or_else(bad)?;
        let (scheme, rest) = value.split_once("://").ok_or_else(bad)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" | "wss" => "https",
            _ => "http",
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        Ok(Self {
            host: a.host,
            port: a.port,
            base: format!("{scheme}://{authority}"),
        })
    }

    /// `http(s)://host[:port]`, the base of links to the page.
    pub fn base(&self) -> &str {
        &self.base
    }
}

/// Host names a browser uses for this machine.
const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

/// The Origin rule of one node, built at start-up from its flags and listen address.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    allowed: Vec<String>,
    public: Vec<PublicUrl>,
    /// The listen address (its real port, also when `--listen` asked for port 0).
    listen: SocketAddr,
}

impl OriginPolicy {
    pub fn new(allowed: &[String], public: &[PublicUrl], listen: SocketAddr) -> Self {
        Self {
            allowed: allowed
                .iter()
                .map(|a| a.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            public: public.to_vec(),
            listen,
        }
    }

    /// Whether a browser page of `origin` may open a WebSocket here.
    pub fn allows(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        if !self.allowed.is_empty() {
            return self.allowed.iter().any(|a| a.eq_ignore_ascii_case(origin));
        }
        let Some(theirs) = parse_authority(origin, false) else {
            return false;
        };
        if !self.public.is_empty() {
            return self
                .public
                .iter()
                .any(|p| p.host == theirs.host && p.port == theirs.port);
        }
        let ip = self.listen.ip();
        (ip.is_loopback() || ip.is_unspecified())
            && theirs.port == self.listen.port()
            && LOOPBACK_HOSTS.contains(&theirs.host.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str], public: &[&str], listen: &str) -> OriginPolicy {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        let public: Vec<PublicUrl> = public
            .iter()
            .map(|u| PublicUrl::parse(u).unwrap())
            .collect();
        OriginPolicy::new(&allowed, &public, listen.parse().unwrap())
    }

    #[test]
    fn loopback_on_the_listen_port_by_default() {
        let p = policy(&[], &[], "127.0.0.1:8080");
        for ok in [
            "http://localhost:8080",
            "https://127.0.0.1:8080",
            "http://[::1]:8080/",
            "HTTP://LOCALHOST:8080",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil://127.0.0.1:8080",
            "http://127.0.0.1:8081",
            "http://127.0.0.1",
            "http://rebind.attacker.example:8080",
            "http://user@localhost:8080",
            "null",
            "",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
        // A hub on a public address has no same-origin without --public-url.
        assert!(!policy(&[], &[], "192.0.2.7:8080").allows("http://localhost:8080"));
    }

    #[test]
    fn public_urls_name_the_hosts() {
        let p = policy(
            &[],
            &["https://chat.example.com", "http://localhost:8000"],
            "0.0.0.0:8080",
        );
        assert!(p.allows("https://chat.example.com"));
        assert!(p.allows("http://chat.example.com:443"));
        assert!(p.allows("http://localhost:8000"));
        assert!(!p.allows("http://localhost:8080"));
        assert!(!p.allows("https://chat.example.com:8443"));
        assert!(!p.allows("wss://chat.example.com"));
        assert!(!p.allows("evil://chat.example.com:443"));
    }

    #[test]
    fn the_allowlist_is_exact() {
        let p = policy(&["https://app.example.com"], &[], "127.0.0.1:8080");
        assert!(p.allows("https://app.example.com"));
        assert!(p.allows("https://app.example.com/"));
        assert!(!p.allows("http://app.example.com"));
        assert!(!p.allows("http://127.0.0.1:8080"));
    }

    #[test]
    fn bad_public_urls_are_refused() {
        for bad in ["chat.example.com", "ftp://x", "https://", "https://x:port"] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PublicUrl::parse("wss://Chat.Example.com/v1/ws").unwrap(),
            PublicUrl {
                host: "chat.example.com".into(),
                port: 443,
                base: "https://Chat.Example.com".into(),
            }
        );
        assert_eq!(
            PublicUrl::parse("http://127.0.0.1:8080/").unwrap().base(),
            "http://127.0.0.1:8080"
        );
    }
}
