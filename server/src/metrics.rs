//! Prometheus metrics, served at `GET /metrics` in the OpenMetrics text
//! format (`prometheus-client`):
//!
//! - `elements_http_requests_total{method, route, code}` and
//!   `elements_http_request_duration_seconds{route}`: every request to the
//!   server, by route template (`/api/rest/user/{id}`, never the raw path, so
//!   the series stay few) and status class (`2xx`...);
//! - `elements_element_requests_total{element, code}` and
//!   `elements_element_request_duration_seconds{element}`: requests served
//!   by each Element (including its errors: timeouts, traps, overload);
//! - `elements_deployments{status}`: Elements `LOADED`, `FAILED` and
//!   `DISABLED`, counted when scraped.
//!
//! Recording is a hash lookup and an atomic add: cheap beside an instance.

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ElementLabels {
    // The Element's own name (an `Arc`): counting a request allocates nothing.
    element: Arc<str>,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ElementOnly {
    element: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request latencies from 0.5 ms to about 8 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// One Element's series, found by its name with one fast lookup: the
/// families hash label sets with SipHash, and an Element request counted
/// through them paid two such lookups (callgrind: ~750 instructions).
/// Element names are the operator's, not a client's: no flooding risk.
#[derive(Debug)]
struct ElementSeries {
    /// By status class (see [`CLASSES`]), made on first use so a class the
    /// Element never answered has no series.
    requests: [OnceLock<Counter>; 5],
    duration: Histogram,
}

/// The status classes, as labels; [`class`] gives an index into them.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Histograms<RouteLabels>,
    element_requests: Family<ElementLabels, Counter>,
    element_duration: Histograms<ElementOnly>,
    element_series: RwLock<foldhash::HashMap<Arc<str>, ElementSeries>>,
    deployments: Family<StatusLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The index in [`CLASSES`] of a status code's class.
fn class(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

impl Metrics {
    /// Empty metrics, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("elements");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Histograms::<RouteLabels>::new_with_constructor(latency_histogram as fn() -> _);
        let element_requests = Family::<ElementLabels, Counter>::default();
        let element_duration =
            Histograms::<ElementOnly>::new_with_constructor(latency_histogram as fn() -> _);
        let deployments = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests, by method, route template and status class",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            http_duration.clone(),
        );
        registry.register(
            "element_requests",
            "Requests served by an Element, by status class",
            element_requests.clone(),
        );
        registry.register(
            "element_request_duration_seconds",
            "Time an Element took to answer a request",
            element_duration.clone(),
        );
        registry.register(
            "deployments",
            "Elements by deployment status (LOADED, FAILED, DISABLED)",
            deployments.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_duration,
            element_requests,
            element_duration,
            element_series: RwLock::default(),
            deployments,
        }
    }

    /// Records one answered HTTP request; `route` is its route template.
    pub fn http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method_label(method),
                route: route.to_owned(),
                code: CLASSES[class(status)],
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records one request an Element answered (or failed).
    pub fn element_request(&self, element: &Arc<str>, status: u16, took: Duration) {
        let class = class(status);
        let record = |series: &ElementSeries| {
            series.requests[class]
                .get_or_init(|| {
                    self.element_requests
                        .get_or_create(&ElementLabels {
                            element: element.clone(),
                            code: CLASSES[class],
                        })
                        .clone()
                })
                .inc();
            series.duration.observe(took.as_secs_f64());
        };
        if let Some(series) = self
            .element_series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&**element)
        {
            return record(series);
        }
        let mut all = self.element_series.write().unwrap_or_else(|e| e.into_inner());
        let series = all.entry(element.clone()).or_insert_with(|| ElementSeries {
            requests: Default::default(),
            // The family's own histogram: the series it exports.
            duration: self
                .element_duration
                .get_or_create(&ElementOnly {
                    element: element.clone(),
                })
                .clone(),
        });
        record(series);
    }

    /// The metrics as OpenMetrics text, with the deployment counts given.
    pub fn render(&self, loaded: usize, serving: usize, failed: usize, disabled: usize) -> String {
        for (status, n) in [
            ("LOADED", loaded),
            ("SERVING", serving),
            ("FAILED", failed),
            ("DISABLED", disabled),
        ] {
            self.deployments
                .get_or_create(&StatusLabels { status })
                .set(n as i64);
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!("encoding the metrics failed: {e}");
        }
        out
    }
}

/// A method as a label: the standard ones as they are, anything else
/// `OTHER`, so clients can't create series at will.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::new();
        m.http_request("GET", "/health", 200, Duration::from_millis(1));
        m.http_request("GET", "/health", 200, Duration::from_millis(2));
        m.element_request(&"hello".into(), 504, Duration::from_secs(3));
        let text = m.render(2, 0, 1, 0);
        assert!(
            text.contains(r#"elements_http_requests_total{method="GET",route="/health",code="2xx"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"elements_element_requests_total{element="hello",code="5xx"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"elements_element_request_duration_seconds_count{element="hello"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"elements_deployments{status="FAILED"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
