//! [`AddrPolicy`] and [`validate_url`]: which URLs and addresses deliveries may reach (SSRF).
//!
//! Refused unless [`AddrPolicy::allow_link_local`]: link-local addresses (`169.254.0.0/16`,
//! `fe80::/10`, where cloud metadata services answer: `169.254.169.254`, `fd00:ec2::254`) and
//! the metadata host names (`metadata.google.internal`, `metadata`). Always refused: the
//! unspecified (`0.0.0.0`, `::`), broadcast and multicast addresses. Loopback and private
//! networks are allowed: receivers of a backend usually live there. The check runs on the URL
//! when an endpoint is configured, and on every address its host resolves to at each delivery
//! (so a name that later resolves to a forbidden address is refused then: DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::WebhookError;

/// Which addresses deliveries may reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrPolicy {
    /// Allow link-local and cloud-metadata addresses (`--webhook-allow-link-local`): only for a
    /// receiver that really lives there.
    pub allow_link_local: bool,
}

/// Host names of cloud metadata services, refused like their addresses.
const METADATA_HOSTS: [&str; 3] = ["metadata.google.internal", "metadata", "metadata.goog"];

impl AddrPolicy {
    /// Why `addr` may not be reached, or `None` if it may.
    pub fn refusal(&self, addr: IpAddr) -> Option<&'static str> {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        match addr {
            IpAddr::V4(v4) => {
                if v4.is_unspecified() {
                    Some("unspecified")
                } else if v4.is_broadcast() || v4.is_multicast() {
                    Some("broadcast or multicast")
                } else if v4.is_link_local() && !self.allow_link_local {
                    Some("link-local or cloud metadata")
                } else {
                    None
                }
            }
            IpAddr::V6(v6) => {
                if v6.is_unspecified() {
                    Some("unspecified")
                } else if v6.is_multicast() {
                    Some("broadcast or multicast")
                } else if (is_link_local_v6(v6) || v6 == AWS_METADATA_V6) && !self.allow_link_local
                {
                    Some("link-local or cloud metadata")
                } else {
                    None
                }
            }
        }
    }
}

/// AWS's IPv6 metadata address (`fd00:ec2::254`).
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

fn is_link_local_v6(v6: Ipv6Addr) -> bool {
    (v6.segments()[0] & 0xffc0) == 0xfe80
}

/// Checks an endpoint URL when it is configured: it parses, is `http` or `https`, has a host,
/// holds no credentials, and its host is not a forbidden address or metadata name under
/// `policy`. Returns the URL as the parser normalised it.
///
/// # Errors
/// [`WebhookError::BadUrl`] or [`WebhookError::ForbiddenAddress`].
pub fn validate_url(raw: &str, policy: &AddrPolicy) -> Result<url::Url, WebhookError> {
    let bad = |reason: &str| WebhookError::BadUrl {
        url: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not allowed (sign with the secret)",
        ));
    }
    let forbidden = |addr: IpAddr, reason| WebhookError::ForbiddenAddress {
        url: raw.to_owned(),
        addr,
        reason,
    };
    match url.host() {
        None => return Err(bad("the URL has no host")),
        Some(url::Host::Ipv4(v4)) => {
            if let Some(reason) = policy.refusal(IpAddr::V4(v4)) {
                return Err(forbidden(IpAddr::V4(v4), reason));
            }
        }
        Some(url::Host::Ipv6(v6)) => {
            if let Some(reason) = policy.refusal(IpAddr::V6(v6)) {
                return Err(forbidden(IpAddr::V6(v6), reason));
            }
        }
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !policy.allow_link_local && METADATA_HOSTS.contains(&name.as_str()) {
                return Err(forbidden(
                    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
                    "cloud metadata host name",
                ));
            }
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_metadata_are_refused_unless_allowed() {
        let strict = AddrPolicy::default();
        let open = AddrPolicy {
            allow_link_local: true,
        };
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.1.1:8080/x",
            "http://[fe80::1]/x",
            "http://[fd00:ec2::254]/x",
            "http://[::ffff:169.254.169.254]/x",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./x",
        ] {
            assert!(
                matches!(
                    validate_url(url, &strict),
                    Err(WebhookError::ForbiddenAddress { .. })
                ),
                "{url}"
            );
            assert!(validate_url(url, &open).is_ok(), "{url} when allowed");
        }
        for url in [
            "http://0.0.0.0/",
            "http://[::]/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
        ] {
            assert!(validate_url(url, &open).is_err(), "{url} is never allowed");
        }
        for url in [
            "http://127.0.0.1:8080/hook",
            "https://hooks.example.com/x?y=1",
            "http://10.0.0.5/",
            "http://[::1]:9/",
        ] {
            assert!(validate_url(url, &strict).is_ok(), "{url}");
        }
    }

    #[test]
    fn urls_that_do_not_parse_or_are_not_http_are_refused() {
        let p = AddrPolicy::default();
        for url in [
            "",
            "not a url",
            "ftp://example.com/",
            "file:///etc/passwd",
            "http://",
            "http://user:pass@example.com/",
            "javascript:alert(1)",
        ] {
            assert!(
                matches!(validate_url(url, &p), Err(WebhookError::BadUrl { .. })),
                "{url}"
            );
        }
    }
}
