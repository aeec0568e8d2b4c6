//! Headless Chromium through chromedriver (Debian packages `chromium` and `chromium-driver`):
//! one chromedriver per test on a free port, one browser session per simulated person.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long chromedriver may take to answer its status endpoint after it starts.
const DRIVER_START: Duration = Duration::from_secs(20);
/// How long `/shutdown` (which quits every browser of the driver) may take on drop.
const DRIVER_STOP: Duration = Duration::from_secs(10);

/// Flags for Chromium. `--no-sandbox`: the tests run as root, where Chromium's sandbox refuses
/// to start. The background-throttling switches keep timers of a window that is not in front
/// running at full rate, as they do for the person in front of it.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--lang=en-US",
];

/// A running chromedriver. Dropping it quits its browsers and the driver.
pub struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it is ready.
    pub async fn start() -> Self {
        for path in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: apt-get install -y chromium chromium-driver"
            );
        }
        let mut last_error = String::new();
        // A port found free can be taken before chromedriver binds it: try a few.
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("start chromedriver");
            let mut driver = Driver {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            match driver.ready().await {
                Ok(()) => return driver,
                Err(error) => last_error = error,
            }
        }
        panic!("chromedriver did not start: {last_error}");
    }

    /// Polls `/status` until chromedriver says it is ready, or fails.
    async fn ready(&mut self) -> Result<(), String> {
        let url = format!("http://{}/status", self.addr);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + DRIVER_START;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("chromedriver exited with {status}"));
            }
            if let Ok(response) = http.get(&url).send().await {
                let status: Value = response.json().await.unwrap_or_default();
                if status["value"]["ready"] == json!(true) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("not ready within {DRIVER_START:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new browser session (a fresh profile: its own storage) with a window of this size.
    pub async fn browser(&self, name: &'static str, width: u32, height: u32) -> Browser {
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": CHROMIUM_ARGS
                    .iter()
                    .map(|arg| arg.to_string())
                    .chain([format!("--window-size={width},{height}")])
                    .collect::<Vec<_>>(),
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let caps = match caps {
            Value::Object(map) => map,
            _ => unreachable!("a JSON object"),
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://{}", self.addr))
            .await
            .unwrap_or_else(|err| panic!("a {name} browser session: {err}"));
        let session = client
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        Browser {
            client,
            name,
            log_url: format!("http://{}/session/{session}/se/log", self.addr),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // `/shutdown` closes every session (so no Chromium outlives the test), then the driver.
        let _ = blocking_get(self.addr, "/shutdown");
        let deadline = Instant::now() + DRIVER_STOP;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let _ = self.child.start_kill();
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A bare HTTP/1.1 GET that works inside `Drop` (no runtime needed).
fn blocking_get(addr: SocketAddr, path: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(DRIVER_STOP))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map(|_| ())
}

/// One browser session: a person in front of the page.
pub struct Browser {
    pub client: Client,
    /// Who this is, in failure messages.
    pub name: &'static str,
    /// chromedriver's endpoint for the page's console messages.
    log_url: String,
}

impl Browser {
    /// The page's console messages so far (errors included), for failure reports.
    pub async fn console(&self) -> Vec<String> {
        let answer = reqwest::Client::new()
            .post(&self.log_url)
            .json(&json!({"type": "browser"}))
            .send()
            .await;
        let Ok(response) = answer else {
            return vec![];
        };
        let entries: Value = response.json().await.unwrap_or_default();
        entries["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| format!("{} {}", e["level"], e["message"]))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves a PNG of the window to `target/screenshots/{file}`; returns its path.
    pub async fn screenshot(&self, file: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = target_dir().join("screenshots");
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let path = dir.join(file);
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Ends the session (and its Chromium).
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `target/` at the workspace root).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("the workspace root")
                .join("target")
        })
}
