//! [`CliError`]: everything a command can fail with, the exit code of each (in one function,
//! [`CliError::exit_code`]) and how it is reported on stderr.
//!
//! The exit codes are a stable interface for scripts; `--help` (`AFTER_LONG_HELP` in `mod.rs`)
//! and the README document them, and a unit test keeps the help and `EXIT_CODES` in step:
//!
//! | code | meaning | from |
//! |---|---|---|
//! | 0 | success | |
//! | 1 | any other error | `internal`, `bad_request`, `too_large`, `history_expired`, protocol violations, local I/O |
//! | 2 | usage error | clap, no password available, an ambiguous room name, `chat` without a terminal |
//! | 3 | not logged in / authentication failed | `unauthorized`, `invalid_credentials`, close 1008 |
//! | 4 | not found | `not_found`, `user_not_found` |
//! | 5 | forbidden | `forbidden`, removed from the room while following it |
//! | 6 | server unreachable or unavailable | connection errors, timeouts, `unavailable` |
//! | 7 | rate limited | `rate_limited` |
//! | 8 | conflict | `username_taken`, `conflict`, `email_taken`, `forbidden_target` (deleting an admin, demoting oneself) |
//!
//! An error code the CLI does not know (protocol v1 may add codes) counts as 1, as the protocol
//! asks for unknown codes (`internal`).

use std::borrow::Cow;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use switchboard_client::protocol::{close, ErrorCode};
use switchboard_client::{tungstenite, ClientError};

pub const EXIT_GENERIC: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_AUTH: u8 = 3;
pub const EXIT_NOT_FOUND: u8 = 4;
pub const EXIT_FORBIDDEN: u8 = 5;
pub const EXIT_UNREACHABLE: u8 = 6;
pub const EXIT_RATE_LIMITED: u8 = 7;
pub const EXIT_CONFLICT: u8 = 8;

/// The exit codes with the first words of their line in `--help`.
#[cfg(test)]
pub const EXIT_CODES: [(u8, &str); 9] = [
    (0, "success"),
    (EXIT_GENERIC, "any other error"),
    (EXIT_USAGE, "usage error"),
    (EXIT_AUTH, "not logged in"),
    (EXIT_NOT_FOUND, "not found"),
    (EXIT_FORBIDDEN, "forbidden"),
    (EXIT_UNREACHABLE, "server unreachable or unavailable"),
    (EXIT_RATE_LIMITED, "rate limited"),
    (EXIT_CONFLICT, "conflict"),
];

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A REST call or a WebSocket operation failed: the server refused, or could not be reached.
    #[error("{}", client_message(.0))]
    Client(#[from] ClientError),
    /// No stored session for this server.
    #[error("not logged in to {server}; run `switchboard login USER` first")]
    NotLoggedIn { server: String },
    /// The stored session can no longer be used: its refresh token was refused.
    #[error("the session of {user} on {server} has ended ({reason}); log in again")]
    SessionEnded {
        server: String,
        user: String,
        reason: String,
    },
    /// Arguments or input that cannot work, found after parsing.
    #[error("{0}")]
    Usage(String),
    /// A room name that names several of the user's rooms.
    #[error("several of your rooms are named {name:?} ({}); use a room id", .ids.join(", "))]
    AmbiguousRoom { name: String, ids: Vec<String> },
    /// The server ended a `tail` or `chat` subscription: the user left or was removed.
    #[error("no longer subscribed to room {room}: you left it")]
    LeftRoom { room: String },
    /// Reading or writing the credentials (or their directory).
    #[error("{}: {source}", .path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Reading a file named on the command line (`avatar set FILE`, `send --attach FILE`), or
    /// writing a download.
    #[error("{}: {source}", .path.display())]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Reading standard input.
    #[error("reading stdin: {0}")]
    Stdin(#[source] io::Error),
    /// Driving the terminal (`chat`).
    #[error("terminal: {0}")]
    Terminal(#[source] io::Error),
    /// Standard output was closed by its reader (e.g. `tail | head`): a normal way to stop.
    #[error("stdout closed")]
    StdoutClosed,
    /// Writing to standard output failed for another reason.
    #[error("writing stdout: {0}")]
    Stdout(#[source] io::Error),
    /// A line of `send`'s stdin failed; the lines before it were sent.
    #[error("line {line}: {source}")]
    Line {
        line: usize,
        #[source]
        source: Box<CliError>,
    },
}

impl CliError {
    /// The process exit code; see the [module](self) docs for the table.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Client(err) => client_exit_code(err),
            Self::NotLoggedIn { .. } | Self::SessionEnded { .. } => EXIT_AUTH,
            Self::Usage(_) | Self::AmbiguousRoom { .. } => EXIT_USAGE,
            Self::LeftRoom { .. } => EXIT_FORBIDDEN,
            Self::Config { .. }
            | Self::File { .. }
            | Self::Stdin(_)
            | Self::Terminal(_)
            | Self::Stdout(_)
            | Self::StdoutClosed => EXIT_GENERIC,
            Self::Line { source, .. } => source.exit_code(),
        }
    }

    /// The short code shown in parentheses: the server's error code when it refused, else the
    /// CLI's own name for the failure.
    pub fn code(&self) -> Cow<'static, str> {
        match self {
            Self::Client(err) => client_code(err),
            Self::NotLoggedIn { .. } => "not_logged_in".into(),
            Self::SessionEnded { .. } => "session_ended".into(),
            Self::Usage(_) => "usage".into(),
            Self::AmbiguousRoom { .. } => "ambiguous_room".into(),
            Self::LeftRoom { .. } => "left_room".into(),
            Self::Config { .. } => "config".into(),
            Self::File { .. } => "file".into(),
            Self::Stdin(_) | Self::Stdout(_) | Self::StdoutClosed | Self::Terminal(_) => {
                "io".into()
            }
            Self::Line { source, .. } => source.code(),
        }
    }

    /// Prints the error (one line; with `json`, a JSON object on the next) and returns the exit
    /// code. A closed stdout is not reported: the reader chose to stop.
    pub fn report(&self, json: bool) -> ExitCode {
        if matches!(self, Self::StdoutClosed) {
            return ExitCode::SUCCESS;
        }
        eprintln!("switchboard: {self} ({})", self.code());
        if json {
            print_json(self);
        }
        ExitCode::from(self.exit_code())
    }
}

/// The JSON error object on stderr: `{"error":{"code","message","exit_code"}}`.
pub fn print_json(err: &CliError) {
    let value = serde_json::json!({
        "error": {
            "code": err.code(),
            "message": err.to_string(),
            "exit_code": err.exit_code(),
        }
    });
    eprintln!("{value}");
}

fn client_exit_code(err: &ClientError) -> u8 {
    match err {
        ClientError::Api { code, .. } | ClientError::Rejected { code, .. } => match code {
            ErrorCode::Unauthorized | ErrorCode::InvalidCredentials => EXIT_AUTH,
            ErrorCode::NotFound | ErrorCode::UserNotFound => EXIT_NOT_FOUND,
            ErrorCode::Forbidden => EXIT_FORBIDDEN,
            ErrorCode::Unavailable => EXIT_UNREACHABLE,
            ErrorCode::RateLimited => EXIT_RATE_LIMITED,
            ErrorCode::UsernameTaken
            | ErrorCode::Conflict
            | ErrorCode::ForbiddenTarget
            | ErrorCode::EmailTaken => EXIT_CONFLICT,
            ErrorCode::BadRequest
            | ErrorCode::UnknownType
            | ErrorCode::TooLarge
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::RangeNotSatisfiable
            | ErrorCode::HistoryExpired
            | ErrorCode::CatchupTooLarge
            | ErrorCode::TooManySubscriptions
            | ErrorCode::Internal => EXIT_GENERIC,
        },
        ClientError::Http(err) if err.is_decode() => EXIT_GENERIC,
        // A refused or revoked session closes the WebSocket with 1008.
        ClientError::Closed {
            code: Some(close::POLICY),
            ..
        } => EXIT_AUTH,
        ClientError::Http(_)
        | ClientError::Ws(_)
        | ClientError::Closed { .. }
        | ClientError::Timeout
        | ClientError::GaveUp { .. }
        | ClientError::Unacknowledged { .. } => EXIT_UNREACHABLE,
        ClientError::Protocol(_) => EXIT_GENERIC,
    }
}

fn client_code(err: &ClientError) -> Cow<'static, str> {
    match err {
        ClientError::Api { code, .. } | ClientError::Rejected { code, .. } => code.as_str().into(),
        ClientError::Http(err) if err.is_timeout() => "timeout".into(),
        ClientError::Http(err) if err.is_decode() => "protocol".into(),
        ClientError::Http(_) | ClientError::Ws(_) | ClientError::GaveUp { .. } => {
            "unreachable".into()
        }
        ClientError::Closed {
            code: Some(close::POLICY),
            ..
        } => "session_revoked".into(),
        ClientError::Closed { .. } => "closed".into(),
        ClientError::Timeout => "timeout".into(),
        ClientError::Unacknowledged { .. } => "unacknowledged".into(),
        ClientError::Protocol(_) => "protocol".into(),
    }
}

/// The one-line message for a client error: the server's own words when it refused, the root
/// cause (e.g. "Connection refused") when it could not be reached.
fn client_message(err: &ClientError) -> String {
    match err {
        ClientError::Api { message, .. } | ClientError::Rejected { message, .. } => message.clone(),
        ClientError::Http(http) => {
            let server = http
                .url()
                .map(|url| format!("{}://{}", url.scheme(), url.authority()))
                .unwrap_or_else(|| "the server".into());
            if http.is_timeout() {
                format!("{server} did not answer in time")
            } else if http.is_decode() {
                format!("undecodable answer from {server}: {}", root_cause(http))
            } else {
                format!("cannot reach {server}: {}", root_cause(http))
            }
        }
        ClientError::Ws(ws) => match &**ws {
            tungstenite::Error::Io(io) => format!("cannot reach the server: {io}"),
            other => format!("WebSocket: {other}"),
        },
        ClientError::Closed {
            code: Some(close::POLICY),
            reason,
        } => format!("the server ended the session: {reason}"),
        ClientError::GaveUp { attempts, last } => {
            format!(
                "gave up after {attempts} attempts: {}",
                client_message(last)
            )
        }
        other => other.to_string(),
    }
}

/// The innermost cause of `err` (for reqwest: "Connection refused (os error 111)" rather than
/// "error sending request for url (...)").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: ErrorCode) -> CliError {
        CliError::Client(ClientError::Api {
            status: code.http_status(),
            code,
            message: "m".into(),
        })
    }

    #[test]
    fn server_codes_map_to_the_documented_exit_codes() {
        let cases = [
            (ErrorCode::Unauthorized, EXIT_AUTH),
            (ErrorCode::InvalidCredentials, EXIT_AUTH),
            (ErrorCode::NotFound, EXIT_NOT_FOUND),
            (ErrorCode::UserNotFound, EXIT_NOT_FOUND),
            (ErrorCode::Forbidden, EXIT_FORBIDDEN),
            (ErrorCode::Unavailable, EXIT_UNREACHABLE),
            (ErrorCode::RateLimited, EXIT_RATE_LIMITED),
            (ErrorCode::UsernameTaken, EXIT_CONFLICT),
            (ErrorCode::Conflict, EXIT_CONFLICT),
            (ErrorCode::BadRequest, EXIT_GENERIC),
            (ErrorCode::Internal, EXIT_GENERIC),
        ];
        for (code, exit) in cases {
            assert_eq!(api(code).exit_code(), exit, "{code}");
            assert_eq!(api(code).code(), code.as_str());
        }
    }

    #[test]
    fn local_failures_have_their_own_codes() {
        let not_logged_in = CliError::NotLoggedIn {
            server: "http://h".into(),
        };
        assert_eq!(not_logged_in.exit_code(), EXIT_AUTH);
        assert_eq!(CliError::Usage("u".into()).exit_code(), EXIT_USAGE);
        let revoked = CliError::Client(ClientError::Closed {
            code: Some(close::POLICY),
            reason: "session revoked".into(),
        });
        assert_eq!(revoked.exit_code(), EXIT_AUTH);
        assert_eq!(
            CliError::Client(ClientError::Timeout).exit_code(),
            EXIT_UNREACHABLE
        );
        let line = CliError::Line {
            line: 3,
            source: Box::new(api(ErrorCode::TooLarge)),
        };
        assert_eq!(
            (line.exit_code(), line.code().as_ref()),
            (EXIT_GENERIC, "too_large")
        );
        assert_eq!(line.to_string(), "line 3: m");
    }
}
