//! The harness: the real `switchboard` binary run against a hub ([`TestServer`]), each CLI user
//! with a config directory of its own ([`Cli`]).
//!
//! Every wait is bounded through [`within`]; nothing here sleeps to synchronise. The binary is
//! built (or found up to date) once per run by [`binary`].

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// One running hub for the CLI to talk to: the shared in-process hub (embedded, or PostgreSQL +
/// Redis + an auth node with `SWITCHBOARD_TEST_BACKEND=scaled`), restartable on the same port.
/// Dropping it signals shutdown; [`TestServer::shutdown`] also waits.
pub use switchboard_tests::inproc::InProcessHub as TestServer;

/// Upper bound on one CLI command, or on one awaited line of a running one. Generous: the
/// machine may be busy (parallel tests, argon2); a passing test never waits this long.
pub const WAIT: Duration = Duration::from_secs(20);

pub use switchboard_tests::wait::{unique_name, within_for, PASSWORD};

/// Awaits `fut` for at most [`WAIT`]; panics naming `what` when it takes longer.
pub async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    within_for(WAIT, what, fut).await
}

/// The `switchboard` binary of this build (built first under cargo, see
/// `switchboard_tests::binary::binary`).
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| switchboard_tests::binary::binary("switchboard-client", "switchboard"))
}

/// One CLI user: a config directory of its own (so its own credentials file), pointed at one
/// server through `SWITCHBOARD_URL` (a `--server` argument overrides it).
pub struct Cli {
    config: TempDir,
    server: String,
    /// The user this CLI registered or logged in, if any.
    pub username: String,
}

impl Cli {
    /// A CLI for `server` that is not logged in.
    pub fn new(server_url: &str) -> Self {
        Cli {
            config: tempfile::tempdir().expect("a config dir"),
            server: server_url.to_owned(),
            username: String::new(),
        }
    }

    /// A new user registered (and so logged in) through the CLI.
    pub async fn registered(server: &TestServer, prefix: &str) -> Self {
        let mut cli = Cli::new(&server.http_url());
        let name = unique_name(prefix);
        cli.run_stdin(&["register", &name, "--password-stdin"], PASSWORD)
            .await
            .ok();
        cli.username = name;
        cli
    }

    /// The command line for `args`, with this CLI's environment and nothing inherited that
    /// could change the outcome (a password or URL from the caller's environment).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(args)
            .env("SWITCHBOARD_URL", &self.server)
            .env("SWITCHBOARD_CONFIG_DIR", self.config_dir())
            .env_remove("SWITCHBOARD_PASSWORD")
            .env_remove("SWITCHBOARD_EMAIL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs `switchboard ARGS` to its end, stdin empty.
    pub async fn run(&self, args: &[&str]) -> Outcome {
        let what = format!("switchboard {}", args.join(" "));
        let output = within(&what, self.command(args).output())
            .await
            .expect("the binary starts");
        Outcome::new(what, output)
    }

    /// Runs `switchboard ARGS` to its end in the directory `dir`, stdin empty.
    pub async fn run_in(&self, dir: &Path, args: &[&str]) -> Outcome {
        let what = format!("switchboard {} (in {})", args.join(" "), dir.display());
        let output = within(&what, self.command(args).current_dir(dir).output())
            .await
            .expect("the binary starts");
        Outcome::new(what, output)
    }

    /// Runs `switchboard ARGS` with `input` on stdin.
    pub async fn run_stdin(&self, args: &[&str], input: &str) -> Outcome {
        let what = format!("switchboard {} <<< {input:?}", args.join(" "));
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(input.as_bytes())
            .await
            .expect("write stdin");
        drop(stdin);
        let output = within(&what, child.wait_with_output())
            .await
            .expect("the command ends");
        Outcome::new(what, output)
    }

    /// Starts `switchboard ARGS` and returns it with its stdout as lines (for `tail`).
    pub fn spawn(&self, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
        let mut child = self.command(args).spawn().expect("the binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        (child, BufReader::new(stdout).lines())
    }

    /// The credentials file.
    pub fn credentials_path(&self) -> PathBuf {
        self.config_dir().join("credentials.json")
    }

    /// The config directory (`SWITCHBOARD_CONFIG_DIR`): not there until the CLI creates it.
    pub fn config_dir(&self) -> PathBuf {
        self.config.path().join("switchboard")
    }

    /// The credentials file's entry for `server` (`Null` when absent).
    pub fn credentials(&self, server: &str) -> Value {
        let text = std::fs::read_to_string(self.credentials_path()).expect("credentials file");
        let file: Value = serde_json::from_str(&text).expect("credentials JSON");
        file["servers"][server].clone()
    }

    /// The stored access token for this CLI's server.
    pub fn access_token(&self) -> String {
        self.credentials(&self.server)["access_token"]
            .as_str()
            .expect("an access token is stored")
            .to_owned()
    }
}

/// The next line of a running command's stdout, parsed as JSON.
pub async fn next_json_line(lines: &mut Lines<BufReader<ChildStdout>>, what: &str) -> Value {
    let line = within(what, lines.next_line())
        .await
        .expect("read stdout")
        .unwrap_or_else(|| panic!("stdout ended while waiting for {what}"));
    serde_json::from_str(&line).unwrap_or_else(|err| panic!("{line:?} is not JSON: {err}"))
}

/// Sends SIGINT (Ctrl-C) to `child`.
pub fn interrupt(child: &Child) {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
        .expect("a running child has a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("send SIGINT");
}

/// A finished command.
pub struct Outcome {
    what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    fn new(what: String, output: std::process::Output) -> Self {
        Outcome {
            what,
            status: output.status,
            stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
        }
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        self.fails_with(0)
    }

    /// Asserts exit code `code`.
    #[track_caller]
    pub fn fails_with(self, code: i32) -> Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "{}\n--- stdout:\n{}--- stderr:\n{}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Stdout as one JSON value.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!("{}: stdout is not JSON ({err}): {}", self.what, self.stdout)
        })
    }

    /// Stdout as JSON lines.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|err| panic!("{}: {line:?} is not JSON: {err}", self.what))
            })
            .collect()
    }

    /// The error line: the first line of stderr.
    pub fn error_line(&self) -> &str {
        self.stderr.lines().next().unwrap_or("")
    }

    /// The JSON error object of `--json`: the last line of stderr.
    #[track_caller]
    pub fn error_json(&self) -> Value {
        let last = self.stderr.lines().last().unwrap_or("");
        serde_json::from_str(last)
            .unwrap_or_else(|err| panic!("{}: {last:?} is not a JSON error: {err}", self.what))
    }
}
