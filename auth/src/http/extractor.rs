//! Extractors whose rejections are our JSON errors, never axum's plain-text ones: the client
//! address and the bearer claims here; the JSON body and path ones are the kit's, shared with
//! the hub (`switchboard_kit::http`).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;

use switchboard_protocol::limits::MAX_USER_AGENT_BYTES;

use crate::error::AuthError;
use crate::tokens::Claims;
use crate::{Auth, ClientIp};

/// The client address of a request whose server gave none (neither [`ClientIp`] nor axum's
/// `ConnectInfo`), e.g. a router driven in-process by a test: all such requests share it.
const UNKNOWN_CLIENT: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// The address of the client a request came from, for the per-address limits: the request's
/// [`ClientIp`] (set by the hub that accepted it, which never believes headers), else the TCP
/// peer (axum `ConnectInfo`), or, when that peer is one of `trusted_proxies`, the last address in
/// `X-Forwarded-For` that is not itself trusted. A client-supplied `X-Forwarded-For` therefore
/// counts only when it reached us through a trusted proxy, which replaces it (the hub does).
pub(crate) struct ClientAddr(pub(crate) IpAddr);

impl FromRequestParts<Auth> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, auth: &Auth) -> Result<Self, Self::Rejection> {
        Ok(Self(client_addr(parts, &auth.inner.cfg.trusted_proxies)))
    }
}

fn client_addr(parts: &Parts, trusted: &[IpNet]) -> IpAddr {
    if let Some(ClientIp(ip)) = parts.extensions.get::<ClientIp>() {
        return ip.to_canonical();
    }
    let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
        return UNKNOWN_CLIENT;
    };
    let peer = peer.ip().to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    forwarded_client(&parts.headers, trusted).unwrap_or(peer)
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// Walking `X-Forwarded-For` (all its headers, in order) from the right: the first address that
/// is not trusted. If an entry does not parse, or every entry is trusted, the last trusted one
/// seen (the nearest hop we can vouch for); `None` when there is none.
fn forwarded_client(headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut nearest = None;
    for entry in entries.iter().rev() {
        let Ok(ip) = entry.parse::<IpAddr>() else {
            return nearest;
        };
        let ip = ip.to_canonical();
        if !is_trusted(ip, trusted) {
            return Some(ip);
        }
        nearest = Some(ip);
    }
    nearest
}

/// The verified claims of the `Authorization: Bearer <token>` header. Missing header: 401
/// `unauthorized`; rejected token: 401 `unauthorized`.
pub(crate) struct Bearer(pub(crate) Claims);

impl FromRequestParts<Auth> for Bearer {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, auth: &Auth) -> Result<Self, Self::Rejection> {
        // A header that is not `Bearer <token>` (RFC 7235, `switchboard_kit::bearer`) counts as
        // missing: both are 401.
        let token = switchboard_kit::http::bearer(&parts.headers)
            .ok()
            .flatten()
            .ok_or(AuthError::MissingBearer)?;
        let claims = auth.verifier().verify(token).await?;
        // The request's span (`switchboard_kit::http::trace`) names the user from here on.
        switchboard_kit::http::trace::record_user(&claims.name);
        Ok(Self(claims))
    }
}

/// An admin's verified Bearer claims: 401 as [`Bearer`], then 403 `forbidden` unless the
/// account's stored role is admin ([`Auth::require_admin`]).
pub(crate) struct Admin(pub(crate) Claims);

impl FromRequestParts<Auth> for Admin {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, auth: &Auth) -> Result<Self, Self::Rejection> {
        let Bearer(claims) = Bearer::from_request_parts(parts, auth).await?;
        auth.require_admin(&claims).await?;
        Ok(Self(claims))
    }
}

/// The request's `User-Agent`, cut to [`MAX_USER_AGENT_BYTES`] at a character boundary; `None`
/// when absent, empty or not visible ASCII/UTF-8.
pub(crate) struct UserAgent(pub(crate) Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && !v.chars().any(char::is_control))
            .map(|v| {
                let mut end = v.len().min(MAX_USER_AGENT_BYTES);
                while !v.is_char_boundary(end) {
                    end -= 1;
                }
                v[..end].to_owned()
            });
        Ok(Self(agent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_addresses() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let parts = |peer: Option<&str>, xff: &[&str], client_ip: Option<&str>| {
            let mut req = axum::http::Request::builder();
            for value in xff {
                req = req.header("x-forwarded-for", *value);
            }
            let (mut parts, ()) = req.body(()).unwrap().into_parts();
            if let Some(peer) = peer {
                let addr = SocketAddr::new(ip(peer), 5555);
                parts.extensions.insert(ConnectInfo(addr));
            }
            if let Some(client) = client_ip {
                parts.extensions.insert(ClientIp(ip(client)));
            }
            parts
        };
        /// TCP peer, X-Forwarded-For headers, ClientIp extension, the client address wanted.
        type Case<'a> = (Option<&'a str>, &'a [&'a str], Option<&'a str>, &'a str);
        let cases: &[Case<'_>] = &[
            // An untrusted peer's header is ignored.
            (Some("192.0.2.1"), &["203.0.113.9"], None, "192.0.2.1"),
            // A trusted peer's header names the client.
            (Some("10.1.1.1"), &["203.0.113.9"], None, "203.0.113.9"),
            // ... the last untrusted entry, not a spoofed one further left.
            (
                Some("10.1.1.1"),
                &["1.1.1.1, 203.0.113.9, 10.2.2.2"],
                None,
                "203.0.113.9",
            ),
            (
                Some("10.1.1.1"),
                &["1.1.1.1", "203.0.113.9"],
                None,
                "203.0.113.9",
            ),
            // Garbage stops the walk at the nearest trusted hop.
            (Some("10.1.1.1"), &["203.0.113.9, junk"], None, "10.1.1.1"),
            (Some("10.1.1.1"), &[], None, "10.1.1.1"),
            (Some("::ffff:192.0.2.1"), &[], None, "192.0.2.1"),
            // ClientIp wins over everything.
            (
                Some("10.1.1.1"),
                &["203.0.113.9"],
                Some("198.51.100.7"),
                "198.51.100.7",
            ),
            (None, &["203.0.113.9"], None, "::"),
        ];
        for (peer, xff, client_ip, want) in cases {
            let got = client_addr(&parts(*peer, xff, *client_ip), &trusted);
            assert_eq!(got, ip(want), "{peer:?} {xff:?} {client_ip:?}");
        }
    }
}
