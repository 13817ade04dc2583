//! Token formats a client can be given, and the algorithms a JWT is signed with.

use std::fmt;

/// How a client's access tokens look on the wire. Chosen per client (`token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenFormat {
    /// RFC 9068 JWT access token, signed with the gateway's key.
    Jwt,
    /// Random reference token whose text is `base64url(id || HMAC(server_key, id))`.
    Opaque,
}

impl TokenFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenFormat::Jwt => "jwt",
            TokenFormat::Opaque => "opaque",
        }
    }

    pub fn parse(name: &str) -> Option<TokenFormat> {
        match name {
            "jwt" => Some(TokenFormat::Jwt),
            "opaque" => Some(TokenFormat::Opaque),
            _ => None,
        }
    }
}

impl fmt::Display for TokenFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JWS algorithms tokengate signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    RS256,
    ES256,
    EdDSA,
}

impl JwtAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::EdDSA => "EdDSA",
        }
    }

    pub fn parse(name: &str) -> Option<JwtAlgorithm> {
        [JwtAlgorithm::RS256, JwtAlgorithm::ES256, JwtAlgorithm::EdDSA]
            .into_iter()
            .find(|a| a.as_str() == name)
    }
}
