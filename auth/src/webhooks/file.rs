//! `--webhooks-file`: the configured endpoints, a JSON array of
//! `{"id", "url", "secret", "events": [...]}`, and the flags of the webhook configuration
//! ([`WebhookConfigFlags`], the same on `switchboard-auth` and on the hub for its embedded
//! auth; the delivery flags, `--webhook-timeout-ms` and `--webhook-allow-link-local`, are
//! `switchboard_webhooks::WebhookFlags`, flattened next to it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use switchboard_webhooks::{AddrPolicy, Endpoint};

use super::{validate, WebhookConfig, DEFAULT_RELOAD_INTERVAL};
use crate::store::webhooks::MAX_ENDPOINTS;
use crate::AuthConfig;

/// Largest file read (100 entries of the longest fields fit with room to spare).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// One entry of the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    url: String,
    secret: String,
    events: Vec<String>,
}

/// Why `--webhooks-file` was refused. Each message names the flag, and the entry's id when
/// one entry is at fault.
#[derive(Debug, thiserror::Error)]
pub enum WebhookFileError {
    /// The file cannot be read.
    #[error("--webhooks-file {path}: cannot read it")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than 1 MiB.
    #[error("--webhooks-file {path}: larger than {MAX_FILE_BYTES} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not a JSON array of entries.
    #[error("--webhooks-file {path}: not a JSON array of {{id, url, secret, events}}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// More than [`MAX_ENDPOINTS`] entries.
    #[error("--webhooks-file {path}: more than {MAX_ENDPOINTS} endpoints")]
    TooMany {
        /// The file.
        path: PathBuf,
    },
    /// An entry breaks a rule (or repeats an id).
    #[error("--webhooks-file {path}: endpoint {id:?}: {reason}")]
    Entry {
        /// The file.
        path: PathBuf,
        /// The entry's id.
        id: String,
        /// The rule broken.
        reason: String,
    },
}

/// The endpoints of the file at `path`, each checked (URL against `policy`).
///
/// # Errors
/// [`WebhookFileError`], naming `--webhooks-file` and the first bad entry's id.
pub fn load_file(path: &Path, policy: &AddrPolicy) -> Result<Vec<Endpoint>, WebhookFileError> {
    let read = |source| WebhookFileError::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read)?.len();
    if len > MAX_FILE_BYTES {
        return Err(WebhookFileError::TooLarge {
            path: path.to_owned(),
        });
    }
    let text = std::fs::read(path).map_err(read)?;
    parse(path, &text, policy)
}

/// [`load_file`] on the file's bytes.
fn parse(path: &Path, text: &[u8], policy: &AddrPolicy) -> Result<Vec<Endpoint>, WebhookFileError> {
    let entries: Vec<Entry> =
        serde_json::from_slice(text).map_err(|source| WebhookFileError::Parse {
            path: path.to_owned(),
            source,
        })?;
    if entries.len() > MAX_ENDPOINTS {
        return Err(WebhookFileError::TooMany {
            path: path.to_owned(),
        });
    }
    let mut seen = BTreeSet::new();
    let mut endpoints = Vec::with_capacity(entries.len());
    for e in entries {
        let bad = |reason: String| WebhookFileError::Entry {
            path: path.to_owned(),
            id: e.id.clone(),
            reason,
        };
        if !seen.insert(e.id.clone()) {
            return Err(bad("the id appears twice".to_owned()));
        }
        let events = validate::events(&e.events).map_err(bad)?;
        let endpoint = Endpoint {
            id: e.id.clone(),
            url: e.url.clone(),
            secret: e.secret.clone(),
            events,
            enabled: true,
        };
        validate::endpoint(&endpoint, policy).map_err(bad)?;
        endpoints.push(endpoint);
    }
    Ok(endpoints)
}

/// The webhook configuration flags, the same on `switchboard-auth` and on the hub (for its
/// embedded auth).
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookConfigFlags {
    /// A JSON file of webhook endpoints, `[{"id","url","secret","events":[...]}]`, made the
    /// configured endpoints at start (admins may only enable or disable them over HTTP). A bad
    /// entry stops the start. Every auth node needs the same file. Default: none.
    #[arg(long, env = "SWITCHBOARD_WEBHOOKS_FILE")]
    pub webhooks_file: Option<PathBuf>,

    /// How often the webhook endpoints are reloaded from the store, in milliseconds (changes
    /// made on other nodes arrive within it). Default 5000.
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_RELOAD_MS",
          default_value_t = DEFAULT_RELOAD_INTERVAL.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub webhook_reload_ms: u64,
}

impl WebhookConfigFlags {
    /// Reads `--webhooks-file` (if given, its URLs checked with `delivery`'s
    /// `--webhook-allow-link-local`) and writes these settings and `delivery`'s into
    /// `cfg.webhooks`.
    ///
    /// # Errors
    /// [`WebhookFileError`] for a file that cannot be read or holds a bad entry.
    pub fn apply(
        &self,
        delivery: &switchboard_webhooks::WebhookFlags,
        cfg: &mut AuthConfig,
    ) -> Result<(), WebhookFileError> {
        let mut webhooks = WebhookConfig {
            endpoints: Vec::new(),
            allow_link_local: delivery.webhook_allow_link_local,
            delivery: delivery.delivery_config(),
            reload_interval: Duration::from_millis(self.webhook_reload_ms),
        };
        if let Some(path) = &self.webhooks_file {
            webhooks.endpoints = load_file(path, &webhooks.policy())?;
        }
        cfg.webhooks = webhooks;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Vec<Endpoint>, WebhookFileError> {
        parse(
            Path::new("hooks.json"),
            text.as_bytes(),
            &AddrPolicy::default(),
        )
    }

    #[test]
    fn a_good_file_loads_and_every_bad_entry_names_the_flag_and_its_id() {
        let ok = check(
            r#"[{"id":"crm","url":"http://127.0.0.1:9/h","secret":"0123456789abcdef",
                 "events":["user.registered","message.created"]}]"#,
        )
        .unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].events.len(), 2);
        assert!(ok[0].enabled);
        let entry = |id: &str, url: &str, secret: &str, events: &str| {
            format!(r#"{{"id":"{id}","url":"{url}","secret":"{secret}","events":{events}}}"#)
        };
        let good = entry(
            "a",
            "http://127.0.0.1/",
            "0123456789abcdef",
            r#"["room.created"]"#,
        );
        for (bad, id, why) in [
            (
                entry("b", "not a url", "0123456789abcdef", r#"["room.created"]"#),
                "b",
                "URL",
            ),
            (
                entry(
                    "c",
                    "http://169.254.169.254/",
                    "0123456789abcdef",
                    r#"["room.created"]"#,
                ),
                "c",
                "link-local",
            ),
            (
                entry(
                    "d",
                    "http://127.0.0.1/",
                    "0123456789abcdef",
                    r#"["room.made"]"#,
                ),
                "d",
                "room.made",
            ),
            (
                entry("e", "http://127.0.0.1/", "short", r#"["room.created"]"#),
                "e",
                "secret",
            ),
            (
                entry("f", "http://127.0.0.1/", "0123456789abcdef", "[]"),
                "f",
                "at least one",
            ),
            (
                entry(
                    "B@D",
                    "http://127.0.0.1/",
                    "0123456789abcdef",
                    r#"["room.created"]"#,
                ),
                "B@D",
                "id must",
            ),
            (good.clone(), "a", "twice"),
        ] {
            let err = check(&format!("[{good},{bad}]")).unwrap_err().to_string();
            assert!(err.starts_with("--webhooks-file hooks.json"), "{err}");
            assert!(err.contains(&format!("{id:?}")), "{err}");
            assert!(err.contains(why), "{err}");
        }
        for bad in [
            "",
            "{}",
            r#"[{"id":"a"}]"#,
            r#"[{"id":"a","url":"http://x/","secret":"0123456789abcdef","events":["room.created"],"extra":1}]"#,
        ] {
            let err = check(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("--webhooks-file hooks.json: not a JSON array"),
                "{err}"
            );
        }
        let many: Vec<String> = (0..=MAX_ENDPOINTS)
            .map(|i| {
                entry(
                    &format!("e{i}"),
                    "http://127.0.0.1/",
                    "0123456789abcdef",
                    r#"["room.created"]"#,
                )
            })
            .collect();
        let err = check(&format!("[{}]", many.join(",")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 100"), "{err}");
    }

    #[test]
    fn a_missing_file_names_the_flag() {
        let err = load_file(Path::new("/nonexistent/hooks.json"), &AddrPolicy::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--webhooks-file /nonexistent/hooks.json"),
            "{err}"
        );
    }
}
