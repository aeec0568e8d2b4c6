//! The machinery of [`ReconnectingClient`]: reading and handling frames, connection attempts,
//! and the decision to reconnect or end.

use std::sync::Arc;
use std::time::Duration;

use switchboard_protocol::close;
use switchboard_protocol::rest::PostMessageResponse;
use switchboard_protocol::ws::{Message, ServerFrame};
use switchboard_protocol::{ErrorCode, Seq};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;

use super::{ClientEvent, Link, Outgoing, ReconnectingClient, DEAD_LINK_HEARTBEATS};
use crate::ws::unexpected;
use crate::{ClientError, Connection};

/// Close codes after which the client reconnects (see [`switchboard_protocol::close`]).
const RECONNECT_CLOSE_CODES: [u16; 5] = [
    close::GOING_AWAY,
    close::INTERNAL,
    close::RESTARTING,
    close::TRY_AGAIN_LATER,
    close::SLOW_CONSUMER,
];

impl ReconnectingClient {
    /// One unit of work: read and handle one frame, or make one reconnection attempt.
    ///
    /// # Cancel safety
    /// Cancel safe: a frame is either handled or still unread; an abandoned attempt is made
    /// again by the next call.
    pub(super) async fn step(&mut self) -> Result<(), ClientError> {
        match &mut self.link {
            Link::Ended { code, reason } => Err(ClientError::Closed {
                code: *code,
                reason: reason.clone(),
            }),
            Link::Up { conn, idle } => {
                let result = match *idle {
                    Some(idle) => read_or_dead(conn, idle).await,
                    None => conn.next_event().await,
                };
                match result {
                    Ok(frame) => {
                        self.handle(frame);
                        Ok(())
                    }
                    Err(error) => self.lose(error, 1),
                }
            }
            Link::Down { attempt, retry_at } => {
                let attempt = *attempt;
                tokio::time::sleep_until(*retry_at).await;
                match self.open().await {
                    Ok((conn, idle)) => {
                        self.link = Link::Up { conn, idle };
                        self.events.push_back(ClientEvent::Reconnected { attempt });
                        Ok(())
                    }
                    Err(error) => self.lose(error, attempt + 1),
                }
            }
        }
    }

    /// One connection attempt: token, connect, `hello`, a `sub` with `since` per room, then
    /// every unanswered send again. Returns the connection and its dead-link timeout.
    pub(super) async fn open(
        &mut self,
    ) -> Result<(Box<Connection>, Option<Duration>), ClientError> {
        let timeout = self.config.request_timeout;
        let tokens = Arc::clone(&self.config.tokens);
        let token = bounded(timeout, tokens.token()).await?;
        let connect = Connection::connect(&self.config.url, token.as_deref());
        let (mut conn, welcome) = match bounded(timeout, connect).await {
            // The token may have expired on its way (a short TTL, a slow machine): if the
            // source now has another one, that one gets one try. A revoked session's source
            // fails instead, and a fixed token is the same again, so this cannot loop.
            Err(
                refused @ ClientError::Rejected {
                    code: ErrorCode::Unauthorized,
                    ..
                },
            ) => {
                let fresh = bounded(timeout, tokens.token()).await?;
                if fresh.is_none() || fresh == token {
                    return Err(refused);
                }
                tracing::debug!("token refused in hello; trying the token source's newer one");
                let connect = Connection::connect(&self.config.url, fresh.as_deref());
                bounded(timeout, connect).await?
            }
            other => other?,
        };
        conn.set_timeout(timeout);
        let rooms: Vec<(String, Option<Seq>)> = self
            .rooms
            .iter()
            .map(|(room, since)| (room.clone(), *since))
            .collect();
        for (room, since) in rooms {
            match subscribe_paced(&mut conn, &room, since, timeout).await {
                Ok((catch_up, last_seq)) => self.subscribed(&room, catch_up, last_seq),
                Err(error @ ClientError::Rejected { .. }) if !is_transient(&error) => {
                    self.rooms.remove(&room);
                    let error = Some(error);
                    self.events
                        .push_back(ClientEvent::Unsubscribed { room, error });
                }
                Err(error) => return Err(error),
            }
        }
        for outgoing in &self.outbox {
            conn.send(&outgoing.frame()).await?;
        }
        let idle = Duration::from_millis(
            welcome
                .heartbeat_ms
                .saturating_mul(u64::from(DEAD_LINK_HEARTBEATS)),
        );
        self.welcome = welcome;
        Ok((Box::new(conn), (!idle.is_zero()).then_some(idle)))
    }

    /// Takes note of a lost connection or a failed attempt: schedules attempt number `attempt`,
    /// or ends the client when `error` is final or the attempts are used up.
    pub(super) fn lose(&mut self, error: ClientError, attempt: u32) -> Result<(), ClientError> {
        if !is_transient(&error) {
            return Err(self.end(error));
        }
        let backoff = &self.config.backoff;
        if backoff.max_attempts.is_some_and(|max| attempt > max) {
            let error = ClientError::GaveUp {
                attempts: attempt - 1,
                last: Box::new(error),
            };
            return Err(self.end(error));
        }
        let delay = backoff.delay(attempt);
        tracing::debug!(attempt, ?delay, %error, "connection lost; reconnecting");
        self.link = Link::Down {
            attempt,
            retry_at: Instant::now() + delay,
        };
        self.events.push_back(ClientEvent::Reconnecting {
            attempt,
            delay,
            cause: error.to_string(),
        });
        Ok(())
    }

    /// Ends the client with `error`, which is returned for the caller.
    fn end(&mut self, error: ClientError) -> ClientError {
        tracing::debug!(%error, "connection ended; not reconnecting");
        self.link = Link::Ended {
            code: error.close_code(),
            reason: error.to_string(),
        };
        error
    }

    /// [`ClientError::Closed`] once the client has ended.
    pub(super) fn ended(&self) -> Result<(), ClientError> {
        match &self.link {
            Link::Ended { code, reason } => Err(ClientError::Closed {
                code: *code,
                reason: reason.clone(),
            }),
            Link::Up { .. } | Link::Down { .. } => Ok(()),
        }
    }

    /// Handles one frame read from the connection.
    fn handle(&mut self, frame: ServerFrame) {
        let answered = match &frame {
            ServerFrame::Ack { id: Some(id), .. } | ServerFrame::Error { id: Some(id), .. } => {
                self.outbox.iter().position(|outgoing| &outgoing.id == id)
            }
            _ => None,
        };
        if let Some(index) = answered {
            let outgoing = self.outbox.remove(index).expect("index from position");
            return self.settle(outgoing, frame);
        }
        match frame {
            ServerFrame::Message(message) => self.deliver(message),
            // A late answer to a `subscribe` that was cancelled.
            ServerFrame::Subbed { room, last_seq, .. } => self.note_subbed(&room, last_seq),
            // The server ended the subscription (the user left the room).
            ServerFrame::Unsubbed { id: None, room } => {
                if self.rooms.remove(&room).is_some() {
                    let error = None;
                    self.events
                        .push_back(ClientEvent::Unsubscribed { room, error });
                }
            }
            // Late answers to requests given up on (timed out, cancelled): nobody waits.
            ServerFrame::Welcome { .. }
            | ServerFrame::Unsubbed { .. }
            | ServerFrame::Ack { .. }
            | ServerFrame::History { .. }
            | ServerFrame::ReadOk { .. }
            | ServerFrame::Pong { .. } => tracing::debug!(?frame, "unawaited answer dropped"),
            other => self.events.push_back(ClientEvent::Server(other)),
        }
    }

    /// Hands the answer to a send to its waiting call, or to the caller as an event.
    fn settle(&mut self, outgoing: Outgoing, answer: ServerFrame) {
        let result = match answer {
            ServerFrame::Ack {
                room,
                seq,
                ts,
                client_msg_id,
                ..
            } => Ok(PostMessageResponse {
                room,
                seq,
                ts,
                client_msg_id,
            }),
            other => Err(unexpected(other)),
        };
        match &mut self.awaited {
            Some((id, slot)) if *id == outgoing.id => *slot = Some(result),
            _ => self.events.push_back(match result {
                Ok(ack) => ClientEvent::Acked(ack),
                Err(error) => ClientEvent::SendFailed {
                    room: outgoing.room,
                    client_msg_id: outgoing.client_msg_id,
                    error,
                },
            }),
        }
    }

    /// Takes note of a `subbed` and the catch-up before it.
    pub(super) fn subscribed(&mut self, room: &str, catch_up: Vec<Message>, last_seq: Seq) {
        for message in catch_up {
            self.deliver(message);
        }
        self.note_subbed(room, last_seq);
    }

    /// After `subbed`, every message up to `last_seq` was either delivered or (without `since`)
    /// is not wanted: the next `since` is at least `last_seq`.
    fn note_subbed(&mut self, room: &str, last_seq: Seq) {
        if let Some(last) = self.rooms.get_mut(room) {
            *last = Some(last.map_or(last_seq, |seen| seen.max(last_seq)));
        }
    }

    /// Queues `message` for the caller unless its room is not subscribed or its seq is not
    /// above the last one handed out there (a duplicate from a catch-up).
    fn deliver(&mut self, message: Message) {
        let Some(last) = self.rooms.get_mut(&message.room) else {
            return; // a late event of a room unsubscribed meanwhile
        };
        if last.is_some_and(|last| message.seq <= last) {
            tracing::trace!(room = %message.room, seq = message.seq, "duplicate dropped");
            return;
        }
        *last = Some(message.seq);
        self.events.push_back(ClientEvent::Message(message));
    }
}

/// The next frame, or [`ClientError::Closed`] without a code when the server has sent nothing,
/// not even a ping, for `idle`.
///
/// # Cancel safety
/// Cancel safe, as [`Connection::next_event`].
async fn read_or_dead(conn: &mut Connection, idle: Duration) -> Result<ServerFrame, ClientError> {
    loop {
        let deadline = conn.last_heard() + idle;
        if let Ok(result) = tokio::time::timeout_at(deadline, conn.next_event()).await {
            return result;
        }
        // Pings are answered inside the read without ending it; they count as signs of life.
        if conn.last_heard() + idle <= Instant::now() {
            return Err(ClientError::Closed {
                code: None,
                reason: format!("nothing from the server for {idle:?}"),
            });
        }
    }
}

/// Pause before the first retry of a `sub` refused with `rate_limited`; it doubles per retry.
/// One token of the server's default per-connection bucket (20 frames per second).
const RATE_LIMITED_PAUSE: Duration = Duration::from_millis(50);

/// `sub`, retried after a pause when refused with `rate_limited`, for at most `budget` in all.
///
/// A resume sends `hello` and one `sub` per room back to back, which for a client in many rooms
/// exceeds the server's per-connection burst (40 frames by default). Failing the attempt would
/// not help: the next connection starts with the same bucket and fails the same way, forever.
/// The server drops a refused frame without effect, so sending it again is safe.
///
/// A `since` further back than the server replays (`catchup_too_large`) is resumed in two
/// steps: a `sub` without `since` (whose `last_seq` L bounds the gap, every later message
/// arriving live), then `history` pages backwards from L until `since`. The gap is returned as
/// the catch-up, ascending, so the caller sees every message after `since` once, in order.
pub(super) async fn subscribe_paced(
    conn: &mut Connection,
    room: &str,
    since: Option<Seq>,
    budget: Duration,
) -> Result<(Vec<Message>, Seq), ClientError> {
    match sub_paced(conn, room, since, budget).await {
        Err(ClientError::Rejected {
            code: ErrorCode::CatchupTooLarge,
            ..
        }) if since.is_some() => {
            let since = since.expect("matched Some");
            let (_, last_seq) = sub_paced(conn, room, None, budget).await?;
            tracing::debug!(room, since, last_seq, "catch-up too large; paging history");
            let gap = history_gap(conn, room, since, last_seq, budget).await?;
            Ok((gap, last_seq))
        }
        other => other,
    }
}

/// Pauses before a frame refused with `rate_limited` is sent again (see [`subscribe_paced`]).
struct Pacer {
    give_up: Instant,
    pause: Duration,
}

impl Pacer {
    fn new(budget: Duration) -> Self {
        Pacer {
            give_up: Instant::now() + budget,
            pause: RATE_LIMITED_PAUSE,
        }
    }

    /// Waits before a retry if `result` is a `rate_limited` refusal and the budget allows one;
    /// returns whether to retry.
    async fn retry<T>(&mut self, result: &Result<T, ClientError>) -> bool {
        let limited = matches!(
            result,
            Err(ClientError::Rejected {
                code: ErrorCode::RateLimited,
                ..
            })
        );
        if !limited || Instant::now() + self.pause >= self.give_up {
            return false;
        }
        tokio::time::sleep(self.pause).await;
        self.pause *= 2;
        true
    }
}

/// One `sub`, paced (see [`subscribe_paced`]).
async fn sub_paced(
    conn: &mut Connection,
    room: &str,
    since: Option<Seq>,
    budget: Duration,
) -> Result<(Vec<Message>, Seq), ClientError> {
    let mut pacer = Pacer::new(budget);
    loop {
        let result = conn.subscribe(room, since).await;
        if !pacer.retry(&result).await {
            return result;
        }
    }
}

/// The messages with `since` < seq ≤ `last_seq`, ascending, read with `history` pages from the
/// newest backwards (each page paced, see [`subscribe_paced`]).
async fn history_gap(
    conn: &mut Connection,
    room: &str,
    since: Seq,
    last_seq: Seq,
    budget: Duration,
) -> Result<Vec<Message>, ClientError> {
    let limit = switchboard_protocol::limits::MAX_HISTORY_LIMIT;
    let mut pages = Vec::new();
    let mut before = last_seq.saturating_add(1);
    while before > since.saturating_add(1) {
        let mut pacer = Pacer::new(budget);
        let page = loop {
            let result = conn.history(room, Some(before), Some(limit)).await;
            if !pacer.retry(&result).await {
                break result?;
            }
        };
        let Some(first) = page.first() else { break };
        before = first.seq;
        let short = page.len() < limit as usize;
        pages.push(page);
        if short {
            break;
        }
    }
    Ok(pages
        .into_iter()
        .rev()
        .flatten()
        .filter(|m| m.seq > since && m.seq <= last_seq)
        .collect())
}

/// Awaits `fut` for at most `timeout`.
async fn bounded<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or(Err(ClientError::Timeout))
}

/// Whether the client should reconnect after `error` (see the [module](super) docs).
fn is_transient(error: &ClientError) -> bool {
    let retry_status = |status: u16| status >= 500 || status == 429;
    match error {
        ClientError::Closed { code: None, .. } | ClientError::Timeout => true,
        ClientError::Closed {
            code: Some(code), ..
        } => RECONNECT_CLOSE_CODES.contains(code),
        ClientError::Ws(error) => match &**error {
            tungstenite::Error::Url(_) | tungstenite::Error::HttpFormat(_) => false,
            tungstenite::Error::Http(response) => retry_status(response.status().as_u16()),
            _ => true, // I/O (refused, reset), TLS, a broken frame
        },
        // Only the token source makes HTTP requests: a refresh that could not be made.
        ClientError::Http(_) => true,
        ClientError::Api { status, .. } => retry_status(*status),
        ClientError::Rejected { code, .. } => matches!(
            code,
            ErrorCode::Unavailable | ErrorCode::RateLimited | ErrorCode::Internal
        ),
        ClientError::Protocol(_)
        | ClientError::GaveUp { .. }
        | ClientError::Unacknowledged { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(code: Option<u16>) -> ClientError {
        ClientError::Closed {
            code,
            reason: String::new(),
        }
    }

    #[test]
    fn reconnects_after_the_documented_close_codes_only() {
        for code in [
            None,
            Some(1001),
            Some(1011),
            Some(1012),
            Some(1013),
            Some(4000),
        ] {
            assert!(is_transient(&closed(code)), "{code:?}");
        }
        for code in [1000, 1002, 1007, 1008, 1009, 4999] {
            assert!(!is_transient(&closed(Some(code))), "{code}");
        }
    }

    #[test]
    fn refusals_that_may_pass_later_are_retried_and_the_others_end() {
        let rejected = |code| ClientError::Rejected {
            code,
            message: String::new(),
        };
        assert!(is_transient(&rejected(ErrorCode::Unavailable)));
        assert!(is_transient(&rejected(ErrorCode::RateLimited)));
        assert!(!is_transient(&rejected(ErrorCode::Unauthorized)));
        assert!(!is_transient(&rejected(ErrorCode::Forbidden)));
        let api = |status| ClientError::Api {
            status,
            code: ErrorCode::Internal,
            message: String::new(),
        };
        assert!(is_transient(&api(503)));
        assert!(!is_transient(&api(401)));
        assert!(!is_transient(&api(403)));
        assert!(is_transient(&ClientError::Timeout));
        assert!(!is_transient(&ClientError::Protocol("?".into())));
    }
}
