//! HTTP Basic client authentication on arbitrary bytes: the header alone, and with a form (the
//! input split at its first NUL into header and body).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::oauth::{client_auth, form};

fuzz_target!(|data: &[u8]| {
    if let Err(e) = client_auth::parse_basic(data) {
        assert!((400..500).contains(&e.status()), "{e:?}");
    }
    let (header, body) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(f) = form::parse(body) {
        if let Err(e) = client_auth::credentials(Some(header), &f) {
            assert!((400..500).contains(&e.status()), "{e:?}");
        }
    }
});
