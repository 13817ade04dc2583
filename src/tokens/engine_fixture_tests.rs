//! The engine as the engine's tests build it: on a SQLite store in a temporary folder, with an
//! EdDSA key, and the request those tests send unless they say otherwise.

use std::sync::Arc;

use super::index::TokenIndex;
use super::jwt::{JwtAlgorithm, JwtSigner};
use super::opaque::OpaqueCodec;
use super::record::now_ms;
use super::request::LiveLimits;
use super::service::{IssueParams, ServiceError, TokenService};
use crate::domain::audience::AudienceSet;
use crate::domain::format::TokenFormat;
use crate::domain::grant_type::{GrantSet, GrantType};
use crate::domain::key::{ScopeSet, TokenKey};
use crate::domain::policy::RenewPolicy;
use crate::store::sqlite::SqliteStore;
use crate::store::TokenStore;

pub(crate) fn params(format: TokenFormat, enable: bool) -> IssueParams<'static> {
    IssueParams {
        client_id: "app",
        format,
        grant: GrantType::ClientCredentials,
        subject: "",
        scope: ScopeSet::parse("a b").unwrap(),
        audience: AudienceSet::one("https://api.example").unwrap(),
        jkt: None,
        policy: RenewPolicy {
            enable,
            allowed_grant_types: GrantSet::of(&[GrantType::ClientCredentials]),
            max_active_tokens: 0,
        },
        access_ttl_secs: 3600,
        refresh_ttl_secs: None,
        issuer: "http://gw",
        limits: LiveLimits::default(),
    }
}

pub(crate) fn engine(dir: &std::path::Path, store: Arc<dyn TokenStore>) -> Arc<TokenService> {
    let signer = JwtSigner::load_or_generate(&dir.join("k.pem"), JwtAlgorithm::EdDSA).unwrap();
    Arc::new(TokenService::new(
        Arc::new(TokenIndex::new()),
        store,
        OpaqueCodec::new(&[1u8; 32]),
        signer,
    ))
}

pub(crate) fn sqlite(dir: &std::path::Path) -> Arc<dyn TokenStore> {
    Arc::new(SqliteStore::open(&dir.join("t.db")).unwrap())
}

pub(crate) fn valid(e: &TokenService, token: &str) -> bool {
    e.access_id(token)
        .and_then(|id| e.index().access(&id))
        .is_some_and(|r| r.is_valid_at(now_ms()))
}

/// A config that still allows every key.
pub(crate) fn allow_all(_: &TokenKey) -> Result<(), ServiceError> {
    Ok(())
}
