//! What each answer of a receiver makes of a delivery.

use super::*;

#[tokio::test]
async fn a_410_disables_the_endpoint_once_and_is_permanent() {
    let (addr, mut seen) = receiver(|_, _| status(410)).await;
    let registry = registry_with(format!("http://{addr}/"));
    let disables = Arc::new(Disables {
        registry: Some(registry.clone()),
        ..Disables::default()
    });
    let h = WebhookHandler::new(registry.clone(), disables.clone(), cfg(5000));
    let job = jobs(&registry, json!({"seq": 1})).remove(0);
    let why = permanent(h.run(&claimed(&job)).await);
    assert!(why.contains("410"), "{why}");
    assert_eq!(
        *disables.calls.lock().unwrap(),
        [("r".to_owned(), GONE_REASON.to_owned())]
    );
    next(&mut seen).await;
    // A delivery already queued for the endpoint ends without a request.
    assert_eq!(permanent(h.run(&claimed(&job)).await), "endpoint disabled");
    assert_eq!(disables.calls.lock().unwrap().len(), 1, "disabled once");
    assert!(
        seen.try_recv().is_err(),
        "no request to a disabled endpoint"
    );
}

#[tokio::test]
async fn a_410_whose_disabling_fails_is_retried() {
    let (addr, _seen) = receiver(|_, _| status(410)).await;
    let registry = registry_with(format!("http://{addr}/"));
    let disables = Arc::new(Disables {
        fail: true,
        ..Disables::default()
    });
    let h = WebhookHandler::new(registry.clone(), disables.clone(), cfg(5000));
    let why = transient(run_one(&h, &registry).await);
    assert!(why.contains("the auth node is unreachable"), "{why}");
    assert_eq!(disables.calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn statuses_map_to_outcomes() {
    let (addr, _seen) = receiver(|s, _| {
        let code: u16 = s.path.trim_start_matches('/').parse().unwrap();
        let mut r = status(code);
        if (300..400).contains(&code) {
            r.headers_mut()
                .insert("location", "/elsewhere".parse().unwrap());
        }
        r
    })
    .await;
    for (code, expect) in [
        (200, "ok"),
        (201, "ok"),
        (204, "ok"),
        (408, "transient"),
        (429, "transient"),
        (500, "transient"),
        (502, "transient"),
        (503, "transient"),
        (504, "transient"),
        (301, "permanent"),
        (307, "permanent"),
        (400, "permanent"),
        (401, "permanent"),
        (403, "permanent"),
        (404, "permanent"),
        (413, "permanent"),
        (422, "permanent"),
    ] {
        let registry = registry_with(format!("http://{addr}/{code}"));
        let (h, disables) = handler(&registry, cfg(5000));
        let result = run_one(&h, &registry).await;
        let got = match &result {
            Ok(()) => "ok",
            Err(JobFailure::Transient(_)) => "transient",
            Err(JobFailure::Permanent(_)) => "permanent",
        };
        assert_eq!(got, expect, "{code}: {result:?}");
        if let Err(JobFailure::Transient(why) | JobFailure::Permanent(why)) = &result {
            assert!(why.contains(&code.to_string()), "{code}: {why}");
        }
        assert!(disables.calls.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_400_is_permanent_and_quotes_the_body_without_the_secret() {
    let (addr, _seen) = receiver(|_, _| {
        (
            StatusCode::BAD_REQUEST,
            format!("signature mismatch for key {SECRET}\n{}", "x".repeat(5000)),
        )
            .into_response()
    })
    .await;
    let registry = registry_with(format!("http://{addr}/"));
    let (h, _) = handler(&registry, cfg(5000));
    let why = permanent(run_one(&h, &registry).await);
    assert!(
        why.starts_with("receiver answered 400 Bad Request: signature mismatch for key [redacted]"),
        "{why}"
    );
    assert!(!why.contains(SECRET), "{why}");
    assert!(why.len() < 300, "bounded: {} bytes", why.len());
    assert!(why.ends_with("..."), "{why}");
}

#[tokio::test]
async fn a_redirect_is_permanent_and_its_location_is_not_requested() {
    let (addr, mut seen) = receiver(|s, _| {
        if s.path == "/hook" {
            (StatusCode::FOUND, [("location", "/elsewhere")]).into_response()
        } else {
            status(200)
        }
    })
    .await;
    let registry = registry_with(format!("http://{addr}/hook"));
    let (h, _) = handler(&registry, cfg(5000));
    let why = permanent(run_one(&h, &registry).await);
    assert!(why.contains("302 Found"), "{why}");
    assert!(why.contains("redirects are not followed"), "{why}");
    assert_eq!(next(&mut seen).await.path, "/hook");
    assert!(seen.try_recv().is_err(), "/elsewhere was not requested");
}

#[tokio::test]
async fn removed_endpoints_are_skipped_and_bad_payloads_are_permanent() {
    let registry = registry_with("http://127.0.0.1:9/".into());
    let (h, _) = handler(&registry, cfg(1000));
    let job = jobs(&registry, json!({"seq": 1})).remove(0);
    registry.replace(Vec::new());
    h.run(&claimed(&job)).await.unwrap();

    for payload in [
        json!({}),
        json!({"endpoint": "r"}),
        json!({"endpoint": "r", "event": {"id": "x", "type": "nope", "ts": 1, "data": {}}}),
        json!("webhook"),
    ] {
        let bad = NewJob::new(JOB_KIND, payload.clone());
        let why = permanent(h.run(&claimed(&bad)).await);
        assert!(why.starts_with("bad webhook payload"), "{payload}: {why}");
    }
    assert_eq!(h.kind(), JOB_KIND);
}
