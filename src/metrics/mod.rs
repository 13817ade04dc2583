//! Prometheus metrics of one gateway, in a registry owned by [`crate::state::AppState`] (no
//! process-wide registry).
//!
//! Every labelled counter the request path touches is resolved once here, at construction: a
//! request increments an `IntCounter` it finds by array index (no label hashing, no lock). Resolving
//! them up front also makes every series appear at 0 from the first scrape, so `rate()` and
//! alerts work before the first event.

use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::domain::format::TokenFormat;
use crate::domain::grant_type::GrantType;
use crate::tokens::lifecycle::SweepReport;
use crate::tokens::service::{Outcome, RevokeCause};

use labels::*;
pub use labels::{cause_label, Bound, Validation, AUTH_ENDPOINTS};

mod labels;

/// Every metric the gateway exports.
pub struct Metrics {
    pub registry: Registry,
    /// `tokengate_tokens_issued_total{grant, format, mode}`; mode = single | multi | reused.
    pub tokens_issued: IntCounterVec,
    /// `tokengate_tokens_revoked_total{cause}`; cause = request | renewal | cap | refresh_reuse |
    /// admin.
    pub tokens_revoked: IntCounterVec,
    /// `tokengate_validations_total{result}`; result = ok | missing | malformed | invalid |
    /// insufficient_scope.
    pub validations: IntCounterVec,
    /// `tokengate_config_reloads_total{result}`; result = ok | failed.
    pub config_reloads: IntCounterVec,
    /// `tokengate_client_auth_failures_total{endpoint}`; endpoint = token | revoke | introspect.
    pub client_auth_failures: IntCounterVec,
    /// `tokengate_upstream_failures_total{status}`; status = 502 (refused, reset or a broken
    /// answer) | 504 (no connection or no answer within the timeouts).
    pub upstream_failures: IntCounterVec,
    /// `tokengate_tokens_expired_total{kind}`; kind = access | refresh: expired tokens the
    /// sweeper dropped from the index.
    pub tokens_expired: IntCounterVec,
    /// `tokengate_store_purged_rows_total`: rows of expired tokens the sweeper deleted from the
    /// store.
    pub store_purged_rows: IntCounter,
    /// `tokengate_active_tokens`: access tokens in the index (set at scrape time).
    pub active_tokens: IntGauge,
    /// `tokengate_live_tokens`: access and refresh tokens in the index, what
    /// `oauth.max_live_tokens` bounds (set at scrape time).
    pub live_tokens: IntGauge,
    /// `tokengate_client_live_tokens{client_id}`: access and refresh tokens each client holds,
    /// what `oauth.max_live_tokens_per_client` bounds (set at scrape time; clients holding none
    /// are left out).
    pub client_live_tokens: IntGaugeVec,
    /// `tokengate_tokens_refused_total{bound}`: token requests refused at a bound on tokens held;
    /// bound = gateway (`oauth.max_live_tokens`, 503) | client (`..._per_client`, 429).
    pub tokens_refused_by: IntCounterVec,
    /// `tokengate_client_connections`: client connections open on the proxy listener (set at
    /// scrape time), what `server.max_connections` bounds.
    pub client_connections: IntGauge,
    /// `tokengate_connections_refused_total`: client connections answered 503 and closed because
    /// `server.max_connections` were open.
    pub connections_refused: IntCounter,
    /// `tokengate_store_write_seconds`: time from handing a batch to the store to its durable ack.
    pub store_write_seconds: Histogram,
    /// `tokengate_admin_revocations_total{filter}`: revocations answered by the admin API, by
    /// the filter's parts (`client_id`, `client_id+subject`, `token_id`, `issued_before`...).
    pub admin_revocations: IntCounterVec,
    /// `tokengate_upstream_healthy{route, server}`: 1 for a server in its route's rotation, 0 for
    /// one out of it (failing its health check, or skipped after a refused connection); set at
    /// scrape time.
    pub upstream_healthy: IntGaugeVec,
    /// Resolved `tokens_issued` children, indexed `[grant][format][mode]`.
    issued: [[[IntCounter; 3]; 2]; 3],
    revoked: [IntCounter; 5],
    validated: [IntCounter; 6],
    /// Resolved `tokens_refused_by` children: gateway, client.
    refused: [IntCounter; 2],
    auth_failed: [IntCounter; 3],
    upstream_failed: [IntCounter; 2],
}

/// `f(i)` for each index, collected into an array; stops at the first error.
fn resolve<T, const N: usize>(
    mut f: impl FnMut(usize) -> Result<T, prometheus::Error>,
) -> Result<[T; N], prometheus::Error> {
    let items: Vec<T> = (0..N).map(&mut f).collect::<Result<_, _>>()?;
    items
        .try_into()
        .map_err(|_| prometheus::Error::Msg("label table size mismatch".into()))
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
        let tokens_revoked = counter(
            "tokengate_tokens_revoked_total",
            "Revocations by cause: one per access token replaced (renewal) or over the cap (cap), one per \
             revocation request that revoked something (request), one per refresh token family revoked on reuse \
             (refresh_reuse), one per access or refresh token an admin revocation revoked (admin)",
            &["cause"],
        )?;
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
        let upstream_failures = counter(
            "tokengate_upstream_failures_total",
            "Proxied requests answered 502 (upstream refused, reset or answered badly) or 504 (upstream timed out)",
            &["status"],
        )?;
        let tokens_expired = counter(
            "tokengate_tokens_expired_total",
            "Expired tokens the sweeper dropped from the in-memory index, by kind (access, refresh)",
            &["kind"],
        )?;
        let store_purged_rows = IntCounter::new(
            "tokengate_store_purged_rows_total",
            "Rows of expired tokens the sweeper deleted from the durable store",
        )?;
        registry.register(Box::new(store_purged_rows.clone()))?;
        let active_tokens = IntGauge::new("tokengate_active_tokens", "Access tokens in the in-memory index")?;
        registry.register(Box::new(active_tokens.clone()))?;
        let live_tokens = IntGauge::new(
            "tokengate_live_tokens",
            "Access and refresh tokens in the in-memory index (what oauth.max_live_tokens bounds)",
        )?;
        registry.register(Box::new(live_tokens.clone()))?;
        let client_live_tokens = IntGaugeVec::new(
            Opts::new(
                "tokengate_client_live_tokens",
                "Access and refresh tokens a client holds (what oauth.max_live_tokens_per_client bounds)",
            ),
            &["client_id"],
        )?;
        registry.register(Box::new(client_live_tokens.clone()))?;
        let tokens_refused_by = IntCounterVec::new(
            Opts::new(
                "tokengate_tokens_refused_total",
                "Token requests refused at a bound on tokens held: gateway (oauth.max_live_tokens, 503) or client \
                 (oauth.max_live_tokens_per_client, 429)",
            ),
            &["bound"],
        )?;
        registry.register(Box::new(tokens_refused_by.clone()))?;
        let client_connections = IntGauge::new(
            "tokengate_client_connections",
            "Client connections open on the proxy listener (what server.max_connections bounds)",
        )?;
        registry.register(Box::new(client_connections.clone()))?;
        let connections_refused = IntCounter::new(
            "tokengate_connections_refused_total",
            "Client connections answered 503 and closed because server.max_connections were open",
        )?;
        registry.register(Box::new(connections_refused.clone()))?;
        let store_write_seconds = Histogram::with_opts(
            HistogramOpts::new("tokengate_store_write_seconds", "Durable store commit latency")
                .buckets(vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0]),
        )?;
        registry.register(Box::new(store_write_seconds.clone()))?;
        let admin_revocations = counter(
            "tokengate_admin_revocations_total",
            "Revocations answered by the admin API, by the parts of their filter (client_id, subject, scope, \
             token_id, issued_before, joined by +); the tokens they revoked are tokengate_tokens_revoked_total{cause=\"admin\"}",
            &["filter"],
        )?;
        let upstream_healthy = IntGaugeVec::new(
            Opts::new(
                "tokengate_upstream_healthy",
                "1 for a route's server in the rotation, 0 for one out of it (failed health check or refused connection)",
            ),
            &["route", "server"],
        )?;
        registry.register(Box::new(upstream_healthy.clone()))?;

        let issued = resolve(|g| {
            resolve(|f| {
                resolve(|m| {
                    tokens_issued.get_metric_with_label_values(&[GRANTS[g].as_str(), FORMATS[f].as_str(), MODES[m]])
                })
            })
        })?;
        let revoked = resolve(|i| tokens_revoked.get_metric_with_label_values(&[cause_label(CAUSES[i])]))?;
        let validated = resolve(|i| validations.get_metric_with_label_values(&[VALIDATION_RESULTS[i]]))?;
        let auth_failed = resolve(|i| client_auth_failures.get_metric_with_label_values(&[AUTH_ENDPOINTS[i]]))?;
        let upstream_failed = resolve(|i| upstream_failures.get_metric_with_label_values(&[["502", "504"][i]]))?;
        let refused = resolve(|i| tokens_refused_by.get_metric_with_label_values(&[["gateway", "client"][i]]))?;
        // Present at 0 from the start like the others (the reload service and the sweeper
        // increment them).
        for result in ["ok", "failed"] {
            config_reloads.get_metric_with_label_values(&[result])?;
        }
        for kind in ["access", "refresh"] {
            tokens_expired.get_metric_with_label_values(&[kind])?;
        }
        Ok(Metrics {
            registry,
            tokens_issued,
            tokens_revoked,
            validations,
            config_reloads,
            client_auth_failures,
            upstream_failures,
            tokens_expired,
            store_purged_rows,
            active_tokens,
            live_tokens,
            client_live_tokens,
            tokens_refused_by,
            client_connections,
            connections_refused,
            store_write_seconds,
            admin_revocations,
            upstream_healthy,
            issued,
            revoked,
            validated,
            refused,
            auth_failed,
            upstream_failed,
        })
    }

    /// Counts one token answer.
    pub fn issued(&self, grant: GrantType, format: TokenFormat, outcome: Outcome) {
        self.issued[grant_index(grant)][format_index(format)][mode_index(outcome)].inc();
    }

    /// Counts what one sweep removed.
    pub fn swept(&self, report: &SweepReport) {
        for (kind, n) in [("access", report.expired_access), ("refresh", report.expired_refresh)] {
            // Both series exist from the start (see `new`), so this finds them.
            if let Ok(c) = self.tokens_expired.get_metric_with_label_values(&[kind]) {
                c.inc_by(n as u64);
            }
        }
        self.store_purged_rows.inc_by(report.purged_rows);
    }

    /// Counts one token request refused at `bound`.
    pub fn tokens_refused(&self, bound: Bound) {
        self.refused[bound_index(bound)].inc();
    }

    /// Counts revocations.
    pub fn revoked(&self, cause: RevokeCause, n: u64) {
        if n > 0 {
            self.revoked[cause_index(cause)].inc_by(n);
        }
    }

    /// Counts one admin revocation with the filter parts `parts` that revoked `n` tokens.
    pub fn admin_revoked(&self, parts: &str, n: u64) {
        if let Ok(c) = self.admin_revocations.get_metric_with_label_values(&[parts]) {
            c.inc();
        }
        self.revoked(RevokeCause::Admin, n);
    }

    /// Counts one bearer validation at the gateway.
    pub fn validated(&self, result: Validation) {
        self.validated[validation_index(result)].inc();
    }

    /// Counts one failed client authentication; `endpoint` indexes [`AUTH_ENDPOINTS`].
    pub fn client_auth_failed(&self, endpoint: usize) {
        if let Some(c) = self.auth_failed.get(endpoint) {
            c.inc();
        }
    }

    /// Counts one proxied request that failed upstream with `status` (502 or 504; others are not
    /// upstream failures and are not counted).
    pub fn upstream_failed(&self, status: u16) {
        match status {
            502 => self.upstream_failed[0].inc(),
            504 => self.upstream_failed[1].inc(),
            _ => {}
        }
    }

    /// Sets `tokengate_upstream_healthy` to `(route, server, healthy)` for each server of the live
    /// routes; servers of routes gone leave the exposition.
    pub fn upstream_health<'a>(&self, servers: impl IntoIterator<Item = (&'a str, &'a str, bool)>) {
        self.upstream_healthy.reset();
        for (route, server, healthy) in servers {
            if let Ok(gauge) = self.upstream_healthy.get_metric_with_label_values(&[route, server]) {
                gauge.set(i64::from(healthy));
            }
        }
    }

    /// The Prometheus text exposition of every metric, with the gauges set from the index's
    /// counts of access and refresh tokens, and of tokens per client.
    pub fn render(
        &self,
        access_tokens: usize,
        refresh_tokens: usize,
        per_client: &[(Arc<str>, u64)],
    ) -> Result<Vec<u8>, prometheus::Error> {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.active_tokens.set(gauge(access_tokens));
        self.live_tokens
            .set(gauge(access_tokens.saturating_add(refresh_tokens)));
        // Clients that no longer hold tokens (or left the config) drop out of the exposition.
        self.client_live_tokens.reset();
        for (client, n) in per_client {
            self.client_live_tokens
                .get_metric_with_label_values(&[client])?
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        let mut out = Vec::with_capacity(8192);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
