//! The bounds on tokens held at once: a memory guard for the gateway (`oauth.max_live_tokens`),
//! so one client looping on multi-mode issuance (or on refreshes, whose spent tokens are kept
//! until they expire) cannot grow the index until the machine runs out of memory and every
//! client's tokens go with the process; and a share per client
//! (`oauth.max_live_tokens_per_client`), so that such a client runs into its own bound before the
//! gateway's and the other clients still get tokens. At a bound, requests that would add a token
//! are refused (503 for the gateway's, 429 for a client's); those that replace one pass, and
//! tokens already issued keep working.

use std::sync::atomic::{AtomicU64, Ordering};

use super::index::TokenIndex;
use super::record::now_ms;
use super::request::{LiveLimits, ServiceError};

/// Refusals are logged at most once per this many milliseconds (per bound): a flood must not
/// flood the log.
const LOG_EVERY_MS: u64 = 10_000;

/// The check, and when each bound last logged.
#[derive(Default)]
pub struct Capacity {
    total_logged_at_ms: AtomicU64,
    client_logged_at_ms: AtomicU64,
}

impl Capacity {
    /// `Err(ClientFull)` when `client_id` holds `limits.per_client` tokens or more, else
    /// `Err(Full)` when the index holds `limits.total` or more. Requests on different keys may
    /// pass at the same moment, so a count can go past its bound by the requests in flight, no
    /// more.
    pub fn check(&self, index: &TokenIndex, limits: LiveLimits, client_id: &str) -> Result<(), ServiceError> {
        if limits.per_client != 0 {
            let held = index.client_len(client_id);
            if held >= limits.per_client {
                if claim_log_turn(&self.client_logged_at_ms) {
                    log::warn!(
                        "client {client_id:?} holds {held} tokens (oauth.max_live_tokens_per_client = {}): its \
                         requests for more are answered 429 until its tokens are revoked or expire",
                        limits.per_client
                    );
                }
                return Err(ServiceError::ClientFull);
            }
        }
        if limits.total == 0 {
            return Ok(());
        }
        let live = (index.access_len() + index.refresh_len()) as u64;
        if live < limits.total {
            return Ok(());
        }
        if claim_log_turn(&self.total_logged_at_ms) {
            log::warn!(
                "the gateway holds {live} tokens (oauth.max_live_tokens = {}): requests for more are answered 503 \
                 until tokens are revoked or expire",
                limits.total
            );
        }
        Err(ServiceError::Full)
    }
}

/// Whether this caller may log now: at most one caller per [`LOG_EVERY_MS`].
fn claim_log_turn(logged_at_ms: &AtomicU64) -> bool {
    let now = now_ms();
    let last = logged_at_ms.load(Ordering::Relaxed);
    now.saturating_sub(last) >= LOG_EVERY_MS
        && logged_at_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}
