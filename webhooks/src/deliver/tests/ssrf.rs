//! Forbidden addresses (literal or resolved), DNS and connection failures.

use super::*;

#[tokio::test]
async fn a_metadata_address_is_refused_without_a_connection() {
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]:8080/",
        "http://metadata.google.internal/computeMetadata/v1/",
    ] {
        let registry = registry_with(url.into());
        let (h, _) = handler(&registry, cfg(10_000));
        let why = permanent(run_one(&h, &registry).await);
        assert!(why.starts_with("endpoint URL refused"), "{url}: {why}");
        assert!(why.contains("forbidden address"), "{url}: {why}");
    }
}

#[tokio::test]
async fn a_name_resolving_only_to_forbidden_addresses_is_permanent_without_a_connection() {
    let (addr, mut seen) = receiver(|_, _| status(200)).await;
    let registry = registry_with(format!("http://localhost:{}/", addr.port()));
    // No name here resolves to a link-local address: refuse loopback instead, through the
    // same resolver path.
    let h = WebhookHandler::with_refusal(
        registry.clone(),
        Arc::new(Disables::default()),
        cfg(10_000),
        |_, addr| addr.is_loopback().then_some("loopback (test)"),
    );
    let why = permanent(run_one(&h, &registry).await);
    assert!(
        why.starts_with("host resolves only to forbidden addresses: localhost"),
        "{why}"
    );
    assert!(seen.try_recv().is_err(), "no request reached the receiver");

    // The same name with the production policy is delivered.
    let (h, _) = handler(&registry, cfg(10_000));
    run_one(&h, &registry).await.unwrap();
    next(&mut seen).await;
}

#[tokio::test]
async fn dns_failures_and_refused_connections_are_transient() {
    let registry = registry_with("http://no-such-host.invalid/hook".into());
    let (h, _) = handler(&registry, cfg(10_000));
    let why = transient(run_one(&h, &registry).await);
    assert!(
        why.starts_with("DNS lookup of no-such-host.invalid failed"),
        "{why}"
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let registry = registry_with(format!("http://{addr}/"));
    let (h, _) = handler(&registry, cfg(10_000));
    let why = transient(run_one(&h, &registry).await);
    assert!(why.starts_with("could not connect"), "{why}");
}
