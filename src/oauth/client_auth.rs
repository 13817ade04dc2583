//! Client authentication at the OAuth endpoints: a secret (RFC 6749 section 2.3.1) by HTTP
//! Basic or as `client_id` + `client_secret` in the form, or a signed JWT assertion
//! (`private_key_jwt`, RFC 7523 section 2.2, checked in [`super::client_assertion`]); one
//! method per request. Secrets are compared as SHA-256 digests in constant time, and an
//! unknown client costs the same work as a known one. A client configured for one method that
//! presents another fails like a wrong secret (`invalid_client`).
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

use super::client_assertion::{self, AssertionError, ClientAssertion, Spent};
use super::errors::OAuthError;
use super::form::Form;
use super::replay::ReplayCache;
use crate::config::model::{Client, ClientAuth, SecretMethod};
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

/// What a request presents to authenticate its client, before it is checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// A secret, sent the way `method` says.
    Secret(Credentials, SecretMethod),
    /// A signed JWT (`client_assertion`), for the client it names.
    Assertion(ClientAssertion),
}

impl Presented {
    /// The client this request claims to be (not yet proven).
    pub fn client_id(&self) -> &str {
        match self {
            Presented::Secret(c, _) => &c.client_id,
            Presented::Assertion(a) => &a.client_id,
        }
    }
}

/// Finds the credentials of a request, refusing more than one method.
pub fn credentials(authorization: Option<&[u8]>, form: &Form) -> Result<Presented, OAuthError> {
    let in_form = form.get("client_secret").is_some();
    let assertion = form.get("client_assertion").is_some() || form.get("client_assertion_type").is_some();
    if assertion {
        if authorization.is_some() || in_form {
            return Err(bad(
                "use one client authentication method: a client_assertion, Basic or client_secret",
            ));
        }
        return client_assertion::presented(form).map(Presented::Assertion);
    }
    let (creds, method) = match authorization {
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
            (c, SecretMethod::Basic)
        }
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => (
                Credentials {
                    client_id: id.into(),
                    secret: secret.into(),
                },
                SecretMethod::Post,
            ),
            _ => return Err(OAuthError::InvalidClient),
        },
    };
    if creds.client_id.len() > MAX_CREDENTIAL_BYTES || creds.secret.len() > MAX_CREDENTIAL_BYTES {
        return Err(OAuthError::InvalidClient);
    }
    Ok(Presented::Secret(creds, method))
}

/// Checks what a request presented against the configured clients; an assertion's `jti` is
/// then spent in `replay` (at `now`, Unix seconds), and returned for a cluster to record.
pub fn verify<'c>(
    config: &'c Config,
    presented: &Presented,
    replay: &ReplayCache,
    now: u64,
) -> Result<(&'c Arc<Client>, Option<Spent>), OAuthError> {
    match presented {
        Presented::Secret(creds, method) => verify_secret(config, creds, *method).map(|c| (c, None)),
        Presented::Assertion(a) => {
            let client = config.clients.get(&a.client_id).ok_or(OAuthError::InvalidClient)?;
            let ClientAuth::PrivateKeyJwt(keys) = &client.auth else {
                log::debug!("client {:?} sent a client_assertion but has a secret", a.client_id);
                return Err(OAuthError::InvalidClient);
            };
            let issuer = config.oauth.issuer.trim_end_matches('/');
            let token_endpoint = format!("{issuer}/oauth2/token");
            let audiences = [token_endpoint.as_str(), issuer, config.oauth.issuer.as_str()];
            let spent = client_assertion::verify(a, keys, &audiences, replay, now).map_err(|e| {
                if e == AssertionError::CacheFull {
                    log::warn!("client {:?}: client_assertion refused: {e}", a.client_id);
                } else {
                    log::debug!("client {:?}: client_assertion refused: {e}", a.client_id);
                }
                OAuthError::from(e)
            })?;
            Ok((client, Some(spent)))
        }
    }
}

/// Checks a secret sent by `method`.
fn verify_secret<'c>(
    config: &'c Config,
    creds: &Credentials,
    method: SecretMethod,
) -> Result<&'c Arc<Client>, OAuthError> {
    let digest: [u8; 32] = Sha256::digest(creds.secret.as_bytes()).into();
    let known = config.clients.get(&creds.client_id);
    let expected = match known.map(|c| &c.auth) {
        Some(ClientAuth::Secret { sha256, method: only }) if only.is_none_or(|m| m == method) => Some(sha256),
        _ => None,
    };
    match (known, expected) {
        (Some(client), Some(sha256)) if bool::from(digest.ct_eq(sha256)) => Ok(client),
        (_, Some(_)) => Err(OAuthError::InvalidClient),
        (_, None) => {
            // Unknown, or not allowed this method: the same comparison work as for a known client.
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
        let assertion = b"client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
                          &client_assertion=a.b.c";
        let form = crate::oauth::form::parse(assertion).unwrap();
        assert!(matches!(
            credentials(Some(&basic("a:b")), &form),
            Err(OAuthError::InvalidRequest(_))
        ));
        let mut with_secret = assertion.to_vec();
        with_secret.extend_from_slice(b"&client_id=a&client_secret=b");
        let form = crate::oauth::form::parse(&with_secret).unwrap();
        assert!(matches!(credentials(None, &form), Err(OAuthError::InvalidRequest(_))));
    }

    #[test]
    fn the_way_a_secret_came_is_told() {
        let form = crate::oauth::form::parse(b"").unwrap();
        assert!(matches!(
            credentials(Some(&basic("a:b")), &form),
            Ok(Presented::Secret(_, SecretMethod::Basic))
        ));
        let form = crate::oauth::form::parse(b"client_id=a&client_secret=b").unwrap();
        let presented = credentials(None, &form).unwrap();
        assert!(matches!(presented, Presented::Secret(_, SecretMethod::Post)));
        assert_eq!(presented.client_id(), "a");
    }

    #[test]
    fn hash_secret_is_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
