//! How a client authenticates at the OAuth endpoints, checked: a shared secret known by its
//! SHA-256 (`client_secret_basic`, `client_secret_post`), or a signed JWT assertion checked
//! against the client's public keys (`private_key_jwt`, RFC 7523 section 2.2).
//!
//! The keys come from `jwks` (a JWK Set inline) or `jwks_file` (a JWK Set in a file, read at
//! every load and reload, so a broken file refuses the reload). Only public signature keys of
//! the algorithms the token endpoint checks are accepted: a JWK carrying a private member (`d`,
//! `p`, `q`, ...) or a symmetric key (`oct`) is a config error, so a private key pasted by
//! mistake is never kept.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::checks::{invalid, resolve, ConfigError};
use super::file::ClientEntry;

/// The signature algorithms a client assertion may use, as the metadata document lists them.
pub const ASSERTION_ALGORITHMS: [Algorithm; 4] =
    [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA];
/// Keys one client may list.
pub const MAX_CLIENT_KEYS: usize = 20;
/// Largest `jwks_file` read.
const MAX_JWKS_BYTES: u64 = 1 << 20;
/// JWK members that only a private (or symmetric) key has (RFC 7518 section 6).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// How a client authenticates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// A shared secret, compared as its SHA-256 in constant time. `method`: the one way it may be
    /// sent (`token_endpoint_auth_method`); `None`: Basic or the form, as the client chooses.
    Secret {
        sha256: [u8; 32],
        method: Option<SecretMethod>,
    },
    /// A JWT signed with one of these keys (`private_key_jwt`); the client holds no secret.
    PrivateKeyJwt(Arc<ClientKeys>),
}

/// How a secret is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretMethod {
    /// `Authorization: Basic` (`client_secret_basic`).
    Basic,
    /// `client_id` and `client_secret` in the form (`client_secret_post`).
    Post,
}

/// A client's public keys for `private_key_jwt`.
#[derive(Debug)]
pub struct ClientKeys {
    keys: Vec<ClientKey>,
}

/// One public key of a client, with the algorithms it may verify.
#[derive(Debug)]
pub struct ClientKey {
    pub kid: Option<String>,
    pub algorithms: &'static [Algorithm],
    pub key: DecodingKey,
}

impl ClientKeys {
    /// The keys that may check a JWS with header `kid` and `alg`: with a `kid`, only the key of
    /// that `kid`; without one, every key of the algorithm.
    pub fn candidates<'a>(&'a self, kid: Option<&'a str>, alg: Algorithm) -> impl Iterator<Item = &'a ClientKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.algorithms.contains(&alg) && (kid.is_none() || k.kid.as_deref() == kid))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Parses a JWK Set (RFC 7517 section 5) of public signature keys; the error says which key
    /// is at fault and why.
    pub fn parse(text: &str) -> Result<ClientKeys, String> {
        let set: Value = serde_json::from_str(text).map_err(|e| format!("not a JSON JWK Set: {e}"))?;
        let list = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("a JWK Set needs a \"keys\" array")?;
        if list.is_empty() || list.len() > MAX_CLIENT_KEYS {
            return Err(format!("must list 1 to {MAX_CLIENT_KEYS} keys"));
        }
        let mut keys: Vec<ClientKey> = Vec::with_capacity(list.len());
        for (j, jwk) in list.iter().enumerate() {
            let key = public_key(jwk).map_err(|e| format!("keys[{j}]: {e}"))?;
            if key.kid.is_some() && keys.iter().any(|k| k.kid == key.kid) {
                return Err(format!(
                    "keys[{j}]: kid {:?} is used twice",
                    key.kid.unwrap_or_default()
                ));
            }
            keys.push(key);
        }
        Ok(ClientKeys { keys })
    }
}

/// One JWK, checked to be a public signature key of a supported algorithm.
fn public_key(jwk: &Value) -> Result<ClientKey, String> {
    let m = jwk.as_object().ok_or("a JWK must be a JSON object")?;
    if m.get("kty").and_then(Value::as_str) == Some("oct") {
        return Err(
            "a symmetric key (\"oct\") is a shared secret; list the client's public keys (RSA, EC or OKP)".into(),
        );
    }
    if let Some(private) = PRIVATE_MEMBERS.iter().find(|p| m.contains_key(**p)) {
        return Err(format!(
            "has the private member \"{private}\": list only public keys (a private key must never leave the client)"
        ));
    }
    let text = |name: &str| -> Result<Option<&str>, String> {
        match m.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("\"{name}\" must be a string")),
        }
    };
    if let Some(usage) = text("use")? {
        if usage != "sig" {
            return Err(format!("\"use\" is {usage:?}; a client assertion key has \"sig\""));
        }
    }
    let kid = text("kid")?.map(str::to_string);
    let alg = text("alg")?;
    let kty = text("kty")?.ok_or("\"kty\" is missing")?;
    let (algorithms, key): (&'static [Algorithm], DecodingKey) = match kty {
        "RSA" => {
            let n = bytes(m, "n")?;
            let e = bytes(m, "e")?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if !(2048..=8192).contains(&bits) {
                return Err(format!(
                    "an RSA key must have 2048 to 8192 bits, this one has about {bits}"
                ));
            }
            if e.is_empty() || e.len() > 8 {
                return Err("\"e\" is not a usable RSA exponent".into());
            }
            let algorithms: &'static [Algorithm] = match alg {
                None => &[Algorithm::RS256, Algorithm::PS256],
                Some("RS256") => &[Algorithm::RS256],
                Some("PS256") => &[Algorithm::PS256],
                Some(other) => return Err(format!("\"alg\" {other:?}: an RSA key here is RS256 or PS256")),
            };
            (algorithms, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        "EC" => {
            curve(m, "P-256")?;
            for c in ["x", "y"] {
                if bytes(m, c)?.len() != 32 {
                    return Err(format!("\"{c}\" of a P-256 key is 32 bytes"));
                }
            }
            if alg.is_some_and(|a| a != "ES256") {
                return Err(format!("\"alg\" {:?}: a P-256 key is ES256", alg.unwrap_or_default()));
            }
            let key = DecodingKey::from_ec_components(text("x")?.unwrap_or_default(), text("y")?.unwrap_or_default())
                .map_err(|e| format!("not a usable P-256 key: {e}"))?;
            (&[Algorithm::ES256], key)
        }
        "OKP" => {
            curve(m, "Ed25519")?;
            if bytes(m, "x")?.len() != 32 {
                return Err("\"x\" of an Ed25519 key is 32 bytes".into());
            }
            if alg.is_some_and(|a| a != "EdDSA") {
                return Err(format!(
                    "\"alg\" {:?}: an Ed25519 key is EdDSA",
                    alg.unwrap_or_default()
                ));
            }
            let key = DecodingKey::from_ed_components(text("x")?.unwrap_or_default())
                .map_err(|e| format!("not a usable Ed25519 key: {e}"))?;
            (&[Algorithm::EdDSA], key)
        }
        other => return Err(format!("\"kty\" {other:?} is not RSA, EC (P-256) or OKP (Ed25519)")),
    };
    Ok(ClientKey { kid, algorithms, key })
}

/// A base64url member, decoded.
fn bytes(m: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = m
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("\"{name}\" is missing"))?;
    B64.decode(text.trim_end_matches('='))
        .map_err(|_| format!("\"{name}\" is not base64url"))
}

fn curve(m: &Map<String, Value>, want: &str) -> Result<(), String> {
    match m.get("crv").and_then(Value::as_str) {
        Some(c) if c == want => Ok(()),
        Some(c) => Err(format!("curve {c:?} is not supported; use {want}")),
        None => Err("\"crv\" is missing".into()),
    }
}

/// The authentication of `[[clients]]` entry `key` (`clients[i]`): its method, its secret or
/// its keys (`jwks_file` read now, relative to `base`).
pub(super) fn client_auth(key: &str, c: &ClientEntry, base: &Path) -> Result<ClientAuth, ConfigError> {
    let method = c.token_endpoint_auth_method.as_deref();
    let method_key = || format!("{key}.token_endpoint_auth_method");
    let secret_method = match method {
        Some("private_key_jwt") => return private_key_jwt(key, c, base).map(ClientAuth::PrivateKeyJwt),
        None => None,
        Some("client_secret_basic") => Some(SecretMethod::Basic),
        Some("client_secret_post") => Some(SecretMethod::Post),
        Some(other) => {
            return Err(invalid(
                method_key(),
                format!("{other:?} is not client_secret_basic, client_secret_post or private_key_jwt"),
            ))
        }
    };
    if let Some(k) = [("jwks", c.jwks.is_some()), ("jwks_file", c.jwks_file.is_some())]
        .iter()
        .find(|(_, set)| *set)
    {
        return Err(invalid(
            format!("{key}.{}", k.0),
            "keys are for token_endpoint_auth_method = \"private_key_jwt\"; this client authenticates with a secret",
        ));
    }
    let text = c.secret_sha256.as_deref().ok_or_else(|| {
        invalid(
            format!("{key}.secret_sha256"),
            "is required (make it with `tokengate hash-secret`), unless token_endpoint_auth_method = \"private_key_jwt\"",
        )
    })?;
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut sha256).map_err(|_| {
        invalid(
            format!("{key}.secret_sha256"),
            "must be 64 hex digits (make it with `tokengate hash-secret`)",
        )
    })?;
    Ok(ClientAuth::Secret {
        sha256,
        method: secret_method,
    })
}

fn private_key_jwt(key: &str, c: &ClientEntry, base: &Path) -> Result<Arc<ClientKeys>, ConfigError> {
    if c.secret_sha256.is_some() {
        return Err(invalid(
            format!("{key}.secret_sha256"),
            "a private_key_jwt client has no secret: remove it (one authentication method per client)",
        ));
    }
    let parsed = match (&c.jwks, &c.jwks_file) {
        (Some(inline), None) => ClientKeys::parse(inline).map_err(|e| invalid(format!("{key}.jwks"), e)),
        (None, Some(file)) => {
            let path = resolve(base, file);
            read_jwks(&path)
                .and_then(|text| ClientKeys::parse(&text).map_err(|e| format!("{}: {e}", path.display())))
                .map_err(|e| invalid(format!("{key}.jwks_file"), e))
        }
        (Some(_), Some(_)) => Err(invalid(format!("{key}.jwks"), "jwks and jwks_file both set; keep one")),
        (None, None) => Err(invalid(
            format!("{key}.jwks_file"),
            "private_key_jwt needs the client's public keys: jwks_file or jwks",
        )),
    };
    parsed.map(Arc::new)
}

fn read_jwks(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_JWKS_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_JWKS_BYTES {
        return Err(format!("{} is larger than {MAX_JWKS_BYTES} bytes", path.display()));
    }
    Ok(text)
}

#[cfg(test)]
#[path = "client_auth_tests.rs"]
mod tests;
