//! What the mails say: [`Mail`] (a built RFC 5322 message with a stable `Message-ID`) and
//! [`MailFrom`] (the sender), from the templates in `auth/templates/mail/`.
//!
//! **Invariants:** a value from a user (username, address, link) reaches a header only through
//! lettre's typed headers (addresses are parsed, display names encoded) after control
//! characters are dropped, so it can never start a header of its own; in the HTML part it is
//! HTML-escaped. The `Message-ID` depends only on the given id and the sender's domain, so every
//! delivery of one job carries the same one and receivers (and the outbox) can drop duplicates.

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::Message;

use super::MailError;

const WELCOME_TXT: &str = include_str!("../../templates/mail/welcome.txt");
const WELCOME_HTML: &str = include_str!("../../templates/mail/welcome.html");
const RESET_TXT: &str = include_str!("../../templates/mail/password_reset.txt");
const RESET_HTML: &str = include_str!("../../templates/mail/password_reset.html");

/// Subject of the welcome mail.
pub const WELCOME_SUBJECT: &str = "Welcome to Switchboard";
/// Subject of the password-reset mail.
pub const RESET_SUBJECT: &str = "Reset your Switchboard password";
/// Default sender (`--mail-from`).
pub const DEFAULT_MAIL_FROM: &str = "Switchboard <noreply@localhost>";
/// Longest id accepted for a `Message-ID` (a UUID is 36).
pub const MAX_ID_LEN: usize = 128;

/// The sender of every mail (`--mail-from`): a mailbox such as `Switchboard
/// <noreply@example.com>`. Its domain is the right-hand side of every `Message-ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom(Mailbox);

impl MailFrom {
    /// Parses `Name <addr@domain>` or `addr@domain`.
    ///
    /// # Errors
    /// A message naming the value (for clap) if it is not one mailbox.
    pub fn parse(value: &str) -> Result<MailFrom, String> {
        value.parse::<Mailbox>().map(MailFrom).map_err(|e| {
            format!("{value:?} is not a mail address like `Name <user@example.com>`: {e}")
        })
    }

    /// The domain of the address (`example.com`).
    pub fn domain(&self) -> &str {
        self.0.email.domain()
    }

    /// The mailbox.
    pub fn mailbox(&self) -> &Mailbox {
        &self.0
    }
}

impl Default for MailFrom {
    fn default() -> Self {
        MailFrom::parse(DEFAULT_MAIL_FROM).expect("the default sender parses")
    }
}

impl std::fmt::Display for MailFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One mail, built and ready to send: the RFC 5322 message (headers `From`, `To`, `Subject`,
/// `Date`, `Message-ID`, `MIME-Version`; a `multipart/alternative` body with a `text/plain`
/// and a `text/html` part) and its envelope. Its `Debug` shows the ids only: the body may hold
/// a password-reset link.
#[derive(Clone)]
pub struct Mail {
    message: Message,
    /// `<{id}@{domain}>`.
    message_id: String,
    /// The id it was built from (the job id).
    id: String,
}

impl Mail {
    /// The welcome mail to `username` at `to`, from `from`, with `Message-ID:
    /// <{id}@{from's domain}>`.
    ///
    /// # Errors
    /// [`MailError::Invalid`] if `to` is not an address or `id` is unfit (see [`Mail::new`]).
    pub fn welcome(from: &MailFrom, to: &str, username: &str, id: &str) -> Result<Mail, MailError> {
        let vars = [("username", username)];
        Mail::new(
            from,
            to,
            username,
            id,
            WELCOME_SUBJECT,
            render(WELCOME_TXT, &vars, false),
            render(WELCOME_HTML, &vars, true),
        )
    }

    /// The password-reset mail to `username` at `to`: "here is your link, valid 30 min", with
    /// `link` (an absolute `http`/`https` URL carrying the token) in both parts.
    ///
    /// # Errors
    /// [`MailError::Invalid`] if `link` is not an `http(s)` URL without spaces or control
    /// characters, or as for [`Mail::welcome`].
    pub fn password_reset(
        from: &MailFrom,
        to: &str,
        username: &str,
        link: &str,
        id: &str,
    ) -> Result<Mail, MailError> {
        let scheme_ok = link.starts_with("https://") || link.starts_with("http://");
        if !scheme_ok || link.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(MailError::Invalid(format!(
                "the reset link must be an http(s) URL without spaces (got {link:?})"
            )));
        }
        let vars = [("username", username), ("link", link)];
        Mail::new(
            from,
            to,
            username,
            id,
            RESET_SUBJECT,
            render(RESET_TXT, &vars, false),
            render(RESET_HTML, &vars, true),
        )
    }

    /// Builds a mail: `To: "{name}" <{to}>` (control characters dropped from the name),
    /// `Message-ID: <{id}@{domain}>`, `Date` now.
    ///
    /// # Errors
    /// [`MailError::Invalid`] if `to` is not one address, or `id` is empty, longer than
    /// [`MAX_ID_LEN`], or has a character other than ASCII letters, digits, `.`, `_`, `+`, `-`.
    fn new(
        from: &MailFrom,
        to: &str,
        name: &str,
        id: &str,
        subject: &str,
        text: String,
        html: String,
    ) -> Result<Mail, MailError> {
        let id_ok = !id.is_empty()
            && id.len() <= MAX_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_+".contains(&b))
            && !id.starts_with('.')
            && !id.ends_with('.')
            && !id.contains("..");
        if !id_ok {
            return Err(MailError::Invalid(format!(
                "{id:?} cannot be the left part of a Message-ID"
            )));
        }
        let address = to
            .parse()
            .map_err(|e| MailError::Invalid(format!("recipient {to:?}: {e}")))?;
        let name: String = name.chars().filter(|c| !c.is_control()).collect();
        let to = Mailbox::new((!name.is_empty()).then_some(name), address);
        let message_id = format!("<{id}@{}>", from.domain());
        let message = Message::builder()
            .from(from.mailbox().clone())
            .to(to)
            .subject(subject)
            .date_now()
            .message_id(Some(message_id.clone()))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html),
                    ),
            )
            .map_err(|e| MailError::Invalid(e.to_string()))?;
        Ok(Mail {
            message,
            message_id,
            id: id.to_owned(),
        })
    }

    /// The `Message-ID` header's value, `<{id}@{domain}>`.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The id the mail was built from (the job id); the outbox file is `{id}.eml`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The message as sent: RFC 5322 bytes, CRLF line ends (what goes after SMTP `DATA`,
    /// before dot-stuffing).
    pub fn formatted(&self) -> Vec<u8> {
        self.message.formatted()
    }

    /// The envelope (`MAIL FROM` and `RCPT TO`).
    pub fn envelope(&self) -> &lettre::address::Envelope {
        self.message.envelope()
    }
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("id", &self.id)
            .field("message_id", &self.message_id)
            .finish_non_exhaustive()
    }
}

/// `template` with each `{{name}}` of `vars` replaced by its value (HTML-escaped if `html`), in
/// one pass: a value containing `{{...}}` is not expanded again. Unknown names stay as they are.
fn render(template: &str, vars: &[(&str, &str)], html: bool) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let value = after.find("}}").and_then(|end| {
            let name = &after[..end];
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v, end + 2))
        });
        match value {
            Some((value, skip)) => {
                if html {
                    escape_html(value, &mut out);
                } else {
                    out.push_str(value);
                }
                rest = &after[skip..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Appends `value` with `&`, `<`, `>`, `"` and `'` escaped: safe in element content and in
/// quoted attribute values.
fn escape_html(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_escapes_html_once_and_never_expands_values() {
        let vars = [
            ("username", "<b>&{{link}}"),
            ("link", "https://x/?a=1&b='2'"),
        ];
        assert_eq!(
            render("{{username}} {{link}} {{other}} {{", &vars, true),
            "&lt;b&gt;&amp;{{link}} https://x/?a=1&amp;b=&#39;2&#39; {{other}} {{"
        );
        assert_eq!(render("{{username}}!", &vars, false), "<b>&{{link}}!");
    }

    #[test]
    fn ids_unfit_for_a_message_id_are_invalid() {
        let from = MailFrom::default();
        for id in ["", "a b", "a>b", "a@b", ".a", "a..b", "é", &"x".repeat(129)] {
            let err = Mail::welcome(&from, "a@example.com", "a", id).unwrap_err();
            assert!(err.is_permanent(), "{id:?}");
        }
        Mail::welcome(
            &from,
            "a@example.com",
            "a",
            "0193e5c2-aa7e-7e1b-9bb4-2b3f0c1d2e3f",
        )
        .unwrap();
    }

    #[test]
    fn bad_recipients_and_links_are_invalid() {
        let from = MailFrom::default();
        for to in ["", "nobody", "a@b.c\r\nBcc: x@y.z", "a@b.c, d@e.f"] {
            assert!(
                matches!(
                    Mail::welcome(&from, to, "a", "1"),
                    Err(MailError::Invalid(_))
                ),
                "{to:?}"
            );
        }
        for link in [
            "javascript:alert(1)",
            "https://x/\r\nBcc: y",
            "/relative",
            "https://a b",
        ] {
            assert!(
                matches!(
                    Mail::password_reset(&from, "a@example.com", "a", link, "1"),
                    Err(MailError::Invalid(_))
                ),
                "{link:?}"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_link() {
        let link = "https://chat.example.com/#reset=secret-token";
        let mail =
            Mail::password_reset(&MailFrom::default(), "a@example.com", "a", link, "r-1").unwrap();
        let shown = format!("{mail:?}");
        assert!(
            !shown.contains("secret-token") && shown.contains("r-1@localhost"),
            "{shown}"
        );
    }

    #[test]
    fn the_sender_parses_with_or_without_a_name() {
        assert_eq!(MailFrom::default().domain(), "localhost");
        assert_eq!(
            MailFrom::parse("ops@example.com").unwrap().domain(),
            "example.com"
        );
        assert!(MailFrom::parse("not an address").is_err());
        assert!(MailFrom::parse("").is_err());
    }
}
