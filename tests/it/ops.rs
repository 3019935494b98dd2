use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread")]
async fn healthz_and_readyz_answer_with_every_dependency_ok() {
    let app = TestApp::spawn().await;

    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"status": "ok"}));

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"postgres": "ok", "rabbitmq": "ok", "redis": "ok"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_a_distinct_request_id() {
    let app = TestApp::spawn().await;
    let mut seen = std::collections::HashSet::new();
    for path in ["/healthz", "/readyz", "/metrics", "/no-such-thing", "/openapi.json"] {
        let response = app.get(path).await;
        let id = response.headers().get("x-request-id").unwrap_or_else(|| panic!("{path}: no x-request-id"));
        let id = id.to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{path}: {id} is not a UUID");
        assert!(seen.insert(id), "{path}: request id repeated");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_and_latency_by_route_and_status() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.get("/healthz").await;
    }
    app.get("/v1/unknown/7").await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(text.contains(r#"pipewright_http_requests_total{method="GET",route="/healthz",status="200"} 3"#), "{text}");
    // Unmatched paths share one label, so that scanners cannot blow up the series.
    assert!(
        text.contains(r#"pipewright_http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"pipewright_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 3"#
        ),
        "{text}"
    );
    assert!(text.contains("pipewright_http_request_duration_seconds_bucket{"), "{text}");
}
