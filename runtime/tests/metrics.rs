//! Prometheus metrics at `/metrics`, scraped from the real server after real
//! requests.

mod support;

use std::time::Duration;

use support::{Dirs, Server};

fn line_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().split(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_deployments_are_counted() {
    let dirs = Dirs::new();
    dirs.deploy("probe", "misbehave", "");
    dirs.deploy_bytes("broken", b"not a component");
    let server = Server::start(&dirs, &[]);
    for _ in 0..3 {
        assert_eq!(server.get("/app/rest/probe/ok").await.status(), 200);
    }
    assert_eq!(server.get("/app/rest/probe/panic").await.status(), 500);
    assert_eq!(server.get("/app/rest/nobody/here").await.status(), 404);
    assert_eq!(server.get("/no/such/route").await.status(), 404);
    assert_eq!(server.get("/health").await.status(), 200);

    let response = server.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    let expect = [
        (
            r#"elements_element_requests_total{element="probe",code="2xx"}"#,
            3.0,
        ),
        (
            r#"elements_element_requests_total{element="probe",code="5xx"}"#,
            1.0,
        ),
        (
            r#"elements_element_request_duration_seconds_count{element="probe"}"#,
            4.0,
        ),
        (
            r#"elements_http_requests_total{method="GET",route="/app/rest/{*path}",code="2xx"}"#,
            3.0,
        ),
        (
            r#"elements_http_requests_total{method="GET",route="/app/rest/{*path}",code="4xx"}"#,
            1.0,
        ),
        (
            r#"elements_http_requests_total{method="GET",route="/app/rest/{*path}",code="5xx"}"#,
            1.0,
        ),
        (
            r#"elements_http_requests_total{method="GET",route="unmatched",code="4xx"}"#,
            1.0,
        ),
        (
            r#"elements_http_requests_total{method="GET",route="/health",code="2xx"}"#,
            1.0,
        ),
        (r#"elements_deployments{status="LOADED"}"#, 1.0),
        (r#"elements_deployments{status="FAILED"}"#, 1.0),
    ];
    for (series, want) in expect {
        assert_eq!(line_value(&text, series), Some(want), "{series} in\n{text}");
    }
    // The raw path of a request never becomes a label.
    assert!(!text.contains("nobody"), "{text}");
    // Nor does a made-up method: every one counts as OTHER.
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    // A scrape counts itself: count the series after one more.
    let _ = server.get("/metrics").await.text().await.unwrap();
    let before = series(&server.get("/metrics").await.text().await.unwrap());
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
        let status = server
            .client
            .request(method, server.url("/health"))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_client_error(), "{status}");
    }
    let text = server.get("/metrics").await.text().await.unwrap();
    assert!(!text.contains("FOO"), "{text}");
    let other = text
        .lines()
        .filter(|l| l.starts_with("elements_http_requests_total{method=\"OTHER\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum::<f64>();
    assert_eq!(other, 20.0, "{text}");
    // One new series: OTHER on /health, 4xx.
    assert_eq!(series(&text), before + 1, "series grew from {before}:\n{text}");
    assert!(text.ends_with("# EOF\n"));

    // An Element's series are its name's: a redeploy counts on, another
    // Element has its own, and a class never answered has none.
    dirs.deploy("probe", "hello", "");
    server.wait_for_log("version=2", Duration::from_secs(20));
    dirs.deploy("other", "hello", "");
    server.wait_for_log("Element deployed at /app/rest/other", Duration::from_secs(20));
    assert_eq!(server.get("/app/rest/probe/hello").await.status(), 200);
    assert_eq!(server.get("/app/rest/other/hello").await.status(), 200);
    let text = server.get("/metrics").await.text().await.unwrap();
    for (series, want) in [
        (
            r#"elements_element_requests_total{element="probe",code="2xx"}"#,
            4.0,
        ),
        (
            r#"elements_element_request_duration_seconds_count{element="probe"}"#,
            5.0,
        ),
        (
            r#"elements_element_requests_total{element="other",code="2xx"}"#,
            1.0,
        ),
        (
            r#"elements_element_request_duration_seconds_count{element="other"}"#,
            1.0,
        ),
    ] {
        assert_eq!(line_value(&text, series), Some(want), "{series} in\n{text}");
    }
    assert!(!text.contains(r#"element="probe",code="4xx""#), "{text}");
    assert!(!text.contains(r#"element="other",code="5xx""#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_switched_off() {
    let dirs = Dirs::new();
    let server = Server::start(&dirs, &["--metrics", "false"]);
    assert_eq!(server.get("/metrics").await.status(), 404);
    assert_eq!(server.get("/health").await.status(), 200);
}
