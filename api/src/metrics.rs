//! The HTTP side of the service's metrics: requests counted by operation and status with their
//! latency ([`HttpMetrics`], recorded for every response), and `GET /metrics`, the registry's
//! OpenMetrics text on a listener of its own ([`metrics_app`]). Scrapers do not sign requests,
//! so that listener is kept apart from the API and is loopback unless an operator says otherwise.
//!
//! The `operation` label comes from the route the request matched (`/v1/submitjob`,
//! `/v1/jobs/{job_id}/logs`) or, on `/`, from a CloudWatch Logs target this server serves.
//! Anything else is `unmatched`, so no path or header a caller invents becomes a label value.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: String,
}

fn latency() -> Histogram {
    // 50 µs to ~13 s.
    Histogram::new(exponential_buckets(5e-5, 4.0, 10))
}

/// Requests by operation and status, and their latency by operation. Cheap to clone; every
/// clone counts into the same families.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    seconds: Family<OperationLabel, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            seconds: Family::new_with_constructor(latency),
        }
    }
}

impl HttpMetrics {
    /// Adds these metrics to `registry` (`wasmbatch_http_requests_total`,
    /// `wasmbatch_http_request_duration_seconds`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "wasmbatch_http_requests",
            "HTTP requests answered, by operation and status code",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "wasmbatch_http_request_duration",
            "Time from a request's headers to its response's headers, by operation (a \
             following log's body streams on after it)",
            Unit::Seconds,
            self.seconds.clone(),
        );
    }
}

/// The operation a request names, as a bounded label.
fn operation(request: &Request) -> String {
    let Some(path) = request.extensions().get::<MatchedPath>() else {
        return "unmatched".into();
    };
    if path.as_str() == "/" {
        let target = request
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        return match crate::routes::logs_operation(target) {
            Some(operation) => format!("logs:{operation}"),
            None => "logs:unknown".into(),
        };
    }
    path.as_str().to_string()
}

/// Middleware: counts and times the response to every request.
pub(crate) async fn record(
    State(metrics): State<HttpMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let operation = operation(&request);
    let began = Instant::now();
    let response = next.run(request).await;
    metrics
        .seconds
        .get_or_create(&OperationLabel {
            operation: operation.clone(),
        })
        .observe(began.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            operation,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`: `registry` as OpenMetrics text, which Prometheus scrapes.
pub fn metrics_app(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(exposition))
        .with_state(registry)
}

async fn exposition(State(registry): State<Arc<Registry>>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the metrics failed: {e}"),
        )
            .into_response(),
    }
}
