//! [`GuardedResolver`]: the delivery client's DNS resolver. It resolves with the system's
//! resolver (`tokio::net::lookup_host`) and drops every address the [`AddrPolicy`] refuses, so
//! a name that resolves (now, or after a rebinding) to a link-local or metadata address is never
//! connected to. A URL whose host is an IP literal never reaches a resolver: the handler checks
//! it with [`crate::validate_url`] before each request instead.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::AddrPolicy;

/// Why an address may not be reached, or `None` if it may: [`AddrPolicy::refusal`] in
/// production; tests pass a stricter one (no DNS name here resolves to a link-local address).
pub(crate) type Refusal = fn(&AddrPolicy, IpAddr) -> Option<&'static str>;

/// The production [`Refusal`].
pub(crate) fn policy_refusal(policy: &AddrPolicy, addr: IpAddr) -> Option<&'static str> {
    policy.refusal(addr)
}

/// Why a host gave no address to connect to.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    /// The lookup failed (no such name, no DNS server): may heal, so the delivery is retried.
    #[error("DNS lookup of {host} failed: {source}")]
    Lookup {
        /// The name looked up.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The lookup gave no address at all: retried like a failed lookup.
    #[error("{host} resolves to no address")]
    NoAddress {
        /// The name looked up.
        host: String,
    },
    /// Every address is forbidden: a configuration problem, not a transient one, so the
    /// delivery goes dead at once.
    #[error("host resolves only to forbidden addresses: {host} -> {}", list(.refused))]
    ForbiddenOnly {
        /// The name looked up.
        host: String,
        /// Each address and the rule that refused it.
        refused: Vec<(IpAddr, &'static str)>,
    },
}

fn list(refused: &[(IpAddr, &'static str)]) -> String {
    refused
        .iter()
        .map(|(addr, why)| format!("{addr} ({why})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The addresses of `host` that may be reached: `addrs` without those `refuse` refuses.
///
/// # Errors
/// [`ResolveError::NoAddress`] when `addrs` is empty, [`ResolveError::ForbiddenOnly`] when
/// every address is refused.
pub(crate) fn keep_allowed(
    host: &str,
    addrs: impl IntoIterator<Item = SocketAddr>,
    policy: &AddrPolicy,
    refuse: Refusal,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let mut allowed = Vec::new();
    let mut refused = Vec::new();
    for addr in addrs {
        match refuse(policy, addr.ip()) {
            None => allowed.push(addr),
            Some(why) => refused.push((addr.ip(), why)),
        }
    }
    if !allowed.is_empty() {
        if !refused.is_empty() {
            tracing::warn!(host, refused = %list(&refused), "webhook host resolves to forbidden addresses too; they are skipped");
        }
        return Ok(allowed);
    }
    if refused.is_empty() {
        return Err(ResolveError::NoAddress {
            host: host.to_owned(),
        });
    }
    Err(ResolveError::ForbiddenOnly {
        host: host.to_owned(),
        refused,
    })
}

/// The delivery client's resolver (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardedResolver {
    pub(crate) policy: AddrPolicy,
    pub(crate) refuse: Refusal,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let Self { policy, refuse } = *self;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port (or the scheme's) in its place.
            let addrs = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|source| ResolveError::Lookup {
                    host: host.clone(),
                    source,
                })?;
            let allowed = keep_allowed(&host, addrs, &policy, refuse)?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|a| SocketAddr::new(a.parse().unwrap(), 0))
            .collect()
    }

    #[test]
    fn forbidden_addresses_are_dropped_and_only_forbidden_is_an_error() {
        let strict = AddrPolicy::default();
        let kept = keep_allowed(
            "mixed.example",
            addrs(&["169.254.169.254", "10.0.0.7", "fe80::1", "2001:db8::1"]),
            &strict,
            policy_refusal,
        )
        .unwrap();
        assert_eq!(kept, addrs(&["10.0.0.7", "2001:db8::1"]));

        let only_bad = addrs(&["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.1.1"]);
        match keep_allowed("evil.example", only_bad.clone(), &strict, policy_refusal) {
            Err(e @ ResolveError::ForbiddenOnly { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with("host resolves only to forbidden addresses"),
                    "{msg}"
                );
                assert!(msg.contains("169.254.169.254 (link-local or cloud metadata)"));
            }
            other => panic!("{other:?}"),
        }
        let open = AddrPolicy {
            allow_link_local: true,
        };
        assert_eq!(
            keep_allowed("evil.example", only_bad.clone(), &open, policy_refusal).unwrap(),
            only_bad,
            "allowed by --webhook-allow-link-local"
        );
        assert!(matches!(
            keep_allowed(
                "any.example",
                addrs(&["0.0.0.0", "224.0.0.1"]),
                &open,
                policy_refusal
            ),
            Err(ResolveError::ForbiddenOnly { .. })
        ));
        assert!(matches!(
            keep_allowed("empty.example", Vec::new(), &strict, policy_refusal),
            Err(ResolveError::NoAddress { .. })
        ));
    }

    #[tokio::test]
    async fn the_resolver_looks_up_and_filters() {
        let resolver = GuardedResolver {
            policy: AddrPolicy::default(),
            refuse: policy_refusal,
        };
        let found: Vec<SocketAddr> = resolver
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!found.is_empty());
        assert!(found.iter().all(|a| a.ip().is_loopback()), "{found:?}");

        let strict_loopback = GuardedResolver {
            policy: AddrPolicy::default(),
            refuse: |_, addr| addr.is_loopback().then_some("loopback (test)"),
        };
        let err = match strict_loopback.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost was not refused"),
            Err(e) => e,
        };
        assert!(matches!(
            err.downcast_ref::<ResolveError>(),
            Some(ResolveError::ForbiddenOnly { .. })
        ));

        let err = match resolver
            .resolve("no-such-host.invalid".parse().unwrap())
            .await
        {
            Ok(_) => panic!("an .invalid name resolved"),
            Err(e) => e,
        };
        assert!(matches!(
            err.downcast_ref::<ResolveError>(),
            Some(ResolveError::Lookup { .. })
        ));
    }
}
