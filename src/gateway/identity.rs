//! Who the upstream is told made a request: the bearer credential is taken off and the token's
//! identity put in its place (`X-Client-Id`, `X-Subject`, `X-Scope`). Whatever a client sends
//! under those names is dropped, so an identity cannot be forged, on public routes too.

use http::HeaderName;
use pingora::http::RequestHeader;

use crate::tokens::record::AccessRecord;

/// Removed by parsed name (no parse per request); inserted by `&'static str`, which pingora
/// keeps as the on-the-wire case without copying (a `HeaderName` would be title-cased into a new
/// buffer first).
static X_CLIENT_ID: HeaderName = HeaderName::from_static("x-client-id");
static X_SUBJECT: HeaderName = HeaderName::from_static("x-subject");
static X_SCOPE: HeaderName = HeaderName::from_static("x-scope");

/// Sets the identity headers of a request about to go upstream: those of `identity` (the token
/// that let it through), or none on a public route. `Authorization` never goes upstream.
pub fn set_headers(req: &mut RequestHeader, identity: Option<&AccessRecord>) -> pingora::Result<()> {
    remove(req, &http::header::AUTHORIZATION);
    let Some(rec) = identity else {
        for h in [&X_CLIENT_ID, &X_SUBJECT, &X_SCOPE] {
            remove(req, h);
        }
        return Ok(());
    };
    // `insert_header` replaces every value a client sent under the same name, so only a header
    // that is not set needs removing (each edit hashes into two header maps).
    req.insert_header("X-Client-Id", &*rec.key.client_id)?;
    if rec.key.subject.is_empty() {
        remove(req, &X_SUBJECT);
    } else {
        req.insert_header("X-Subject", &*rec.key.subject)?;
    }
    req.insert_header("X-Scope", rec.key.scope.as_str())?;
    Ok(())
}

/// Removes every `name` header. When there is none (the usual case for headers a client must not
/// send) this costs one lookup; pingora's `remove_header` looks in two maps.
pub(super) fn remove(req: &mut RequestHeader, name: &HeaderName) {
    if req.headers.contains_key(name) {
        req.remove_header(name);
    }
}
