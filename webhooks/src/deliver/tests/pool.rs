//! Through a real `Pool` over `SqliteJobs`: retries, lane order, the signed body.

use super::*;

#[tokio::test]
async fn retries_after_500s_carry_the_same_ids_and_a_valid_signature() {
    let (addr, mut seen) = receiver(|_, n| status(if n < 2 { 500 } else { 200 })).await;
    let registry = registry_with(format!("http://{addr}/hook"));
    let metrics = switchboard_kit::metrics::Registry::new();
    let (h, _) = handler(&registry, cfg(5000));
    let h = h.with_metrics(WebhookMetrics::new(&metrics));
    let (store, _dir) = sqlite_store().await;
    let job = jobs(&registry, json!({"room": "general", "seq": 1})).remove(0);
    let event: Event = serde_json::from_value(job.payload["event"].clone()).unwrap();
    store.enqueue(job.clone()).await.unwrap();
    let pool = pool(Arc::clone(&store), h, 1);

    let attempts: Vec<Seen> = vec![
        next(&mut seen).await,
        next(&mut seen).await,
        next(&mut seen).await,
    ];
    let done = wait_state(&*store, &job.id, State::Done).await;
    assert_eq!(done.attempts, 3);
    for s in &attempts {
        assert_eq!(s.path, "/hook");
        assert!(s.verified, "signature {} verifies", s.signature);
        assert_eq!(s.event_id, event.id);
        assert_eq!(s.delivery_id, job.id);
        assert_eq!(s.event(), event, "the body is the event");
        assert_eq!(s.content_type, "application/json");
        assert_eq!(s.user_agent, USER_AGENT_VALUE);
        assert!(s.user_agent.starts_with("Switchboard-Webhooks/"));
    }
    pool.shutdown().await;
    assert!(seen.try_recv().is_err(), "no fourth request");

    let text = metrics.render();
    assert!(
        text.contains(r#"switchboard_webhook_deliveries_total{outcome="retry"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"switchboard_webhook_deliveries_total{outcome="ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("switchboard_webhook_delivery_seconds_count 3"),
        "{text}"
    );
}

#[tokio::test]
async fn events_of_one_lane_arrive_in_order_after_a_retry() {
    let (addr, mut seen) = receiver(|s, n| {
        let seq = s.event().data["seq"].as_u64().unwrap();
        status(if seq == 1 && n == 0 { 500 } else { 200 })
    })
    .await;
    let registry = registry_with(format!("http://{addr}/"));
    let (h, _) = handler(&registry, cfg(5000));
    let (store, _dir) = sqlite_store().await;
    let mut ids = Vec::new();
    for seq in 1..=5 {
        let job = jobs(&registry, json!({"room": "general", "seq": seq})).remove(0);
        assert_eq!(job.lane.as_deref(), Some("webhook:r:general"));
        ids.push(job.id.clone());
        store.enqueue(job).await.unwrap();
    }
    // Two workers: the lane, not a single worker, keeps the order.
    let pool = pool(Arc::clone(&store), h, 2);
    let mut order = Vec::new();
    for _ in 0..6 {
        order.push(next(&mut seen).await.event().data["seq"].as_u64().unwrap());
    }
    assert_eq!(order, [1, 1, 2, 3, 4, 5]);
    for id in &ids {
        wait_state(&*store, id, State::Done).await;
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn the_signed_body_is_exactly_the_sent_body() {
    let (done_tx, done_rx) = oneshot::channel::<Seen>();
    let done_tx = Mutex::new(Some(done_tx));
    let (addr, _seen) = receiver(move |s, _| {
        if let Some(tx) = done_tx.lock().unwrap().take() {
            let _ = tx.send(s.clone());
        }
        status(204)
    })
    .await;
    let registry = registry_with(format!("http://{addr}/"));
    let (h, _) = handler(&registry, cfg(5000));
    let job = jobs(
        &registry,
        json!({"body": "héllo \"quoted\" \u{1F600}", "seq": 1}),
    )
    .remove(0);
    h.run(&claimed(&job)).await.unwrap();
    let s = done_rx.await.unwrap();
    let expected = serde_json::to_vec(&s.event()).unwrap();
    assert_eq!(
        s.body.as_ref(),
        expected.as_slice(),
        "the body is the event's compact JSON"
    );
    let t: i64 = s.signature[2..s.signature.find(',').unwrap()]
        .parse()
        .unwrap();
    assert_eq!(s.signature, sign::signature(SECRET.as_bytes(), t, &s.body));
    assert!((unix_now() - t).abs() <= 5);
}

#[tokio::test]
async fn a_hanging_receiver_does_not_stall_the_only_worker() {
    let (held_tx, _held) = mpsc::unbounded_channel();
    let hang = raw_receiver(move |socket| {
        let held_tx = held_tx.clone();
        async move {
            let _ = held_tx.send(socket);
        }
    })
    .await;
    let (ok, mut seen) = receiver(|_, _| status(200)).await;
    let registry = Registry::new();
    registry.replace(vec![
        endpoint("hang", format!("http://{hang}/")),
        endpoint("ok", format!("http://{ok}/")),
    ]);
    let (h, _) = handler(&registry, cfg(300));
    let (store, _dir) = sqlite_store().await;
    // The hanging endpoint's delivery is first in the queue.
    let [to_hang, to_ok]: [NewJob; 2] = jobs(&registry, json!({"seq": 1})).try_into().unwrap();
    assert!(to_hang.payload["endpoint"] == "hang" && to_hang.id < to_ok.id);
    store.enqueue(to_hang.clone()).await.unwrap();
    store.enqueue(to_ok.clone()).await.unwrap();
    let pool = pool(Arc::clone(&store), h, 1);

    assert_eq!(next(&mut seen).await.delivery_id, to_ok.id);
    wait_state(&*store, &to_ok.id, State::Done).await;
    let hanging = store.get(&to_hang.id).await.unwrap().unwrap();
    assert!(hanging.attempts >= 1);
    assert!(matches!(hanging.state, State::Ready | State::Running));
    let error = hanging.last_error.unwrap_or_default();
    assert!(error.contains("no answer within 300 ms"), "{error}");
    pool.shutdown().await;
}
