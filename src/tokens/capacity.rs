//! The bound on tokens held at once (`oauth.max_live_tokens`): a memory guard, so one client
//! looping on multi-mode issuance (or on refreshes, whose spent tokens are kept until they
//! expire) cannot grow the index until the machine runs out of memory and every client's
//! tokens go with the process. At the bound, requests that would add a token are refused
//! (503); those that replace one pass, and tokens already issued keep working.

use std::sync::atomic::{AtomicU64, Ordering};

use super::index::TokenIndex;
use super::record::now_ms;
use super::request::ServiceError;

/// Refusals are logged at most once per this many milliseconds: a flood must not flood the log.
const LOG_EVERY_MS: u64 = 10_000;

/// The check, and when it last logged.
#[derive(Default)]
pub struct Capacity {
    logged_at_ms: AtomicU64,
}

impl Capacity {
    /// `Err(Full)` when `index` holds `max` tokens or more, access and refresh together (`max`
    /// 0 = no limit). Requests on different keys may pass it at the same moment, so the index
    /// can go past `max` by the requests in flight, no more.
    pub fn check(&self, index: &TokenIndex, max: u64) -> Result<(), ServiceError> {
        if max == 0 {
            return Ok(());
        }
        let live = (index.access_len() + index.refresh_len()) as u64;
        if live < max {
            return Ok(());
        }
        let now = now_ms();
        let last = self.logged_at_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= LOG_EVERY_MS
            && self
                .logged_at_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!(
                "the gateway holds {live} tokens (oauth.max_live_tokens = {max}): requests for more are answered 503 \
                 until tokens are revoked or expire"
            );
        }
        Err(ServiceError::Full)
    }
}
