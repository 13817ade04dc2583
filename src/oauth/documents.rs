//! Published documents: RFC 8414 authorization server metadata.

use bytes::Bytes;

use crate::config::client_auth::ASSERTION_ALGORITHMS;
use crate::config::Config;

/// Client authentication methods, at every endpoint that authenticates clients.
const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "private_key_jwt"];

/// The metadata document for `config`, serialised. The `*_auth_signing_alg_values_supported`
/// are the algorithms a `private_key_jwt` assertion may be signed with; the access tokens'
/// algorithm is in each key of the JWKS (`alg`).
pub fn metadata(config: &Config) -> Bytes {
    let issuer = config.oauth.issuer.trim_end_matches('/');
    let algorithms: Vec<String> = ASSERTION_ALGORITHMS.iter().map(|a| format!("{a:?}")).collect();
    let doc = serde_json::json!({
        "issuer": config.oauth.issuer,
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "grant_types_supported": ["client_credentials", "password", "refresh_token"],
        "response_types_supported": [],
        "dpop_signing_alg_values_supported": super::dpop::ALGORITHMS,
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": algorithms,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": algorithms,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": algorithms,
    });
    Bytes::from(doc.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn metadata_names_the_endpoints_the_auth_methods_and_the_assertion_algorithms() {
        let text = "[oauth]\nissuer = \"https://auth.example/\"\n";
        let config = crate::config::parse_str(text, std::path::Path::new("/base")).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&metadata(&config)).unwrap();
        assert_eq!(doc["token_endpoint"], "https://auth.example/oauth2/token");
        assert_eq!(doc["jwks_uri"], "https://auth.example/oauth2/jwks");
        let methods = serde_json::json!(["client_secret_basic", "client_secret_post", "private_key_jwt"]);
        let algorithms = serde_json::json!(["RS256", "PS256", "ES256", "EdDSA"]);
        for endpoint in ["token", "revocation", "introspection"] {
            assert_eq!(doc[format!("{endpoint}_endpoint_auth_methods_supported")], methods);
            assert_eq!(
                doc[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")],
                algorithms
            );
        }
    }
}
