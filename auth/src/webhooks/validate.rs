//! The rules of an endpoint's settings, the same for the admin API and the configuration
//! file. Each returns a message naming the field, safe to show.

use std::collections::BTreeSet;

use switchboard_webhooks::{validate_url, AddrPolicy, Endpoint, EventType};

/// Longest endpoint id.
pub const MAX_ID_BYTES: usize = 64;
/// Longest URL.
pub const MAX_URL_BYTES: usize = 2048;
/// Shortest secret.
pub const MIN_SECRET_BYTES: usize = 16;
/// Longest secret.
pub const MAX_SECRET_BYTES: usize = 256;

/// `[a-z0-9_-]{1,64}`.
///
/// # Errors
/// A message naming the rule.
pub fn id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    ok.then_some(())
        .ok_or_else(|| "id must be 1 to 64 characters of a-z, 0-9, _ and -".to_owned())
}

/// An `http`/`https` URL of at most [`MAX_URL_BYTES`] that `policy` allows (SSRF).
///
/// # Errors
/// A message with the reason (a forbidden address names the rule that refused it).
pub fn url(url: &str, policy: &AddrPolicy) -> Result<(), String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("url is longer than {MAX_URL_BYTES} bytes"));
    }
    validate_url(url, policy)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// At least one event type, each a known wire name.
///
/// # Errors
/// A message naming the unknown type, or saying there is none.
pub fn events(names: &[String]) -> Result<BTreeSet<EventType>, String> {
    if names.is_empty() {
        return Err("events must name at least one event type".to_owned());
    }
    names
        .iter()
        .map(|n| EventType::parse(n).map_err(|e| e.to_string()))
        .collect()
}

/// [`MIN_SECRET_BYTES`] to [`MAX_SECRET_BYTES`] bytes.
///
/// # Errors
/// A message with the bounds.
pub fn secret(secret: &str) -> Result<(), String> {
    if (MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&secret.len()) {
        Ok(())
    } else {
        Err(format!(
            "secret must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes"
        ))
    }
}

/// Every rule on a whole endpoint.
///
/// # Errors
/// The first rule broken.
pub fn endpoint(e: &Endpoint, policy: &AddrPolicy) -> Result<(), String> {
    id(&e.id)?;
    url(&e.url, policy)?;
    secret(&e.secret)?;
    if e.events.is_empty() {
        return Err("events must name at least one event type".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_urls_events_and_secrets() {
        for good in ["a", "crm-1", "x_y", &"a".repeat(64)] {
            assert!(id(good).is_ok(), "{good}");
        }
        for bad in ["", "A", "a.b", "a b", "é", &"a".repeat(65)] {
            assert!(id(bad).is_err(), "{bad}");
        }
        let p = AddrPolicy::default();
        assert!(url("http://127.0.0.1:9/x", &p).is_ok());
        let long = format!("http://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(url(&long, &p).unwrap_err().contains("2048"));
        assert!(url("http://169.254.169.254/", &p)
            .unwrap_err()
            .contains("link-local"));
        assert!(events(&[]).is_err());
        assert!(events(&["message.created".into(), "nope".into()])
            .unwrap_err()
            .contains("nope"));
        assert_eq!(
            events(&["user.deleted".into(), "user.deleted".into()])
                .unwrap()
                .len(),
            1
        );
        assert!(secret(&"s".repeat(15)).is_err());
        assert!(secret(&"s".repeat(16)).is_ok());
        assert!(secret(&"s".repeat(256)).is_ok());
        assert!(secret(&"s".repeat(257)).is_err());
    }
}
