//! The OAuth endpoints' form parser and content-type check on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::oauth::form;

fuzz_target!(|data: &[u8]| {
    let _ = form::check_content_type(Some(data));
    if let Err(e) = form::parse(data) {
        assert!((400..500).contains(&e.status()), "{e:?}");
    }
});
