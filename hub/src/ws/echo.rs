//! The echo endpoint: the same transport as `/v1/ws` (reassembly, UTF-8 checks, control
//! frames, close handshake), echoing every message back. It exists so WebSocket conformance
//! suites (Autobahn) can test the hub's transport.

use std::sync::Arc;
use std::time::Duration;

use fastwebsockets::WebSocket;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;

use super::frame::OpCode;
use super::transport::{Incoming, MessageReader};
use super::writer::Writer;
use crate::fanout::outbox::outbox;
use crate::fanout::registry::{KillSwitch, Out};

/// Echo queue depth: the reader waits when the writer is this far behind.
const ECHO_QUEUE: usize = 16;

/// Serves one echo connection until it closes (or `kill` fires at shutdown).
pub async fn serve(ws: WebSocket<TokioIo<Upgraded>>, max_message: usize, kill: Arc<KillSwitch>) {
    let (rd, wr) = tokio::io::split(ws.into_inner());
    let mut reader = MessageReader::new(rd, max_message);
    let (tx, rx) = outbox(ECHO_QUEUE);
    // No heartbeat: conformance clients do not expect our pings (and a peer seen "last" at
    // the end of time is never idle).
    let last_seen = std::sync::atomic::AtomicU64::new(u64::MAX);
    let no_beat = tokio::sync::Notify::new();
    let writer = Writer::new(wr, 0, Arc::default()).run(
        rx,
        &kill,
        &no_beat,
        Duration::from_secs(3600),
        &last_seen,
    );
    let read = async {
        loop {
            let item = match reader.next(&tx).await {
                Ok(Incoming::Text(payload)) => Out::Frame {
                    opcode: OpCode::Text,
                    payload,
                },
                Ok(Incoming::Binary(payload)) => Out::Frame {
                    opcode: OpCode::Binary,
                    payload,
                },
                Ok(Incoming::Pong) => continue,
                Ok(Incoming::Close) => return,
                Err(e) => match e.close_code() {
                    Some((code, reason)) => Out::Close { code, reason },
                    None => return,
                },
            };
            let closing = matches!(item, Out::Close { .. });
            if tx.send(item).await.is_err() || closing {
                return;
            }
        }
    };
    tokio::pin!(writer, read);
    tokio::select! {
        () = &mut read => { let _ = tokio::time::timeout(Duration::from_secs(5), &mut writer).await; }
        _ = &mut writer => { let _ = tokio::time::timeout(Duration::from_secs(1), &mut read).await; }
    }
}
