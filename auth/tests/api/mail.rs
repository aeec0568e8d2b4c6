//! Mail: the welcome and password-reset mails through [`SmtpMailer`] to a real SMTP server on
//! a free port (testkit's [`SmtpSink`]) and through [`OutboxMailer`] to files, parsed back as a
//! mail client would (`mail-parser`). Real sockets and real time: the timeout test waits for
//! the configured (1 s) send timeout.

use std::time::{Duration, Instant};

use mail_parser::MessageParser;
use switchboard_auth::mail::{
    Mail, MailConfig, MailError, MailFrom, Mailer as _, OutboxMailer, SmtpMailer, SmtpUrl,
    OUTBOX_DIR,
};
use switchboard_testkit::smtp::{SmtpSink, Stage};

use crate::support::{within, Backend, Harness};

/// A username that would be markup, and one that tries to add a header.
const SCRIPT_NAME: &str = "<script>alert('x')</script>&";
const INJECTING_NAME: &str = "eve\r\nBcc: victim@example.com\r\n";

fn from() -> MailFrom {
    MailFrom::parse("Switchboard <noreply@chat.example.com>").unwrap()
}

fn smtp(sink: &SmtpSink, timeout: Duration) -> SmtpMailer {
    SmtpMailer::new(&SmtpUrl::parse(&sink.url()).unwrap(), timeout).unwrap()
}

fn parse(raw: &[u8]) -> mail_parser::Message<'_> {
    MessageParser::default()
        .parse(raw)
        .expect("the mail parses as RFC 5322")
}

#[tokio::test]
async fn smtp_delivers_the_welcome_mail_with_both_parts_and_the_username_escaped() {
    let sink = SmtpSink::start().await;
    let mailer = smtp(&sink, Duration::from_secs(10));
    let mail = Mail::welcome(&from(), "alice@example.com", SCRIPT_NAME, "job-41").unwrap();
    assert_eq!(mail.message_id(), "<job-41@chat.example.com>");
    within("the send", mailer.send(&mail)).await.unwrap();

    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mail_from, "noreply@chat.example.com");
    assert_eq!(got[0].rcpt_to, ["alice@example.com"]);
    // The bytes on the wire are the bytes the mail formats to (lettre ends DATA with
    // `\r\n.\r\n`, so one more line end arrives).
    let formatted = String::from_utf8(mail.formatted()).unwrap();
    assert_eq!(got[0].text(), format!("{formatted}\r\n"));

    let parsed = parse(&got[0].raw);
    assert_eq!(parsed.message_id(), Some("job-41@chat.example.com"));
    assert_eq!(parsed.subject(), Some("Welcome to Switchboard"));
    let sender = parsed.from().unwrap().first().unwrap();
    assert_eq!(sender.name(), Some("Switchboard"));
    assert_eq!(sender.address(), Some("noreply@chat.example.com"));
    let to = parsed.to().unwrap().first().unwrap();
    assert_eq!(to.address(), Some("alice@example.com"));
    assert_eq!(to.name(), Some(SCRIPT_NAME));
    assert!(parsed.date().is_some(), "a Date header");
    assert!(got[0]
        .header("content-type")
        .unwrap()
        .starts_with("multipart/alternative"));

    let text = parsed.body_text(0).unwrap();
    assert!(text.contains(&format!("Hello {SCRIPT_NAME},")), "{text}");
    let html = parsed.body_html(0).unwrap();
    assert!(
        html.contains("Hello &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;,"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
}

#[tokio::test]
async fn a_username_cannot_add_a_header_or_a_recipient() {
    let sink = SmtpSink::start().await;
    let mailer = smtp(&sink, Duration::from_secs(10));
    let mail = Mail::welcome(&from(), "eve@example.com", INJECTING_NAME, "job-7").unwrap();
    within("the send", mailer.send(&mail)).await.unwrap();
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].rcpt_to, ["eve@example.com"]);
    let parsed = parse(&got[0].raw);
    assert!(parsed.header("Bcc").is_none(), "{}", got[0].text());
    let text = got[0].text();
    let head = text.split("\r\n\r\n").next().unwrap();
    assert!(
        !head
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("bcc")),
        "{head}"
    );
    let to = parsed.to().unwrap().first().unwrap();
    assert_eq!(to.address(), Some("eve@example.com"));
    assert_eq!(to.name(), Some("eveBcc: victim@example.com"));
}

#[tokio::test]
async fn the_password_reset_mail_carries_the_link_in_both_parts() {
    let sink = SmtpSink::start().await;
    let mailer = smtp(&sink, Duration::from_secs(10));
    let link = "https://chat.example.com/#reset?token=abc_DEF-123&x='1'";
    let mail = Mail::password_reset(&from(), "bob@example.com", "bob", link, "reset-9").unwrap();
    within("the send", mailer.send(&mail)).await.unwrap();
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    let parsed = parse(&got[0].raw);
    assert_eq!(parsed.subject(), Some("Reset your Switchboard password"));
    assert_eq!(parsed.message_id(), Some("reset-9@chat.example.com"));
    let text = parsed.body_text(0).unwrap();
    assert!(text.contains(link), "{text}");
    assert!(text.contains("30 minutes"), "{text}");
    let html = parsed.body_html(0).unwrap();
    let escaped = "https://chat.example.com/#reset?token=abc_DEF-123&amp;x=&#39;1&#39;";
    assert!(
        html.contains(&format!("<a href=\"{escaped}\">{escaped}</a>")),
        "{html}"
    );
}

#[tokio::test]
async fn a_451_is_transient_and_the_retry_delivers_once() {
    let sink = SmtpSink::start().await;
    sink.fail_next(Stage::Data, 451, 1);
    let mailer = smtp(&sink, Duration::from_secs(10));
    let mail = Mail::welcome(&from(), "carol@example.com", "carol", "job-1").unwrap();
    let err = within("the send", mailer.send(&mail)).await.unwrap_err();
    assert!(matches!(err, MailError::Deferred(_)), "{err:?}");
    assert!(!err.is_permanent());
    assert!(err.to_string().contains("451"), "{err}");
    assert!(sink.received().is_empty());

    within("the retry", mailer.send(&mail)).await.unwrap();
    assert_eq!(sink.received().len(), 1);
    assert_eq!(sink.data_attempts(), 2);

    // A 4xx to MAIL FROM is transient too.
    sink.fail_next(Stage::Mail, 421, 1);
    let err = within("the send", mailer.send(&mail)).await.unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
}

#[tokio::test]
async fn a_550_is_permanent() {
    let sink = SmtpSink::start().await;
    sink.fail_always(Stage::Rcpt, 550);
    let mailer = smtp(&sink, Duration::from_secs(10));
    let mail = Mail::welcome(&from(), "nobody@example.com", "nobody", "job-2").unwrap();
    let err = within("the send", mailer.send(&mail)).await.unwrap_err();
    assert!(matches!(err, MailError::Rejected(_)), "{err:?}");
    assert!(err.is_permanent());
    assert_eq!(err.code(), "mail_rejected");

    sink.clear_script();
    sink.fail_always(Stage::Data, 554);
    let err = within("the send", mailer.send(&mail)).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn a_relay_that_is_down_is_transient_and_serves_again_after_a_restart() {
    let mut sink = SmtpSink::start().await;
    let mailer = smtp(&sink, Duration::from_secs(10));
    let mail = Mail::welcome(&from(), "dave@example.com", "dave", "job-3").unwrap();
    sink.stop().await;
    let err = within("the send", mailer.send(&mail)).await.unwrap_err();
    assert!(matches!(err, MailError::Connection(_)), "{err:?}");
    assert!(!err.is_permanent());

    sink.restart().await;
    within("the send", mailer.send(&mail)).await.unwrap();
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn a_relay_that_hangs_times_out_within_the_send_timeout() {
    let sink = SmtpSink::start().await;
    sink.hang(true);
    let timeout = Duration::from_secs(1);
    let mailer = smtp(&sink, timeout);
    let mail = Mail::welcome(&from(), "erin@example.com", "erin", "job-4").unwrap();
    let started = Instant::now();
    let err = within("the send", mailer.send(&mail)).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, MailError::Timeout(t) if t == timeout),
        "{err:?}"
    );
    assert!(!err.is_permanent());
    assert!(took >= timeout && took < timeout * 3, "{took:?}");
    assert_eq!(sink.connections(), 1);
}

#[tokio::test]
async fn the_outbox_writes_one_private_parseable_file_per_message_id() {
    let root = tempfile::tempdir().unwrap();
    let outbox = OutboxMailer::open(root.path().join(OUTBOX_DIR)).unwrap();
    let mail = Mail::welcome(&from(), "frank@example.com", SCRIPT_NAME, "job-5").unwrap();
    outbox.send(&mail).await.unwrap();
    let path = outbox.dir().join("job-5.eml");
    assert_eq!(outbox.path_of(&mail), path);
    let raw = std::fs::read(&path).unwrap();
    assert!(raw == mail.formatted(), "the file holds the formatted mail");
    let parsed = parse(&raw);
    assert_eq!(parsed.message_id(), Some("job-5@chat.example.com"));
    assert!(parsed.body_html(0).unwrap().contains("&lt;script&gt;"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(outbox.dir()), 0o700);
    }

    // The same job delivered again (built anew: another Date, another MIME boundary)
    // replaces the file; another job adds one. No temporary file stays behind.
    let again = Mail::welcome(&from(), "frank@example.com", SCRIPT_NAME, "job-5").unwrap();
    outbox.send(&again).await.unwrap();
    let other = Mail::welcome(&from(), "gina@example.com", "gina", "job-6").unwrap();
    outbox.send(&other).await.unwrap();
    let mut names: Vec<String> = std::fs::read_dir(outbox.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["job-5.eml", "job-6.eml"]);
    assert!(std::fs::read(&path).unwrap() == again.formatted());
}

#[tokio::test]
async fn an_unwritable_outbox_is_a_transient_error() {
    let root = tempfile::tempdir().unwrap();
    let outbox = OutboxMailer::open(root.path().join(OUTBOX_DIR)).unwrap();
    std::fs::remove_dir(outbox.dir()).unwrap();
    let mail = Mail::welcome(&from(), "hal@example.com", "hal", "job-8").unwrap();
    let err = outbox.send(&mail).await.unwrap_err();
    assert!(matches!(err, MailError::Outbox(_)), "{err:?}");
    assert!(!err.is_permanent());
}

/// `Auth::mailer` with the default configuration is the outbox in the data directory; with an
/// SMTP URL it sends there.
async fn the_services_mailer_follows_its_configuration(backend: Backend) {
    let h = Harness::new(backend).await;
    assert_eq!(h.auth.mail_config(), &MailConfig::default());
    let mail = Mail::welcome(&MailFrom::default(), "ivy@example.com", "ivy", "job-10").unwrap();
    assert_eq!(mail.message_id(), "<job-10@localhost>");
    h.auth.mailer().send(&mail).await.unwrap();
    let file = h.env.data_dir().join(OUTBOX_DIR).join("job-10.eml");
    assert!(std::fs::read(file).unwrap() == mail.formatted());

    let sink = SmtpSink::start().await;
    let url = SmtpUrl::parse(&sink.url()).unwrap();
    let h = Harness::with_config(backend, |cfg| {
        cfg.mail.smtp_url = Some(url);
        cfg.mail.from = from();
    })
    .await;
    let from = &h.auth.mail_config().from;
    let mail = Mail::welcome(from, "ivy@example.com", "ivy", "job-11").unwrap();
    within("the send", h.auth.mailer().send(&mail))
        .await
        .unwrap();
    assert!(!h.env.data_dir().join(OUTBOX_DIR).exists());
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        parse(&got[0].raw).message_id(),
        Some("job-11@chat.example.com")
    );
}

backend_tests!(the_services_mailer_follows_its_configuration);

#[tokio::test]
async fn the_urls_credentials_authenticate_and_wrong_ones_are_permanent() {
    let sink = SmtpSink::start().await;
    sink.require_auth("mailer", "p@ss:word");
    let url = format!("smtp://mailer:p%40ss%3Aword@{}", sink.addr());
    let mailer = SmtpMailer::new(&SmtpUrl::parse(&url).unwrap(), Duration::from_secs(10)).unwrap();
    let mail = Mail::welcome(&from(), "kim@example.com", "kim", "job-12").unwrap();
    within("the send", mailer.send(&mail)).await.unwrap();
    assert_eq!(sink.received()[0].auth_user.as_deref(), Some("mailer"));

    let url = format!("smtp://mailer:wrong@{}", sink.addr());
    let mailer = SmtpMailer::new(&SmtpUrl::parse(&url).unwrap(), Duration::from_secs(10)).unwrap();
    let err = within("the send", mailer.send(&mail)).await.unwrap_err();
    assert!(matches!(err, MailError::Rejected(_)), "{err:?}");
    assert!(!err.to_string().contains("wrong"), "{err}");
    assert_eq!(sink.received().len(), 1);
}
