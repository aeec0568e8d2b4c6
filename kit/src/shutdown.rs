//! The shutdown signal of the binaries. `run` functions take any `Future<Output = ()>` as their
//! shutdown, so tests pass a oneshot and `main` passes [`signal`].

/// Resolves on the first Ctrl-C (SIGINT) or SIGTERM.
///
/// If a handler cannot be installed, that signal is ignored (the future waits for the other),
/// rather than shutting down at once.
///
/// # Panics
/// Outside a Tokio runtime with signal handling enabled.
pub async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    /// SIGTERM to our own process resolves the future.
    #[tokio::test]
    async fn sigterm_resolves_the_signal() {
        let signal = super::signal();
        tokio::pin!(signal);
        // One poll installs both handlers (a timeout polls its future before its deadline), so
        // the SIGTERM below is caught rather than ending the test process.
        assert!(
            tokio::time::timeout(Duration::ZERO, &mut signal)
                .await
                .is_err(),
            "no signal yet"
        );
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("kill(1)");
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(10), signal)
            .await
            .expect("SIGTERM resolves the signal");
    }
}
