//! Optional OpenTelemetry trace export (`--otlp-endpoint`, OTLP over HTTP/protobuf).
//!
//! One span per request, named and attributed by the OpenTelemetry MCP semantic conventions
//! (`{mcp.method.name} {target}`, `mcp.method.name`, `gen_ai.tool.name`, `mcp.session.id`,
//! `mcp.protocol.version`, `jsonrpc.request.id`, `error.type`). Spans are built from ledger rows
//! as they are stored, with the request's own start time and duration: the request path pays
//! nothing for tracing, and a span says exactly what the ledger says (a tool that failed is an
//! error span). A client's W3C trace context in `params._meta` becomes the span's parent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span, SpanKind, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ledger::{Ledger, LedgerRow};

/// How long an export may take before it counts as failed.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The running exporter: a task turning stored ledger rows into spans, and the SDK's batch
/// processor sending them.
pub struct Traces {
    provider: SdkTracerProvider,
    task: JoinHandle<()>,
    stop: CancellationToken,
}

impl Traces {
    /// Starts exporting spans for every row `ledger` stores to `endpoint` (the collector's base
    /// URL, e.g. `http://127.0.0.1:4318`; `/v1/traces` is added unless given).
    pub fn start(endpoint: &str, ledger: &Ledger) -> anyhow::Result<Self> {
        // The exporter builds its own HTTP client, which takes TLS from the process.
        crate::tls::install();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(traces_url(endpoint))
            .with_timeout(EXPORT_TIMEOUT)
            .build()?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(Counted::new(exporter))
            .with_resource(resource())
            .build();
        let tracer = provider.tracer("steward");
        let stop = CancellationToken::new();
        let task = tokio::spawn(follow(ledger.clone(), tracer, stop.clone()));
        tracing::info!(endpoint, "exporting request spans over OTLP");
        Ok(Self {
            provider,
            task,
            stop,
        })
    }

    /// Turns what the ledger has already announced into spans, sends every queued span and
    /// stops. Call after the ledger writer has flushed.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the trace exporter task ended abnormally");
        }
        let provider = self.provider;
        // The SDK's flush blocks on its export thread.
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "the last spans could not be exported"),
            Err(error) => tracing::warn!(%error, "the trace exporter did not shut down cleanly"),
        }
    }
}

/// The collector's traces URL: OTLP/HTTP's `/v1/traces` under the given base.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

/// `service.name` is `steward` unless `OTEL_SERVICE_NAME` (read by the SDK) says otherwise.
fn resource() -> Resource {
    let builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        builder.build()
    } else {
        builder.with_service_name("steward").build()
    }
}

/// Follows the ledger's feed of stored rows until `stop`, then takes what is left.
async fn follow(ledger: Ledger, tracer: SdkTracer, stop: CancellationToken) {
    let mut rows = ledger.subscribe();
    loop {
        tokio::select! {
            row = rows.recv() => match row {
                Ok(row) => record(&tracer, &row),
                Err(RecvError::Lagged(missed)) => {
                    metrics::counter!("steward_otlp_spans_dropped_total").increment(missed);
                    tracing::warn!(missed, "the trace exporter fell behind; spans were dropped");
                }
                Err(RecvError::Closed) => return,
            },
            _ = stop.cancelled() => break,
        }
    }
    while let Ok(row) = rows.try_recv() {
        record(&tracer, &row);
    }
}

/// One span for one request, with the request's own timing.
fn record(tracer: &SdkTracer, row: &LedgerRow) {
    let start = SystemTime::from(row.timestamp);
    let end = start + Duration::from_micros(u64::try_from(row.duration.micros()).unwrap_or(0));
    let mut span = tracer
        .span_builder(span_name(row))
        .with_kind(SpanKind::Server)
        .with_start_time(start)
        .with_attributes(attributes(row))
        .start_with_context(tracer, &parent(row));
    if row.status.failed() {
        let message = row
            .error_message
            .clone()
            .unwrap_or_else(|| row.status.as_str().to_string());
        span.set_status(opentelemetry::trace::Status::error(message));
    }
    span.end_with_timestamp(end);
}

/// `{mcp.method.name} {target}`: the tool for `tools/call`, else the method alone.
fn span_name(row: &LedgerRow) -> String {
    match &row.tool_name {
        Some(tool) => format!("{} {tool}", row.method),
        None => row.method.clone(),
    }
}

fn attributes(row: &LedgerRow) -> Vec<KeyValue> {
    let mut attrs = vec![
        KeyValue::new("mcp.method.name", row.method.clone()),
        KeyValue::new("jsonrpc.protocol.version", "2.0"),
        KeyValue::new("steward.request_id", row.request_id.to_string()),
        KeyValue::new("steward.status", row.status.as_str()),
    ];
    let mut text = |key: &'static str, value: &Option<String>| {
        if let Some(value) = value {
            attrs.push(KeyValue::new(key, value.clone()));
        }
    };
    text("gen_ai.tool.name", &row.tool_name);
    text("mcp.session.id", &row.session_id);
    text("mcp.protocol.version", &row.trace.protocol_version);
    text("jsonrpc.request.id", &row.jsonrpc_id);
    if row.tool_name.is_some() {
        attrs.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
    }
    if let Some(error_type) = row.error_type() {
        attrs.push(KeyValue::new("error.type", error_type));
    }
    if let Some(code) = row.error_code {
        attrs.push(KeyValue::new("rpc.response.status_code", code.to_string()));
    }
    if let Some(tokens) = row.total_tokens {
        attrs.push(KeyValue::new("steward.tokens.estimated", i64::from(tokens)));
    }
    attrs
}

/// The client's trace context from `params._meta` (W3C `traceparent`/`tracestate`), if valid.
fn parent(row: &LedgerRow) -> Context {
    let Some(traceparent) = &row.trace.traceparent else {
        return Context::new();
    };
    let mut carrier = HashMap::from([("traceparent".to_string(), traceparent.clone())]);
    if let Some(state) = &row.trace.tracestate {
        carrier.insert("tracestate".to_string(), state.clone());
    }
    TraceContextPropagator::new().extract(&carrier)
}

/// Counts what reaches the collector and what does not, and says so in the log once per
/// change: a collector that is down is never silent.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    failing: Arc<AtomicBool>,
}

impl<E> Counted<E> {
    fn new(inner: E) -> Self {
        Self {
            inner,
            failing: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let outcome = self.inner.export(batch).await;
        match &outcome {
            Ok(()) => {
                metrics::counter!("steward_otlp_spans_exported_total").increment(n);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("span export recovered");
                }
            }
            Err(error) => {
                metrics::counter!("steward_otlp_spans_failed_total").increment(n);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(%error, spans = n, "span export failed; retrying with the next batch");
                }
            }
        }
        outcome
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(
            traces_url("http://c:4318"),
            "http://c:4318/v1/traces".to_string()
        );
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }
}
