//! The `switchboard` command line: argument parsing, the shared context, and the dispatch to one
//! module per group of commands.
//!
//! # Layout
//! - `error`: [`CliError`], its exit code (the table in `--help`) and how it is reported.
//! - `credentials`: the credentials file (token pairs per server, mode 0600, locked while
//!   changed).
//! - `session`: a logged-in user on one server: fresh access tokens (refreshed before they
//!   expire, and once after a 401), and room names resolved to ids.
//! - `password`: where a password comes from (stdin, environment, a prompt without echo).
//! - `output`: human and `--json` output, times, sanitising text for the terminal.
//! - `account`, `rooms`, `messages`, `tail`, `chat`, `sessions`, `admin`: the commands.
//!
//! Everything goes through the library ([`switchboard_client::Api`],
//! [`switchboard_client::ReconnectingClient`]); the CLI adds no wire types of its own.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchboard_client::protocol::rest::Role;

mod account;
mod admin;
mod attachments;
mod avatar;
mod chat;
mod credentials;
mod emoticons;
mod error;
mod messages;
mod output;
mod password;
mod rooms;
mod session;
mod sessions;
mod stop;
mod tail;

use error::CliError;
use output::Output;

/// The server used when neither `--server` nor `SWITCHBOARD_URL` names one: a hub started with
/// `cargo run --release` and no flags.
const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// The long help's closing part: exit codes, files and environment.
const AFTER_LONG_HELP: &str = "\
Exit codes (stable; scripts may rely on them):
  0  success
  1  any other error (a server error, a refused value such as an empty or too long message)
  2  usage error: bad arguments, no password available, an ambiguous room name
  3  not logged in, wrong password, or the session expired or was revoked (log in again)
  4  not found: no such room, user or message
  5  forbidden: not a member of the room, or not allowed
  6  server unreachable or unavailable (connection refused, timeout, 503)
  7  rate limited (429): slow down and retry
  8  conflict: the username is taken, or a direct room with yourself, or an admin command
     on a target it may not change (deleting an admin, demoting yourself)

Errors are one line on stderr: `switchboard: <message> (<code>)`, where <code> is the server's
error code (e.g. forbidden) or the CLI's own (unreachable, not_logged_in, usage, ...). With
--json a JSON object follows it on the next line:
  {\"error\":{\"code\":\"...\",\"message\":\"...\",\"exit_code\":N}}

Credentials: login stores the token pair in $SWITCHBOARD_CONFIG_DIR/credentials.json, by
default $XDG_CONFIG_HOME/switchboard/credentials.json (~/.config/switchboard/...), created with
mode 0600 and keyed by server URL, so one file holds logins to several servers. Access tokens
are refreshed automatically before they expire and the rotated pair is saved.

ROOM is a room id or the name of a room you are a member of. USER in `admin` commands is a
username or a user id.";

/// Command-line client for a Switchboard chat hub.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, after_long_help = AFTER_LONG_HELP)]
pub struct Cli {
    /// The hub's HTTP address; the WebSocket URL is derived from it.
    #[arg(long, global = true, env = "SWITCHBOARD_URL", default_value = DEFAULT_SERVER)]
    server: String,

    /// Machine-readable output: one JSON object, or one JSON object per line for streams
    /// (`tail`, `send` from stdin); errors also as a JSON object on stderr.
    #[arg(long, global = true)]
    json: bool,

    /// Directory of the credentials file. Default: $XDG_CONFIG_HOME/switchboard.
    #[arg(long, global = true, env = "SWITCHBOARD_CONFIG_DIR")]
    config_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an account and log in with it.
    ///
    /// The password is read from stdin with --password-stdin, else from SWITCHBOARD_PASSWORD,
    /// else prompted for (twice, without echo) when stdin is a terminal.
    Register {
        /// The username: 3-32 characters of a-z, 0-9, `_`, `.`, `-`.
        user: String,
        /// The account's e-mail address. Default: USER@users.switchboard.invalid, a
        /// placeholder (the hub sends no mail).
        #[arg(long, env = "SWITCHBOARD_EMAIL")]
        email: Option<String>,
        /// Read the password from the first line of stdin (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Log in and store the session for this server.
    ///
    /// The password comes from stdin (--password-stdin), SWITCHBOARD_PASSWORD, or a prompt
    /// without echo.
    Login {
        /// The username.
        user: String,
        /// Read the password from the first line of stdin (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// End the session on the server and forget its tokens.
    Logout,
    /// Your rooms, most recent activity first: name, id, unread count, last activity.
    Rooms,
    /// The hub's custom emoticons: shortcode and image URL (no login needed). In messages,
    /// `:shortcode:` stays text here; the web page shows the image.
    Emoticons,
    /// Create a group room (public unless --private); you become its first member.
    Create {
        /// The room's name (1-80 characters; names need not be unique).
        name: String,
        /// Only members can read it (public rooms are readable by anyone).
        #[arg(long)]
        private: bool,
    },
    /// Add a user to a room.
    Invite {
        /// A room id, or the name of one of your rooms.
        room: String,
        /// The username to add.
        user: String,
    },
    /// The direct room of you and USER (created on first use).
    Dm {
        /// The other user's username.
        user: String,
    },
    /// A page of a room's messages, oldest first.
    ///
    /// Public rooms can be read without logging in (ROOM must then be an id).
    History {
        /// A room id, or the name of one of your rooms.
        room: String,
        /// Page size, 1-100 [default: 50].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: Option<u32>,
        /// Only messages with a seq below this one (to page backwards).
        #[arg(long)]
        before: Option<u64>,
    },
    /// Post TEXT to a room, or, without TEXT, each line of stdin as one message.
    ///
    /// Lines are sent in order over one WebSocket, each with its own client_msg_id, and the
    /// command exits once every one is acknowledged (stored). Blank lines are skipped.
    Send {
        /// A room id, or the name of one of your rooms.
        room: String,
        /// The message; when absent, read messages from stdin, one per line (with --attach:
        /// the files are sent alone).
        text: Option<String>,
        /// A file to send with the message (repeatable, at most 10): each is uploaded, then
        /// the message is sent carrying them.
        #[arg(long = "attach", value_name = "FILE")]
        attach: Vec<std::path::PathBuf>,
    },
    /// Save an attachment of a room (its id is in `history`) to a file.
    ///
    /// Without -o, it is saved in the current directory under the name it was sent with (an
    /// existing file is never overwritten); `-o -` writes it to stdout. Public rooms work
    /// without logging in (ROOM must then be an id).
    Download {
        /// A room id, or the name of one of your rooms.
        room: String,
        /// The attachment id.
        attachment: String,
        /// Where to save it (`-` for stdout).
        #[arg(short = 'o', long = "output", value_name = "PATH")]
        output: Option<std::path::PathBuf>,
    },
    /// Follow a room live: one line per message (a JSON object per line with --json).
    ///
    /// Survives network losses and hub restarts: it reconnects and resumes after the last
    /// message it printed, without gaps or duplicates. Ctrl-C ends it (exit 0). Public rooms
    /// can be followed without logging in (ROOM must then be an id).
    Tail {
        /// A room id, or the name of one of your rooms.
        room: String,
        /// Print the stored messages after this seq first (0: the whole history).
        #[arg(long)]
        since: Option<u64>,
    },
    /// Interactive chat in the terminal: messages above, an input line below.
    ///
    /// Enter sends; Ctrl-C, Ctrl-D or /quit exits.
    Chat {
        /// A room id, or the name of one of your rooms.
        room: String,
    },
    /// Your sessions (logins): without a subcommand, list them (`*` marks this one).
    Sessions {
        #[command(subcommand)]
        command: Option<SessionsCommand>,
    },
    /// Your avatar, shown beside your messages: upload a picture, or go back to the generated one.
    Avatar {
        #[command(subcommand)]
        command: AvatarCommand,
    },
    /// Account administration (admins only; the first admin is made on the server's command
    /// line: `switchboard-auth admin create`).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// End one of your sessions (its tokens stop working, its sockets close). Ending this
    /// one logs out.
    End {
        /// The session id, as `switchboard sessions` lists it.
        sid: String,
    },
    /// End every session but this one ("log out other devices").
    EndOthers,
}

#[derive(Debug, Subcommand)]
enum AvatarCommand {
    /// Upload FILE (PNG, JPEG, WebP or GIF, at most 2 MiB) as your avatar; the server crops it
    /// to a square, resizes it and drops its metadata.
    Set {
        /// The image file.
        file: PathBuf,
    },
    /// Remove your uploaded avatar: the generated one is shown again.
    Clear,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// List accounts, oldest first: username, id, role, e-mail, created, last login.
    Users {
        /// Only usernames containing this text.
        #[arg(long)]
        query: Option<String>,
        /// Page size, 1-100 [default: 50].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: Option<u32>,
        /// Every page, not just the first.
        #[arg(long)]
        all: bool,
    },
    /// Change an account's e-mail address.
    SetEmail {
        /// A username or user id.
        user: String,
        /// The new address.
        email: String,
    },
    /// Delete an account (never an admin: demote first). Its sessions end, its sockets
    /// close, its messages stay. Asks for confirmation unless --yes.
    Delete {
        /// A username or user id.
        user: String,
        /// Do not ask (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Give an account the admin role.
    Promote {
        /// A username or user id.
        user: String,
    },
    /// Give an admin the user role again; their sessions end. Not yourself.
    Demote {
        /// A username or user id.
        user: String,
    },
}

/// What every command gets: where the server is, where the credentials are, how to print.
pub struct Context {
    /// The server's base URL, without a trailing slash; also the key of its credentials.
    server: String,
    credentials: credentials::Store,
    out: Output,
}

impl Context {
    /// The WebSocket URL of the server (`ws://host:port/v1/ws`).
    fn ws_url(&self) -> String {
        let rest = self
            .server
            .strip_prefix("http://")
            .expect("checked in Context::new");
        format!("ws://{rest}/v1/ws")
    }
}

/// Parses the arguments, runs the command and turns the outcome into the exit code.
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version are "errors" to clap; they print to stdout and exit 0.
            let usage = err.use_stderr();
            let _ = err.print();
            if usage && args.iter().any(|arg| arg == "--json") {
                error::print_json(&CliError::Usage(err.kind().to_string()));
            }
            return ExitCode::from(err.exit_code().clamp(0, 255) as u8);
        }
    };
    let json = cli.json;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded runtime builds");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => err.report(json),
    }
}

/// Runs one command.
async fn run(cli: Cli) -> Result<(), CliError> {
    let server = normalise_server(&cli.server)?;
    let ctx = Context {
        server,
        credentials: credentials::Store::locate(cli.config_dir)?,
        out: Output { json: cli.json },
    };
    match cli.command {
        Command::Register {
            user,
            email,
            password_stdin,
        } => account::register(&ctx, &user, email, password_stdin).await,
        Command::Login {
            user,
            password_stdin,
        } => account::login(&ctx, &user, password_stdin).await,
        Command::Logout => account::logout(&ctx).await,
        Command::Rooms => rooms::list(&ctx).await,
        Command::Emoticons => emoticons::list(&ctx).await,
        Command::Create { name, private } => rooms::create(&ctx, &name, !private).await,
        Command::Invite { room, user } => rooms::invite(&ctx, &room, &user).await,
        Command::Dm { user } => rooms::direct(&ctx, &user).await,
        Command::History {
            room,
            limit,
            before,
        } => messages::history(&ctx, &room, limit, before).await,
        Command::Send { room, text, attach } if !attach.is_empty() => {
            attachments::send(&ctx, &room, text.as_deref().unwrap_or(""), &attach).await
        }
        Command::Send { room, text, .. } => match text {
            Some(text) => messages::send_one(&ctx, &room, &text).await,
            None => messages::send_lines(&ctx, &room).await,
        },
        Command::Download {
            room,
            attachment,
            output,
        } => attachments::download(&ctx, &room, &attachment, output.as_deref()).await,
        Command::Tail { room, since } => tail::run(&ctx, &room, since).await,
        Command::Chat { .. } if ctx.out.json => Err(CliError::Usage(
            "chat is interactive and has no JSON output; use `tail --json` and `send`".into(),
        )),
        Command::Chat { room } => chat::run(&ctx, &room).await,
        Command::Sessions { command } => match command {
            None => sessions::list(&ctx).await,
            Some(SessionsCommand::End { sid }) => sessions::end(&ctx, &sid).await,
            Some(SessionsCommand::EndOthers) => sessions::end_others(&ctx).await,
        },
        Command::Avatar { command } => match command {
            AvatarCommand::Set { file } => avatar::set(&ctx, &file).await,
            AvatarCommand::Clear => avatar::clear(&ctx).await,
        },
        Command::Admin { command } => match command {
            AdminCommand::Users { query, limit, all } => {
                admin::users(&ctx, query, limit, all).await
            }
            AdminCommand::SetEmail { user, email } => admin::set_email(&ctx, &user, &email).await,
            AdminCommand::Delete { user, yes } => admin::delete(&ctx, &user, yes).await,
            AdminCommand::Promote { user } => admin::set_role(&ctx, &user, Role::Admin).await,
            AdminCommand::Demote { user } => admin::set_role(&ctx, &user, Role::User).await,
        },
    }
}

/// `http://host:port[/prefix]` without trailing slashes. Only plain HTTP: the client library is
/// built without TLS.
fn normalise_server(url: &str) -> Result<String, CliError> {
    let url = url.trim().trim_end_matches('/');
    if url.starts_with("https://") {
        return Err(CliError::Usage(format!(
            "--server {url}: https is not supported by this build; use the hub's http:// address"
        )));
    }
    match url.strip_prefix("http://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(url.to_owned()),
        _ => Err(CliError::Usage(format!(
            "--server {url}: expected http://HOST:PORT"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn server_urls_are_normalised_and_checked() {
        assert_eq!(
            normalise_server("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(normalise_server("https://chat.example.com").is_err());
        assert!(normalise_server("127.0.0.1:8080").is_err());
        assert!(normalise_server("http:///x").is_err());
    }

    #[test]
    fn the_exit_codes_in_the_help_match_the_code() {
        for (code, name) in error::EXIT_CODES {
            let line = format!("  {code}  {name}");
            assert!(
                AFTER_LONG_HELP.contains(&line),
                "--help lacks {line:?} (the table in error.rs and the help must agree)"
            );
        }
    }
}
