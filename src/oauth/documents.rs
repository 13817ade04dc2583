//! Published documents: RFC 8414 authorization server metadata.

use bytes::Bytes;

use crate::config::Config;

/// The metadata document for `config`, serialised. It has no
/// `token_endpoint_auth_signing_alg_values_supported`: RFC 8414 section 2 defines it for client
/// authentication by signed JWT (`private_key_jwt`, `client_secret_jwt`), which tokengate does not
/// offer. The access tokens' algorithm is in each key of the JWKS (`alg`).
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
        "dpop_signing_alg_values_supported": super::dpop::ALGORITHMS,
    });
    Bytes::from(doc.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn metadata_names_the_endpoints_and_only_the_auth_methods_offered() {
        let text = "[oauth]\nissuer = \"https://auth.example/\"\n";
        let config = crate::config::parse_str(text, std::path::Path::new("/base")).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&metadata(&config)).unwrap();
        assert_eq!(doc["token_endpoint"], "https://auth.example/oauth2/token");
        assert_eq!(doc["jwks_uri"], "https://auth.example/oauth2/jwks");
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post"])
        );
        assert!(
            doc.get("token_endpoint_auth_signing_alg_values_supported").is_none(),
            "only for private_key_jwt / client_secret_jwt, which are not offered"
        );
    }
}
