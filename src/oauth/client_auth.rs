//! Client authentication at the OAuth endpoints (RFC 6749 section 2.3.1): HTTP Basic, or
//! `client_id` + `client_secret` in the form; never both. Secrets are compared as SHA-256
//! digests in constant time, and an unknown client costs the same work as a known one.
//!
//! What is and is not constant-time, and why that is enough: the client is found by its id in a
//! hash map, whose timing depends on the id; the id is not a secret (RFC 6749 section 2.2). The
//! secret is hashed whatever its content (only a length over [`MAX_CREDENTIAL_BYTES`], refused
//! up front, shows), and its digest is compared with `subtle`, so the time taken does not tell
//! how many leading bytes matched. Comparing digests rather than the secrets also hides the
//! stored secret's length.
//!
//! Malformed headers are `invalid_request` (400); a scheme other than Basic is an unsupported
//! authentication method, `invalid_client` (401, RFC 6749 section 5.2).

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::errors::OAuthError;
use super::form::Form;
use crate::config::model::Client;
use crate::config::Config;

/// Longest client id or secret accepted.
const MAX_CREDENTIAL_BYTES: usize = 1024;

/// Credentials as presented, before they are checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub secret: String,
}

fn bad(msg: &str) -> OAuthError {
    OAuthError::InvalidRequest(msg.into())
}

/// `application/x-www-form-urlencoded` decoding of one Basic credential part (RFC 6749 2.3.1).
fn form_decode(part: &str) -> Result<String, OAuthError> {
    super::form::decode_component(part.as_bytes()).map_err(|_| bad("Basic credentials must be UTF-8"))
}

/// Parses an `Authorization: Basic ...` header value.
pub fn parse_basic(header: &[u8]) -> Result<Credentials, OAuthError> {
    let text = std::str::from_utf8(header).map_err(|_| bad("Authorization header must be ASCII"))?;
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::InvalidClient);
    }
    let rest = rest.trim();
    if rest.len() > 4 * MAX_CREDENTIAL_BYTES {
        return Err(bad("Basic credentials too long"));
    }
    let decoded = STANDARD
        .decode(rest)
        .map_err(|_| bad("Basic credentials are not valid Base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad("Basic credentials must be UTF-8"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| bad("Basic credentials need client_id:secret"))?;
    Ok(Credentials {
        client_id: form_decode(id)?,
        secret: form_decode(secret)?,
    })
}

/// Finds the credentials of a request, refusing more than one method.
pub fn credentials(authorization: Option<&[u8]>, form: &Form) -> Result<Credentials, OAuthError> {
    let in_form = form.get("client_secret").is_some();
    let creds = match authorization {
        Some(h) => {
            if in_form {
                return Err(bad(
                    "use one client authentication method, not Basic and the form together",
                ));
            }
            let c = parse_basic(h)?;
            if form.get("client_id").is_some_and(|id| id != c.client_id) {
                return Err(bad("client_id in the form differs from the Basic credentials"));
            }
            c
        }
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => Credentials {
                client_id: id.into(),
                secret: secret.into(),
            },
            _ => return Err(OAuthError::InvalidClient),
        },
    };
    if creds.client_id.len() > MAX_CREDENTIAL_BYTES || creds.secret.len() > MAX_CREDENTIAL_BYTES {
        return Err(OAuthError::InvalidClient);
    }
    Ok(creds)
}

/// Checks `creds` against the configured clients.
pub fn verify<'c>(config: &'c Config, creds: &Credentials) -> Result<&'c Arc<Client>, OAuthError> {
    let digest: [u8; 32] = Sha256::digest(creds.secret.as_bytes()).into();
    match config.clients.get(&creds.client_id) {
        Some(client) if bool::from(digest.ct_eq(&client.secret_sha256)) => Ok(client),
        Some(_) => Err(OAuthError::InvalidClient),
        None => {
            // Same comparison work as for a known client.
            let _ = digest.ct_eq(&[0u8; 32]);
            Err(OAuthError::InvalidClient)
        }
    }
}

/// Hex SHA-256 of a client secret, as `secret_sha256` wants it.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(s)).into_bytes()
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let c = parse_basic(&basic("my%3Aapp:s%2Bc+ret")).unwrap();
        assert_eq!(
            c,
            Credentials {
                client_id: "my:app".into(),
                secret: "s+c ret".into()
            }
        );
        assert!(parse_basic(b"basic Zm9vOmJhcg==").is_ok(), "scheme is case-insensitive");
    }

    #[test]
    fn malformed_basic_is_invalid_request() {
        for h in [
            &b"Basic"[..],
            b"Basic !!!",
            b"Basic Zm9v",
            b"Basic \xff\xfe",
            b"Basic Zm9v\xffOmJhcg==",
            b"\xff Zm9vOmJhcg==",
            b"Basic Zm9vOmJhcg== Zm9vOmJhcg==",
            b"Basic /w==",
        ] {
            assert!(matches!(parse_basic(h), Err(OAuthError::InvalidRequest(_))), "{h:?}");
        }
        assert_eq!(
            parse_basic(b"Bearer abc"),
            Err(OAuthError::InvalidClient),
            "another scheme"
        );
        assert_eq!(parse_basic(b"Digest a=b"), Err(OAuthError::InvalidClient));
        assert_eq!(parse_basic(b"Bearer"), Err(OAuthError::InvalidClient));
        assert_eq!(parse_basic(b""), Err(OAuthError::InvalidClient));
        assert!(parse_basic(&basic("\u{0}:\u{0}")).is_ok());
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        let form = crate::oauth::form::parse(b"client_id=a&client_secret=b").unwrap();
        assert!(matches!(
            credentials(Some(&basic("a:b")), &form),
            Err(OAuthError::InvalidRequest(_))
        ));
        let form = crate::oauth::form::parse(b"client_id=a").unwrap();
        assert_eq!(credentials(None, &form).unwrap_err(), OAuthError::InvalidClient);
    }

    #[test]
    fn hash_secret_is_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
