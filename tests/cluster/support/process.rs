//! One child process of the cluster (an auth node, a hub, HAProxy): started from a binary,
//! its output captured into a log file, SIGKILLed and reaped on drop.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use switchboard_tests::private::{self, Signal};
use tokio::sync::oneshot;

/// What the binaries print on stdout once they listen, followed by `ADDR/...`: a hub
/// (`switchboard-hub`) and an auth node (`switchboard-auth`).
const READY_PREFIXES: &[&str] = &[
    "Switchboard is running at http://",
    "switchboard-auth listening on http://",
];

/// Interval of the bounded health polls while a process comes up.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The path of the workspace binary `name` (package of the same name), built first when
/// run under cargo.
pub fn binary(name: &str) -> PathBuf {
    switchboard_tests::binary::binary(name, name)
}

/// A running child process. Dropping it kills it with SIGKILL and reaps it.
pub struct Process {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    /// Starts `program args` with stdout and stderr appended to `log_dir/<name>.log` (a node
    /// started again under the same name continues its log).
    /// The receiver yields the address from the first stdout line that starts with one of
    /// [`READY_PREFIXES`] (HAProxy prints none).
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log_dir: &Path,
    ) -> (Self, oneshot::Receiver<SocketAddr>) {
        let log = log_dir.join(format!("{name}.log"));
        let mut log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the log file");
        let stderr = log_file.try_clone().expect("clone the log file handle");
        let mut child = Command::new(program)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            // Plain log files: no colour codes from the nodes' logger.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|err| panic!("start {name} ({}): {err}", program.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = oneshot::channel();
        // Copies stdout into the log; ends when the process closes stdout (exit or kill).
        std::thread::spawn(move || {
            let mut ready = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log_file, "{line}");
                let rest = READY_PREFIXES.iter().find_map(|p| line.strip_prefix(p));
                if let Some(rest) = rest {
                    let addr = rest.split('/').next().unwrap_or_default();
                    if let (Ok(addr), Some(tx)) = (addr.parse(), ready.take()) {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let process = Process {
            name: name.to_owned(),
            child: Some(child),
            log,
        };
        (process, rx)
    }

    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Panics (with the end of the log) if the process has exited.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("the process was not killed");
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{} exited during the test ({status}); end of its log:\n{}",
                self.name,
                self.log_tail(40)
            );
        }
    }

    /// SIGKILL, then reap. The process gets no chance to flush or close anything: this is the
    /// crash the failover tests simulate.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (bounded by `limit`) for the process to exit and reaps it. Returns
    /// its exit status and how long it took; panics with the log if it is still running after
    /// `limit`.
    pub async fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let child = self.child.as_mut().expect("the process is running");
        let started = Instant::now();
        private::signal(child, Signal::TERM);
        match private::wait_exit(child, limit).await {
            Some(status) => {
                self.child = None;
                (status, started.elapsed())
            }
            None => panic!(
                "{} still runs {limit:?} after SIGTERM; end of its log:\n{}",
                self.name,
                self.log_tail(40)
            ),
        }
    }

    /// SIGTERM, without waiting for the process to exit ([`Process::await_exit`]).
    pub fn send_term(&mut self) {
        let child = self.child.as_ref().expect("the process is running");
        private::signal(child, Signal::TERM);
    }

    /// Waits (bounded by `limit`) for the process to exit, and reaps it; panics with the log if
    /// it still runs after `limit`.
    pub async fn await_exit(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("the process is running");
        match private::wait_exit(child, limit).await {
            Some(status) => {
                self.child = None;
                status
            }
            None => panic!(
                "{} still runs {limit:?} after the signal; end of its log:\n{}",
                self.name,
                self.log_tail(40)
            ),
        }
    }

    /// The last `lines` lines of the process's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The address from the process's ready line (see [`Process::spawn`]), within
    /// `START_WAIT`; panics with the log if the process exits or prints none.
    pub async fn await_ready(&mut self, ready: oneshot::Receiver<SocketAddr>) -> SocketAddr {
        match tokio::time::timeout(super::START_WAIT, ready).await {
            Ok(Ok(addr)) => addr,
            _ => {
                self.assert_running();
                panic!(
                    "{} printed no ready line within {:?}; end of its log:\n{}",
                    self.name,
                    super::START_WAIT,
                    self.log_tail(40)
                );
            }
        }
    }

    /// Polls `url` (a health URL) every [`POLL_INTERVAL`] until it answers 200, for at most
    /// `limit`; panics with the log if the process exits or the time runs out.
    pub async fn await_healthy(&mut self, url: &str, limit: Duration) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("an HTTP client");
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(response) = http.get(url).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "{} did not answer {url} within {limit:?}; end of its log:\n{}",
                self.name,
                self.log_tail(40)
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
