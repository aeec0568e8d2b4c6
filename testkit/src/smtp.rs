//! [`SmtpSink`]: a real SMTP server for tests, on a free port of 127.0.0.1, that records every
//! mail it accepts and can be told to refuse, defer, hang, or be down.
//!
//! It speaks what an SMTP client such as lettre needs, without TLS: the `220` greeting,
//! `EHLO`/`HELO` (advertising `8BITMIME`, `SMTPUTF8` and `SIZE`), `MAIL FROM`, `RCPT TO`,
//! `DATA` (dot-unstuffed, up to [`MAX_MESSAGE_BYTES`]), `RSET`, `NOOP`, `QUIT`, and, once
//! [`SmtpSink::require_auth`] is called, `AUTH PLAIN` (advertised, and required before `MAIL`).
//! Anything else gets `502`.
//!
//! Scripting ([`SmtpSink::fail_next`], [`SmtpSink::fail_always`], [`SmtpSink::hang`]) changes
//! the replies of connections from then on; [`SmtpSink::stop`] makes the port refuse
//! connections (it stays reserved for the sink) until [`SmtpSink::restart`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// Largest message `DATA` accepts; a larger one gets `552` and is not recorded.
pub const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// Longest command or data line read; a longer one ends the connection.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// One accepted mail.
#[derive(Debug, Clone)]
pub struct Received {
    /// The `MAIL FROM` address (without the angle brackets).
    pub mail_from: String,
    /// The `RCPT TO` addresses, in order.
    pub rcpt_to: Vec<String>,
    /// The user that authenticated with `AUTH PLAIN` on the connection, if any.
    pub auth_user: Option<String>,
    /// The name the client gave in `EHLO`/`HELO` on the connection (tells senders apart).
    pub helo: Option<String>,
    /// The message as received after `DATA`: dot-unstuffed, CRLF line ends, without the final
    /// `.` line.
    pub raw: Vec<u8>,
    /// When the final `.` was read (monotonic, for spacing between mails).
    pub at: Instant,
    /// The same moment on the wall clock.
    pub at_system: SystemTime,
}

impl Received {
    /// [`Received::raw`] as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// The value of the first header named `name` (case-insensitive), unfolded, or `None`.
    pub fn header(&self, name: &str) -> Option<String> {
        let text = self.text();
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    value = Some(v.trim_start().to_owned());
                }
            }
        }
        value.map(|v| v.trim_end().to_owned())
    }
}

/// The SMTP command whose reply a script changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// The end of `DATA` (the reply to the final `.`: the mail's acceptance).
    Data,
}

#[derive(Default)]
struct Script {
    /// Replies (code) to use instead of 250, per stage, consumed one per command.
    next: Vec<(Stage, VecDeque<u16>)>,
    /// Replies (code) for every command of a stage, after `next` is used up.
    always: Vec<(Stage, u16)>,
    /// Accept connections but never answer.
    hang: bool,
    /// With `Some((user, password))`: `AUTH PLAIN` is advertised and required before `MAIL`.
    auth: Option<(String, String)>,
}

impl Script {
    /// The reply code for `stage` now, consuming one scripted reply.
    fn reply(&mut self, stage: Stage) -> Option<u16> {
        if let Some((_, queue)) = self.next.iter_mut().find(|(s, _)| *s == stage) {
            if let Some(code) = queue.pop_front() {
                return Some(code);
            }
        }
        self.always
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, code)| *code)
    }
}

#[derive(Default)]
struct State {
    script: Mutex<Script>,
    received: Mutex<Vec<Received>>,
    /// Number of `DATA` ends answered, accepted or not.
    data_attempts: Mutex<usize>,
    /// Number of connections accepted.
    connections: Mutex<usize>,
    changed: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running (or stopped) SMTP sink. Dropping it stops it.
pub struct SmtpSink {
    addr: SocketAddr,
    state: Arc<State>,
    /// The accept loop (which owns the connections' tasks) while running.
    task: Option<JoinHandle<()>>,
    /// While stopped: a socket bound to the port without listening, so connections are refused
    /// and no other test can take the port.
    placeholder: Option<TcpSocket>,
}

impl SmtpSink {
    /// Starts a sink on a free port of 127.0.0.1 that accepts every mail.
    ///
    /// # Panics
    /// If no port can be bound.
    pub async fn start() -> SmtpSink {
        let socket = reusable_socket();
        socket
            .bind("127.0.0.1:0".parse().expect("address"))
            .expect("bind the SMTP sink");
        let listener = socket.listen(64).expect("listen");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(State::default());
        let task = tokio::spawn(accept(listener, Arc::clone(&state)));
        SmtpSink {
            addr,
            state,
            task: Some(task),
            placeholder: None,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:{port}`, a plain-SMTP URL for it.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every mail accepted so far, in order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    /// How many `DATA` ends were answered (accepted, deferred or rejected).
    pub fn data_attempts(&self) -> usize {
        *lock(&self.state.data_attempts)
    }

    /// How many connections were accepted (while running).
    pub fn connections(&self) -> usize {
        *lock(&self.state.connections)
    }

    /// Waits until at least `n` mails were accepted and returns them all.
    ///
    /// # Panics
    /// If that takes longer than `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.state.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "the SMTP sink received {} mails in {timeout:?}, not {n}",
                    self.received().len()
                );
            }
        }
    }

    /// The next `times` commands of `stage` get `code` (e.g. 451 or 550) instead of 250.
    pub fn fail_next(&self, stage: Stage, code: u16, times: usize) {
        let mut script = lock(&self.state.script);
        let queue = match script.next.iter_mut().position(|(s, _)| *s == stage) {
            Some(i) => &mut script.next[i].1,
            None => {
                script.next.push((stage, VecDeque::new()));
                &mut script.next.last_mut().expect("pushed").1
            }
        };
        queue.extend(std::iter::repeat_n(code, times));
    }

    /// Every command of `stage` gets `code` from now on (after any [`SmtpSink::fail_next`]).
    pub fn fail_always(&self, stage: Stage, code: u16) {
        let mut script = lock(&self.state.script);
        script.always.retain(|(s, _)| *s != stage);
        script.always.push((stage, code));
    }

    /// With `true`, new connections are accepted but never answered (not even the greeting):
    /// a relay that hangs. With `false`, new connections are served again.
    pub fn hang(&self, on: bool) {
        lock(&self.state.script).hang = on;
    }

    /// Advertises `AUTH PLAIN` on new sessions and requires it before `MAIL` (`530`
    /// otherwise); these credentials get `235`, others `535`.
    pub fn require_auth(&self, user: &str, password: &str) {
        lock(&self.state.script).auth = Some((user.to_owned(), password.to_owned()));
    }

    /// Forgets every script: every command gets 250 again, no AUTH.
    pub fn clear_script(&self) {
        *lock(&self.state.script) = Script::default();
    }

    /// Stops serving: open connections are closed and new ones refused, until
    /// [`SmtpSink::restart`]. The port stays reserved for the sink. Mails received stay.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        let socket = reusable_socket();
        socket
            .bind(self.addr)
            .expect("keep the SMTP sink's port while stopped");
        self.placeholder = Some(socket);
    }

    /// Serves again on the same port after [`SmtpSink::stop`] (no-op while running).
    ///
    /// # Panics
    /// If the port cannot be bound again.
    pub async fn restart(&mut self) {
        if self.task.is_some() {
            return;
        }
        drop(self.placeholder.take());
        let socket = reusable_socket();
        socket
            .bind(self.addr)
            .expect("bind the SMTP sink's port again");
        let listener = socket.listen(64).expect("listen");
        self.task = Some(tokio::spawn(accept(listener, Arc::clone(&self.state))));
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn reusable_socket() -> TcpSocket {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
}

/// Accepts connections until aborted; aborting drops the `JoinSet`, which aborts every
/// connection.
async fn accept(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                *lock(&state.connections) += 1;
                let hang = lock(&state.script).hang;
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    if hang {
                        hold(stream).await;
                    } else {
                        let _ = serve(stream, &state).await;
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Reads and drops everything until the peer closes: a relay that never answers.
async fn hold(mut stream: TcpStream) {
    let mut buf = [0u8; 1024];
    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// One SMTP session.
async fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write
        .write_all(b"220 sink.test ESMTP switchboard-testkit\r\n")
        .await?;
    let mut mail_from: Option<String> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    let auth = lock(&state.script).auth.clone();
    let mut auth_user: Option<String> = None;
    let mut helo: Option<String> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(&mut read, &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let command = text.trim_end();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if verb == "EHLO" || verb == "HELO" {
            helo = command.split_ascii_whitespace().nth(1).map(str::to_owned);
        }
        let reply: String = match verb.as_str() {
            "EHLO" if auth.is_some() => {
                "250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH PLAIN\r\n250 SIZE 10485760"
                    .into()
            }
            "EHLO" => "250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760".into(),
            "AUTH" => match (&auth, plain_credentials(command)) {
                (Some((user, password)), Some((u, p))) if *user == u && *password == p => {
                    auth_user = Some(u);
                    "235 2.7.0 Authentication successful".into()
                }
                (Some(_), _) => "535 5.7.8 Authentication credentials invalid".into(),
                (None, _) => "502 AUTH not offered".into(),
            },
            "MAIL" if auth.is_some() && auth_user.is_none() => {
                "530 5.7.0 Authentication required".into()
            }
            "HELO" => "250 sink.test".into(),
            "NOOP" => "250 OK".into(),
            "RSET" => {
                mail_from = None;
                rcpt_to.clear();
                "250 OK".into()
            }
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            "MAIL" => match lock(&state.script).reply(Stage::Mail) {
                Some(code) => scripted(code),
                None => {
                    mail_from = Some(address(command));
                    rcpt_to.clear();
                    "250 OK".into()
                }
            },
            "RCPT" if mail_from.is_none() => "503 MAIL first".into(),
            "RCPT" => match lock(&state.script).reply(Stage::Rcpt) {
                Some(code) => scripted(code),
                None => {
                    rcpt_to.push(address(command));
                    "250 OK".into()
                }
            },
            "DATA" if rcpt_to.is_empty() => "503 RCPT first".into(),
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let raw = read_data(&mut read).await?;
                *lock(&state.data_attempts) += 1;
                let reply = match (raw, lock(&state.script).reply(Stage::Data)) {
                    (None, _) => "552 Message too big".into(),
                    (Some(_), Some(code)) => scripted(code),
                    (Some(raw), None) => {
                        lock(&state.received).push(Received {
                            mail_from: mail_from.take().unwrap_or_default(),
                            rcpt_to: std::mem::take(&mut rcpt_to),
                            auth_user: auth_user.clone(),
                            helo: helo.clone(),
                            raw,
                            at: Instant::now(),
                            at_system: SystemTime::now(),
                        });
                        "250 OK queued".into()
                    }
                };
                mail_from = None;
                rcpt_to.clear();
                // Count the attempt (and the mail) before the client can see the reply.
                state.changed.notify_waiters();
                reply
            }
            _ => "502 Command not implemented".into(),
        };
        write.write_all(reply.as_bytes()).await?;
        write.write_all(b"\r\n").await?;
    }
}

/// A scripted reply line for `code`.
fn scripted(code: u16) -> String {
    match code {
        400..=499 => format!("{code} 4.3.0 Try again later (scripted)"),
        500..=599 => format!("{code} 5.7.1 Rejected (scripted)"),
        _ => format!("{code} Scripted"),
    }
}

/// The user and password of `AUTH PLAIN <base64 of "\0user\0password">`.
fn plain_credentials(command: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let mut words = command.split_ascii_whitespace();
    let (_, mechanism, response) = (words.next()?, words.next()?, words.next()?);
    if !mechanism.eq_ignore_ascii_case("PLAIN") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(response)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let mut parts = decoded.split('\0');
    let (_authzid, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    Some((user.to_owned(), password.to_owned()))
}

/// The address between `<` and `>` of a `MAIL FROM:<a>` or `RCPT TO:<a>` command.
fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..]
        .find('>')
        .map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}

/// Reads one line (through `\n`) into `line`; 0 at the end of the stream.
async fn read_line(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let n = (&mut *read)
        .take(MAX_LINE_BYTES as u64)
        .read_until(b'\n', line)
        .await?;
    if n == MAX_LINE_BYTES && !line.ends_with(b"\n") {
        return Err(std::io::Error::other("line too long"));
    }
    Ok(n)
}

/// Reads message lines until `.\r\n`, removing dot-stuffing. `None` if the message is larger
/// than [`MAX_MESSAGE_BYTES`] (the rest is read and dropped).
async fn read_data(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut raw = Vec::new();
    let mut too_big = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(read, &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok((!too_big).then_some(raw));
        }
        let content = if line.starts_with(b".") {
            &line[1..]
        } else {
            &line[..]
        };
        if raw.len() + content.len() > MAX_MESSAGE_BYTES {
            too_big = true;
        } else if !too_big {
            raw.extend_from_slice(content);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn session(sink: &SmtpSink, lines: &[&str]) -> String {
        let mut stream = TcpStream::connect(sink.addr()).await.unwrap();
        for line in lines {
            stream.write_all(line.as_bytes()).await.unwrap();
            stream.write_all(b"\r\n").await.unwrap();
        }
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn records_a_dot_unstuffed_mail_and_follows_its_script() {
        let sink = SmtpSink::start().await;
        let mail = [
            "EHLO me",
            "MAIL FROM:<a@x.test> BODY=8BITMIME",
            "RCPT TO:<b@y.test>",
            "DATA",
            "Subject: hi",
            "",
            "..leading dot",
            ".",
            "QUIT",
        ];
        let out = session(&sink, &mail).await;
        assert!(out.contains("250 OK queued"), "{out}");
        let got = sink.received();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].mail_from, "a@x.test");
        assert_eq!(got[0].rcpt_to, ["b@y.test"]);
        assert_eq!(got[0].text(), "Subject: hi\r\n\r\n.leading dot\r\n");
        assert_eq!(got[0].header("subject").as_deref(), Some("hi"));

        sink.fail_next(Stage::Data, 451, 1);
        let out = session(&sink, &mail).await;
        assert!(out.contains("451 4.3.0"), "{out}");
        sink.fail_always(Stage::Mail, 550);
        let out = session(&sink, &mail).await;
        assert!(out.contains("550 5.7.1"), "{out}");
        assert!(out.contains("503 MAIL first"), "{out}");
        assert_eq!(sink.received().len(), 1);
        assert_eq!(sink.data_attempts(), 2);
    }

    #[tokio::test]
    async fn a_stopped_sink_refuses_and_a_restarted_one_serves_on_the_same_port() {
        let mut sink = SmtpSink::start().await;
        let addr = sink.addr();
        sink.stop().await;
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        sink.restart().await;
        assert_eq!(sink.addr(), addr);
        let out = session(&sink, &["NOOP", "QUIT"]).await;
        assert!(out.starts_with("220 "), "{out}");
    }
}
