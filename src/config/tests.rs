//! Config loading: the bundled example, defaults, and refusals that name the key.

use super::*;
use crate::domain::grant_type::{GrantSet, GrantType};
use std::path::Path;

const CLIENT: &str = r#"
[[clients]]
id = "c"
secret_sha256 = "cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf"
grant_types = ["client_credentials"]
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_str(text, Path::new("/base"))
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn bundled_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/gateway.toml");
    let c = load_file(&path).unwrap();
    assert_eq!(c.start.process.listen, "127.0.0.1:8080");
    assert_eq!(c.clients.len(), 2);
    assert_eq!(c.users.len(), 1);
    assert_eq!(c.routes.len(), 2);
    assert!(!c.oauth.jwt_policy.enable);
}

#[test]
fn a_postgres_url_selects_that_store_without_connecting() {
    let c = parse(&format!(
        "[store]\nurl = \"postgres://gw:secret@db.internal:5433/tokens\"\n{CLIENT}"
    ))
    .unwrap();
    assert_eq!(
        c.start.store.backend,
        crate::store::Backend::Postgres {
            url: "postgres://gw:secret@db.internal:5433/tokens".into(),
            pool_size: 8,
        }
    );
    let shown = format!("{:?} {}", c.start.store.backend, c.start.store.backend.describe());
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("db.internal:5433/tokens"), "{shown}");
}

#[test]
fn defaults_apply_when_sections_are_absent() {
    let c = parse(CLIENT).unwrap();
    assert_eq!(c.start.process.threads, 2);
    assert_eq!(c.server.upstream_connect_timeout.as_secs(), 5);
    assert_eq!(c.server.upstream_timeout.as_secs(), 60);
    assert!(c.server.trusted_proxies.is_empty(), "no proxy is trusted by default");
    assert_eq!(c.oauth.access_token_ttl_secs, 3600);
    assert_eq!(
        c.start.store.backend,
        crate::store::Backend::Sqlite {
            path: Path::new("/base/data/tokens.db").into()
        }
    );
    for p in [&c.oauth.jwt_policy, &c.oauth.opaque_policy] {
        assert!(!p.enable);
        assert_eq!(p.allowed_grant_types, GrantSet::of(&[GrantType::ClientCredentials]));
        assert_eq!(p.max_active_tokens, 0);
    }
    let client = &c.clients["c"];
    assert_eq!(client.token_format, crate::domain::format::TokenFormat::Jwt);
}

#[test]
fn lockout_is_on_by_default_and_configurable() {
    let c = parse(CLIENT).unwrap();
    assert_eq!(c.oauth.lockout, crate::config::model::LockoutSettings::default());
    assert_eq!(c.oauth.lockout.max_failures, 10);
    let c = parse(&format!(
        "[oauth]\nlockout_max_failures = 0\nlockout_window_secs = 5\nlockout_secs = 7\nlockout_by_address = false\n{CLIENT}"
    ))
    .unwrap();
    let l = c.oauth.lockout;
    assert_eq!(l.max_failures, 0);
    assert_eq!((l.window.as_secs(), l.duration.as_secs(), l.by_address), (5, 7, false));
}

#[test]
fn the_bounds_on_tokens_held_have_defaults_and_can_be_set_or_lifted() {
    let c = parse(CLIENT).unwrap();
    assert_eq!(
        (c.oauth.max_live_tokens, c.oauth.max_live_tokens_per_client),
        (10_000_000, 1_000_000)
    );
    let c = parse(&format!(
        "[oauth]\nmax_live_tokens = 0\nmax_live_tokens_per_client = 500\n{CLIENT}"
    ))
    .unwrap();
    assert_eq!((c.oauth.max_live_tokens, c.oauth.max_live_tokens_per_client), (0, 500));
    assert!(err(&format!("[oauth]\nmax_live_tokens_per_client = -1\n{CLIENT}")).contains("max_live_tokens_per_client"));
    // A client's own bound replaces the default for that client only.
    assert_eq!(parse(CLIENT).unwrap().clients["c"].live_token_bound(500), 500);
    let own = CLIENT.replace("[[clients]]\n", "[[clients]]\nmax_live_tokens = 7\n");
    assert_ne!(own, CLIENT);
    let c = parse(&format!("[oauth]\nmax_live_tokens_per_client = 500\n{own}")).unwrap();
    assert_eq!(c.clients["c"].live_token_bound(c.oauth.max_live_tokens_per_client), 7);
}

#[test]
fn section_without_enable_means_disabled_and_given_list_replaces_default() {
    let c = parse(&format!(
        "[oauth.jwt.renew_token_without_revoking_existing]\nallowed_grant_types = [\"password\"]\n{CLIENT}"
    ))
    .unwrap();
    assert!(!c.oauth.jwt_policy.enable);
    assert_eq!(
        c.oauth.jwt_policy.allowed_grant_types,
        GrantSet::of(&[GrantType::Password])
    );
}

#[test]
fn unknown_grant_type_names_the_key() {
    let e = err(&format!(
        "[oauth.opaque.renew_token_without_revoking_existing]\nenable = true\nallowed_grant_types = [\"implicit\"]\n{CLIENT}"
    ));
    assert!(
        e.contains("oauth.opaque.renew_token_without_revoking_existing.allowed_grant_types"),
        "{e}"
    );
    assert!(e.contains("implicit"), "{e}");
}

#[test]
fn unknown_key_is_named() {
    let e = err(&format!(
        "[oauth.jwt.renew_token_without_revoking_existing]\nenabled = true\n{CLIENT}"
    ));
    assert!(e.contains("enabled"), "{e}");
}

#[test]
fn typographic_quotes_get_a_hint() {
    let e = err(&format!(
        "[oauth.jwt.renew_token_without_revoking_existing]\nenable = true\nallowed_grant_types = [\u{201C}client_credentials\u{201D}, \u{201C}password\u{201D}]\n{CLIENT}"
    ));
    assert!(e.contains("straight quotes"), "{e}");
}

#[test]
fn bad_values_are_refused_with_their_key() {
    let cases = [
        ("[server]\nlisten = \"nowhere\"", "server.listen"),
        ("[server]\nthreads = 0", "server.threads"),
        ("[oauth]\njwt_algorithm = \"HS256\"", "oauth.jwt_algorithm"),
        ("[oauth]\naccess_token_ttl_secs = 0", "oauth.access_token_ttl_secs"),
        (
            "[[routes]]\npath_prefix = \"api\"\nupstream = \"127.0.0.1:1\"",
            "routes[0].path_prefix",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nupstream = \"nohost\"",
            "routes[0].upstream",
        ),
        (
            "[[routes]]\npath_prefix = \"/a/../b\"\nupstream = \"127.0.0.1:1\"",
            "routes[0].path_prefix",
        ),
        (
            "[[routes]]\npath_prefix = \"/a%2Fb\"\nupstream = \"127.0.0.1:1\"",
            "routes[0].path_prefix",
        ),
        (
            "[[routes]]\npath_prefix = \"/a\"\nupstream = \"127.0.0.1:1\"\nauth = false\nscopes = [\"x\"]",
            "routes[0].scopes",
        ),
        (
            "[[users]]\nusername = \"u\"\npassword_hash = \"plain\"",
            "users[0].password_hash",
        ),
        ("[store]\nurl = \"mysql://x\"", "store.url"),
        ("[store]\nurl = \"postgres://db/t\"\npool_size = 0", "store.pool_size"),
        ("[store]\nurl = \"postgres://db/t\"\npath = \"t.db\"", "store.url"),
        ("[store]\nstale_after_secs = 5", "stale_after_secs"),
        ("[server]\nupstream_timeout_secs = 0", "server.upstream_timeout_secs"),
        (
            "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]",
            "server.trusted_proxies",
        ),
        (
            "[server]\ntrusted_proxies = [\"proxy.internal\"]",
            "server.trusted_proxies",
        ),
        ("[server]\nupstream_timeout_secs = 3601", "server.upstream_timeout_secs"),
        (
            "[server]\nupstream_connect_timeout_secs = 0",
            "server.upstream_connect_timeout_secs",
        ),
        ("[oauth]\nlockout_window_secs = 0", "oauth.lockout_window_secs"),
        ("[oauth]\nlockout_secs = 86401", "oauth.lockout_secs"),
        ("[oauth]\nlockout_max_failures = -1", "lockout_max_failures"),
    ];
    for (text, key) in cases {
        let e = err(&format!("{text}\n{CLIENT}"));
        assert!(e.contains(key), "{key}: {e}");
    }
    let e = err("[[clients]]\nid = \"c\"\nsecret_sha256 = \"xyz\"\ngrant_types = [\"password\"]");
    assert!(e.contains("clients[0].secret_sha256"), "{e}");
    let e = err(&format!("{CLIENT}{CLIENT}"));
    assert!(e.contains("duplicate client"), "{e}");
}

#[test]
fn arbitrary_text_never_panics() {
    for text in ["", "[", "[[clients]]", "a = 1", "[oauth]\nissuer = 3", "\u{0}\u{FFFF}"] {
        let _ = parse(text);
    }
}

#[test]
fn previous_jwt_keys_resolve_from_the_config_folder_and_need_a_restart() {
    assert!(parse(CLIENT).unwrap().start.keys.jwt_previous_keys.is_empty());
    let c = parse(&format!(
        "[oauth]\njwt_previous_keys = [\"keys/2025.pem\", \"/etc/old.pem\"]\n{CLIENT}"
    ))
    .unwrap();
    assert_eq!(
        c.start.keys.jwt_previous_keys,
        [Path::new("/base/keys/2025.pem"), Path::new("/etc/old.pem")]
    );
    let reloaded = parse(CLIENT).unwrap();
    assert_eq!(c.start.changes(&reloaded.start), ["oauth.jwt_previous_keys"]);
}

#[test]
fn audiences_default_to_the_issuer_and_are_checked_uris() {
    let c = parse(&format!("[oauth]\nissuer = \"https://id.example\"\n{CLIENT}")).unwrap();
    assert_eq!(c.oauth.default_audience.as_str(), "https://id.example");
    let c = parse(&format!("[oauth]\ndefault_audience = \"urn:api\"\n{CLIENT}")).unwrap();
    assert_eq!(c.oauth.default_audience.as_str(), "urn:api");
    let route = "[[routes]]\npath_prefix = \"/o\"\nupstream = \"127.0.0.1:9\"\n";
    for (text, key) in [
        (
            format!("[oauth]\ndefault_audience = \"api\"\n{CLIENT}"),
            "oauth.default_audience",
        ),
        (
            format!("{CLIENT}audiences = [\"https://a#b\"]\n"),
            "clients[0].audiences",
        ),
        (format!("{CLIENT}{route}audience = \"x y\"\n"), "routes[0].audience"),
        (
            format!("{CLIENT}{route}auth = false\naudience = \"https://o\"\n"),
            "routes[0].audience",
        ),
    ] {
        assert!(err(&text).contains(key), "{key}: {}", err(&text));
    }
    let c = parse(&format!(
        "{CLIENT}audiences = [\"https://o\"]\n{route}audience = \"https://o\"\n"
    ))
    .unwrap();
    let client = &c.clients["c"];
    assert!(c.may_target(client, "https://o"));
    assert!(c.may_target(client, c.oauth.default_audience.as_str()));
    assert!(!c.may_target(client, "https://p"));
}
