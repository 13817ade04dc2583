//! Prometheus metrics of one gateway, in a registry owned by [`crate::state::AppState`] (no
//! process-wide registry).

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric the gateway exports.
pub struct Metrics {
    pub registry: Registry,
    /// `tokengate_tokens_issued_total{grant, format, mode}`; mode = single | multi | reused.
    pub tokens_issued: IntCounterVec,
    /// `tokengate_tokens_revoked_total{cause}`; cause = request | renewal | cap | refresh_reuse.
    pub tokens_revoked: IntCounterVec,
    /// `tokengate_validations_total{result}`; result = ok | missing | malformed | invalid |
    /// insufficient_scope.
    pub validations: IntCounterVec,
    /// `tokengate_config_reloads_total{result}`; result = ok | failed.
    pub config_reloads: IntCounterVec,
    /// `tokengate_client_auth_failures_total`.
    pub client_auth_failures: IntCounterVec,
    /// `tokengate_active_tokens`: access tokens in the index (set at scrape time).
    pub active_tokens: IntGauge,
    /// `tokengate_store_write_seconds`: time from handing a batch to the store to its durable ack.
    pub store_write_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let tokens_issued = counter(
            "tokengate_tokens_issued_total",
            "Token answers by grant type, token format and renewal mode (reused = existing opaque token returned)",
            &["grant", "format", "mode"],
        )?;
        let tokens_revoked = counter("tokengate_tokens_revoked_total", "Tokens revoked, by cause", &["cause"])?;
        let validations = counter(
            "tokengate_validations_total",
            "Bearer validations at the gateway, by result",
            &["result"],
        )?;
        let config_reloads = counter(
            "tokengate_config_reloads_total",
            "Config reloads, by result",
            &["result"],
        )?;
        let client_auth_failures = counter(
            "tokengate_client_auth_failures_total",
            "Failed client authentications at the OAuth endpoints, by endpoint",
            &["endpoint"],
        )?;
        let active_tokens = IntGauge::new("tokengate_active_tokens", "Access tokens in the in-memory index")?;
        registry.register(Box::new(active_tokens.clone()))?;
        let store_write_seconds = Histogram::with_opts(
            HistogramOpts::new("tokengate_store_write_seconds", "Durable store commit latency")
                .buckets(vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0]),
        )?;
        registry.register(Box::new(store_write_seconds.clone()))?;
        Ok(Metrics {
            registry,
            tokens_issued,
            tokens_revoked,
            validations,
            config_reloads,
            client_auth_failures,
            active_tokens,
            store_write_seconds,
        })
    }
}
