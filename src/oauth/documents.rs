//! Published documents: RFC 8414 authorization server metadata.

use bytes::Bytes;

use crate::config::Config;

/// The metadata document for `config`, serialised.
pub fn metadata(config: &Config) -> Bytes {
    let issuer = config.oauth.issuer.trim_end_matches('/');
    let doc = serde_json::json!({
        "issuer": config.oauth.issuer,
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "grant_types_supported": ["client_credentials", "password", "refresh_token"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "token_endpoint_auth_signing_alg_values_supported": [config.oauth.jwt_algorithm.as_str()],
    });
    Bytes::from(doc.to_string())
}
