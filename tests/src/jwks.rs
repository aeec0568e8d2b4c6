//! [`FakeJwks`]: a stand-in for an auth node's `/.well-known/jwks.json` whose answer a test
//! switches (the real keys, garbage, or a refused connection), for the hubs' token boundary
//! (`--auth-url` pointing at it).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What [`FakeJwks`] answers.
#[derive(Clone)]
pub enum Answer {
    /// `200` with this body.
    Body(String),
    /// Nothing: the listener is closed, so connections are refused.
    Refuse,
}

/// A stand-in for the auth node's `/.well-known/jwks.json` (every path gets the same answer).
/// A minimal HTTP/1.1 responder: one request per connection, then `Connection: close`.
pub struct FakeJwks {
    /// `http://127.0.0.1:PORT`: the hub's `--auth-url`.
    pub url: String,
    body: Arc<Mutex<String>>,
    /// The request line of every request answered (`GET /.well-known/jwks.json HTTP/1.1`).
    requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl FakeJwks {
    /// Listens on a fresh loopback port and answers with `answer`.
    pub async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let body = Arc::new(Mutex::new(String::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(serve(listener, Arc::clone(&body), Arc::clone(&requests)));
        let fake = Self {
            url,
            body,
            requests,
            task,
        };
        fake.answer(answer);
        fake
    }

    /// From now on, answer with `answer`. [`Answer::Refuse`] is for good: the listener closes.
    pub fn answer(&self, answer: Answer) {
        match answer {
            Answer::Body(body) => *self.body.lock().expect("lock") = body,
            Answer::Refuse => self.task.abort(),
        }
    }

    /// The request lines answered so far, oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for FakeJwks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, body: Arc<Mutex<String>>, requests: Arc<Mutex<Vec<String>>>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let body = body.lock().expect("lock").clone();
        let requests = Arc::clone(&requests);
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line).into_owned();
            requests.lock().expect("lock").push(line);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
