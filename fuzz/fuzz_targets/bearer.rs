//! The RFC 6750 bearer parser on arbitrary `Authorization` bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::gateway::bearer;

fuzz_target!(|data: &[u8]| {
    match bearer::extract(Some(data)) {
        Ok(token) => assert!(!token.is_empty() && token.len() <= bearer::MAX_BEARER_BYTES),
        Err(e) => assert!(matches!(e.reply().status, 400 | 401)),
    }
});
