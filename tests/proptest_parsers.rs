//! Property tests of the parsers that face the network or the operator: the form parser, the
//! Basic-auth parser, the bearer parser and the config loader take arbitrary bytes without
//! panicking, refuse with a 4xx-class error, and read back what a well-behaved client wrote.
//! The lockout keeps its memory bound under any sequence of failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use proptest::prelude::*;
use tokengate::config::model::LockoutSettings;
use tokengate::gateway::bearer::{self, BearerError, MAX_BEARER_BYTES};
use tokengate::gateway::path;
use tokengate::oauth::client_auth;
use tokengate::oauth::errors::OAuthError;
use tokengate::oauth::form::{self, MAX_BODY_BYTES};
use tokengate::oauth::lockout::{Lockout, Subject};

fn client_error(e: &OAuthError) -> bool {
    (400..500).contains(&e.status())
}

/// Bytes that look like a form body: mostly form characters, with escapes and stray bytes.
fn form_like() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(b"abcxyz_=&+%0123456789ABCDEFf".to_vec()),
            1 => any::<u8>(),
        ],
        0..300,
    )
}

proptest! {
    #[test]
    fn form_parse_never_panics(body in prop_oneof![form_like(), prop::collection::vec(any::<u8>(), 0..600)]) {
        if let Err(e) = form::parse(&body) {
            prop_assert!(client_error(&e), "{e:?}");
        }
    }

    #[test]
    fn form_parse_reads_back_distinct_parameters(params in prop::collection::btree_map("\\PC{1,12}", "\\PC{0,40}", 0..20)) {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
        let f = form::parse(body.as_bytes()).unwrap();
        for (k, v) in &params {
            // Empty values count as omitted (RFC 6749 section 3.1).
            prop_assert_eq!(f.get(k), (!v.is_empty()).then_some(v.as_str()));
        }
    }

    #[test]
    fn form_parse_refuses_any_repeated_parameter(name in "[a-z_]{1,10}", a in "\\PC{0,10}", b in "\\PC{0,10}") {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([(&name, &a), (&name, &b)])
            .finish();
        prop_assert!(matches!(form::parse(body.as_bytes()), Err(OAuthError::InvalidRequest(_))));
    }

    #[test]
    fn form_parse_refuses_every_oversized_body(extra in 1usize..4096) {
        let body = vec![b'a'; MAX_BODY_BYTES + extra];
        prop_assert_eq!(form::parse(&body).unwrap_err(), OAuthError::PayloadTooLarge);
    }

    #[test]
    fn content_type_check_never_panics(v in prop::option::of(prop::collection::vec(any::<u8>(), 0..80))) {
        let _ = form::check_content_type(v.as_deref());
    }

    #[test]
    fn parse_basic_never_panics(h in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        "(Basic|basic|BASIC|Bearer) [A-Za-z0-9+/=:! ]{0,80}".prop_map(String::into_bytes),
    ]) {
        if let Err(e) = client_auth::parse_basic(&h) {
            prop_assert!(client_error(&e), "{e:?}");
        }
    }

    #[test]
    fn parse_basic_reads_back_any_form_encoded_credentials(id in "\\PC{0,30}", secret in "\\PC{0,30}") {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let header = format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(&id), enc(&secret))));
        let c = client_auth::parse_basic(header.as_bytes()).unwrap();
        prop_assert_eq!((c.client_id, c.secret), (id, secret));
    }

    #[test]
    fn credentials_never_panic(
        h in prop::option::of(prop::collection::vec(any::<u8>(), 0..120)),
        body in form_like(),
    ) {
        if let Ok(f) = form::parse(&body) {
            if let Err(e) = client_auth::credentials(h.as_deref(), &f) {
                prop_assert!(client_error(&e), "{e:?}");
            }
        }
    }

    #[test]
    fn bearer_extract_never_panics_and_returns_one_b64token(h in prop::option::of(prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        "(Bearer|bearer|Basic) {0,2}[A-Za-z0-9._~+/= -]{0,60}".prop_map(String::into_bytes),
    ])) {
        match bearer::extract(h.as_deref()) {
            Ok(t) => {
                prop_assert!(!t.is_empty() && t.len() <= MAX_BEARER_BYTES);
                prop_assert!(!t.contains(' '));
                prop_assert!(h.as_deref().unwrap().windows(t.len()).any(|w| w == t.as_bytes()));
            }
            Err(e) => prop_assert!(matches!(e.reply().status, 400 | 401)),
        }
    }

    #[test]
    fn bearer_extract_reads_back_any_b64token(t in "[A-Za-z0-9._~+/-]{1,100}={0,2}", scheme in "(Bearer|bearer|BEARER)") {
        let one = format!("{scheme} {t}");
        prop_assert_eq!(bearer::extract(Some(one.as_bytes())), Ok(t.as_str()));
        prop_assert_eq!(
            bearer::extract(Some(format!("{scheme} {t} {t}").as_bytes())).map(str::len),
            Err(BearerError::Malformed("one bearer token of b64token characters expected"))
        );
    }

    #[test]
    fn config_parse_never_panics_on_any_text(text in "\\PC{0,400}") {
        let _ = tokengate::config::parse_str(&text, Path::new("/base"));
    }

    #[test]
    fn config_parse_never_panics_on_toml_shaped_text(text in toml_like()) {
        let _ = tokengate::config::parse_str(&text, Path::new("/base"));
    }

    #[test]
    fn lockout_memory_stays_bounded(ops in prop::collection::vec((0u8..3, 0u16..500, 0u64..200_000), 1..300)) {
        let lockout = Lockout::with_capacity(16);
        let limits = LockoutSettings { max_failures: 2, ..LockoutSettings::default() };
        let t0 = Instant::now();
        let mut offsets: Vec<u64> = ops.iter().map(|o| o.2).collect();
        offsets.sort_unstable();
        for ((kind, key, _), ms) in ops.iter().zip(offsets) {
            let now = t0 + Duration::from_millis(ms);
            let name = key.to_string();
            let from = Some(std::net::IpAddr::from([10, 1, 0, (key % 7) as u8]));
            let subject = match kind {
                0 => Subject::Client(&name, from),
                1 => Subject::User(&name, from),
                _ => Subject::Address(std::net::IpAddr::from([10, 0, (key >> 8) as u8, *key as u8])),
            };
            lockout.record_failure(&limits, subject, now);
            let _ = lockout.check(&limits, subject, now);
            prop_assert!(lockout.tracked() <= 3 * 16);
        }
    }

    /// Whatever the client spells, the path a route is chosen by has no `.` or `..` segment, no
    /// empty segment but a trailing one, no escape of an unreserved character, no backslash;
    /// and it is its own normal form (the fast path agrees with the slow one).
    #[test]
    fn normalised_paths_are_normal(p in path_like()) {
        if let Ok(out) = path::normalize(&p) {
            prop_assert!(out.starts_with('/'), "{p:?} -> {out:?}");
            prop_assert!(!out.contains('\\'), "{p:?} -> {out:?}");
            let segments: Vec<&str> = out[1..].split('/').collect();
            for (i, seg) in segments.iter().enumerate() {
                prop_assert!(*seg != "." && *seg != "..", "{p:?} -> {out:?}");
                prop_assert!(!seg.is_empty() || i + 1 == segments.len(), "{p:?} -> {out:?}");
            }
            for esc in out.match_indices('%') {
                let hex = &out[esc.0 + 1..esc.0 + 3];
                let byte = u8::from_str_radix(hex, 16).unwrap();
                prop_assert!(!(byte.is_ascii_alphanumeric() || b"-._~/\\".contains(&byte)), "{p:?} -> {out:?}");
                prop_assert_eq!(hex, hex.to_ascii_uppercase());
            }
            prop_assert_eq!(path::normalize(&out), Ok(Cow::Borrowed(out.as_ref())));
        }
    }
}

/// Request paths made of the segments that path tricks use, mostly with a leading slash.
fn path_like() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        6 => prop::sample::select(vec!["a", "b", "", ".", "..", "a.b", "..."]),
        3 => prop::sample::select(vec!["%2e", "%2E%2e", ".%2e", "%61", "%3f", "~", "é", "%C3%A9"]),
        1 => prop::sample::select(vec!["%2f", "%5C", "%", "%z", "\\", "%00"]),
    ];
    (prop::bool::weighted(0.9), prop::collection::vec(segment, 0..8))
        .prop_map(|(slash, segs)| format!("{}{}", if slash { "/" } else { "" }, segs.join("/")))
}

/// Text shaped like a config file: the real section and key names with values of every type
/// (upstreams are IP:port or colon-free so that no test ever waits on a DNS lookup).
fn toml_like() -> impl Strategy<Value = String> {
    let section = prop::sample::select(vec![
        "[server]",
        "[store]",
        "[oauth]",
        "[oauth.jwt]",
        "[oauth.opaque.renew_token_without_revoking_existing]",
        "[[clients]]",
        "[[users]]",
        "[[routes]]",
        "[oauth.jwt.renew_token_without_revoking_existing]",
    ]);
    let key = prop::sample::select(vec![
        "listen",
        "threads",
        "metrics_listen",
        "tls_cert",
        "tls_key",
        "data_dir",
        "access_log",
        "path",
        "url",
        "sweep_interval_secs",
        "issuer",
        "access_token_ttl_secs",
        "refresh_token_ttl_secs",
        "jwt_algorithm",
        "lockout_max_failures",
        "lockout_window_secs",
        "lockout_secs",
        "lockout_by_address",
        "enable",
        "allowed_grant_types",
        "max_active_tokens",
        "id",
        "secret_sha256",
        "token_type",
        "grant_types",
        "scopes",
        "username",
        "password_hash",
        "path_prefix",
        "auth",
        "refresh_tokens_for_client_credentials",
    ]);
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "\\PC{0,20}".prop_map(|s| format!("{s:?}")),
        prop::sample::select(vec![
            "\"client_credentials\"",
            "\"password\"",
            "\"jwt\"",
            "\"RS256\"",
            "\"/a\""
        ])
        .prop_map(String::from),
        prop::collection::vec("[a-z_:]{0,12}", 0..4).prop_map(|v| format!("{v:?}")),
        prop::sample::select(vec![
            "\"$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA\"",
            "\"0:0\"",
            "[1, \"a\"]"
        ])
        .prop_map(String::from),
    ];
    let line = prop_oneof![
        1 => section.prop_map(String::from),
        4 => (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => ("127\\.0\\.0\\.1:[0-9]{1,5}|[a-z]{0,8}").prop_map(|u| format!("upstream = {u:?}")),
    ];
    prop::collection::vec(line, 0..30).prop_map(|lines| {
        // Drop keys repeated within one table so that some texts get past TOML into validation.
        let mut seen = BTreeMap::new();
        let mut table = 0;
        lines
            .into_iter()
            .filter(|l| {
                if l.starts_with('[') {
                    table += 1;
                    return true;
                }
                let k = l.split(' ').next().unwrap_or("").to_string();
                seen.insert((table, k), ()).is_none()
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}
