//! [`MailConfig`] and the mail flags ([`MailFlags`]), the same on `switchboard-auth` and the hub.

use std::time::Duration;

use lettre::{AsyncSmtpTransport, Tokio1Executor};

use super::MailFrom;

/// Default limit on mails sent per second by the whole cluster (`--mail-rate-per-sec`).
pub const DEFAULT_MAIL_RATE_PER_SEC: f64 = 1.0;
/// Default limit on one SMTP send, connection to last reply (`--smtp-timeout-secs`).
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How mail leaves this process. [`MailConfig::default`]: the outbox, sender
/// [`super::DEFAULT_MAIL_FROM`], 1 mail per second, a 30 s send timeout.
#[derive(Debug, Clone, PartialEq)]
pub struct MailConfig {
    /// The relay; `None`: mails are written to `DATA_DIR/outbox/` ([`super::OutboxMailer`]).
    pub smtp_url: Option<SmtpUrl>,
    /// The `From` of every mail, and the domain of every `Message-ID`.
    pub from: MailFrom,
    /// Most mails sent per second by the whole cluster (finite, above 0). Not enforced by the
    /// mailer: the job queue's mail lane paces its sends by it.
    pub rate_per_sec: f64,
    /// Longest one SMTP send may take before it fails as [`super::MailError::Timeout`].
    pub send_timeout: Duration,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            smtp_url: None,
            from: MailFrom::default(),
            rate_per_sec: DEFAULT_MAIL_RATE_PER_SEC,
            send_timeout: DEFAULT_SMTP_TIMEOUT,
        }
    }
}

/// An SMTP relay URL that lettre accepts (`--smtp-url`):
/// - `smtp://host[:port]`: plain SMTP (port 25), no TLS;
/// - `smtp://host[:port]?tls=required`: STARTTLS, required (port 587);
/// - `smtp://host[:port]?tls=opportunistic`: STARTTLS when offered (port 587);
/// - `smtps://host[:port]`: implicit TLS (port 465);
/// - `user:password@` before the host for AUTH (percent-encoded); a path (`/name`) sets the
///   EHLO name.
///
/// Its `Debug` and `Display` hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl(String);

impl SmtpUrl {
    /// Checks `value` as lettre will use it (scheme, `tls` parameter, host, credentials), so a
    /// bad URL stops the binary at start rather than failing every mail.
    ///
    /// # Errors
    /// A message (for clap, which names the flag) without the password.
    pub fn parse(value: &str) -> Result<SmtpUrl, String> {
        let shown = crate::config::redact_url(value);
        if !(value.starts_with("smtp://") || value.starts_with("smtps://")) {
            // Not shown: without a scheme, a password in it could not be found to hide.
            return Err("not an smtp:// or smtps:// URL (e.g. smtp://relay:25, smtp://user:pw@relay:587?tls=required, smtps://relay:465)".to_owned());
        }
        AsyncSmtpTransport::<Tokio1Executor>::from_url(value)
            .map_err(|e| format!("{shown:?} is not a usable SMTP URL: {e}"))?;
        Ok(SmtpUrl(value.to_owned()))
    }

    /// The URL with its password, for lettre.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::config::redact_url(&self.0))
    }
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmtpUrl({self})")
    }
}

/// The clap parser of `--smtp-url`: [`SmtpUrl::parse`], with an error that names the flag
/// but, unlike clap's own, never repeats the value (it may hold the relay's password).
#[derive(Debug, Clone, Copy, Default)]
pub struct SmtpUrlParser;

impl clap::builder::TypedValueParser for SmtpUrlParser {
    type Value = SmtpUrl;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<SmtpUrl, clap::Error> {
        let flag = arg.map_or_else(|| "--smtp-url".to_owned(), ToString::to_string);
        let invalid = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '{flag}': {why}\n"),
            )
            .with_cmd(cmd)
        };
        let value = value
            .to_str()
            .ok_or_else(|| invalid("not UTF-8".to_owned()))?;
        SmtpUrl::parse(value).map_err(invalid)
    }
}

/// Parses `--mail-rate-per-sec`: a finite number above 0 (fractions allowed).
///
/// # Errors
/// A message naming the value, for clap.
pub fn parse_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{value:?} is not a number of mails per second above 0"
        )),
    }
}

/// Parses `--smtp-timeout-secs`: whole seconds, at least 1.
///
/// # Errors
/// A message naming the value, for clap.
pub fn parse_timeout(value: &str) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "{value:?} is not a whole number of seconds above 0"
        )),
    }
}

/// The mail flags, the same on `switchboard-auth` and on the hub (for its embedded auth).
#[derive(Debug, Clone, clap::Args)]
pub struct MailFlags {
    /// SMTP relay for the welcome and password-reset mails: smtp://host:25 (plain),
    /// smtp://host:587?tls=required (STARTTLS), smtps://host:465 (implicit TLS), with
    /// user:password@ for AUTH. Unset: each mail is written to DATA_DIR/outbox/ as an .eml file.
    #[arg(long, env = "SWITCHBOARD_SMTP_URL", value_parser = SmtpUrlParser)]
    pub smtp_url: Option<SmtpUrl>,

    /// Sender of every mail, `Name <address>`; its domain ends every Message-ID.
    #[arg(long, env = "SWITCHBOARD_MAIL_FROM", default_value = super::DEFAULT_MAIL_FROM, value_parser = MailFrom::parse)]
    pub mail_from: MailFrom,

    /// Most mails sent per second by the whole cluster (not per node); fractions allowed.
    #[arg(long, env = "SWITCHBOARD_MAIL_RATE_PER_SEC", default_value = "1", value_parser = parse_rate)]
    pub mail_rate_per_sec: f64,

    /// Longest one SMTP send may take (connect to last reply), in seconds; then it fails and is
    /// retried later.
    #[arg(long, env = "SWITCHBOARD_SMTP_TIMEOUT_SECS", default_value = "30", value_parser = parse_timeout)]
    pub smtp_timeout_secs: Duration,
}

impl MailFlags {
    /// The configuration these flags describe.
    pub fn config(&self) -> MailConfig {
        MailConfig {
            smtp_url: self.smtp_url.clone(),
            from: self.mail_from.clone(),
            rate_per_sec: self.mail_rate_per_sec,
            send_timeout: self.smtp_timeout_secs,
        }
    }

    /// Writes these settings into `cfg.mail` (the mail lane's spacing is derived from the rate
    /// when the service opens: `jobs::pool_config`).
    pub fn apply(&self, cfg: &mut crate::AuthConfig) {
        cfg.mail = self.config();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_in_lettres_forms_parse_and_others_do_not() {
        for ok in [
            "smtp://127.0.0.1:2525",
            "smtp://relay.example.com",
            "smtp://user:p%40ss@relay.example.com:587?tls=required",
            "smtp://relay.example.com?tls=opportunistic",
            "smtps://relay.example.com",
            "smtps://user:pw@relay.example.com:465/ehlo.example.com",
        ] {
            SmtpUrl::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "relay:25",
            "http://relay",
            "smtp://",
            "smtp://relay?tls=bogus",
            "smtp://relay:notaport",
            "",
        ] {
            assert!(SmtpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_password_never_shows() {
        let url = SmtpUrl::parse("smtp://user:hunter2@relay:587?tls=required").unwrap();
        assert!(!format!("{url} {url:?}").contains("hunter2"));
        for bad in ["smtp://user:hunter2@relay?tls=bogus", "user:hunter2@relay"] {
            let err = SmtpUrl::parse(bad).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn rates_and_timeouts_must_be_positive() {
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "-1", "NaN", "inf", "x"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_timeout("5"), Ok(Duration::from_secs(5)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("1.5").is_err());
    }
}
