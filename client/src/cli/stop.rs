//! The signals that end a long-running command (`tail`, `chat`), handled from the moment the
//! [`Stop`] is made: a signal that arrives before the command first waits for one must not
//! kill the process with the default disposition (which would also leave a raw terminal raw).

use futures_util::future::select_all;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Handlers for a set of signals, installed when this is created.
pub struct Stop(Vec<Signal>);

impl Stop {
    /// Installs handlers for `kinds` now.
    pub fn install(kinds: &[SignalKind]) -> Self {
        Self(
            kinds
                .iter()
                .map(|&kind| signal(kind).expect("a signal handler installs"))
                .collect(),
        )
    }

    /// Resolves when one of the signals arrives (or has arrived since the last call).
    pub async fn recv(&mut self) {
        select_all(self.0.iter_mut().map(|s| Box::pin(s.recv()))).await;
    }
}
