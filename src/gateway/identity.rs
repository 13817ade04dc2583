//! Who the upstream is told made a request: the bearer credential is taken off and the token's
//! identity put in its place (`X-Client-Id`, `X-Subject`, `X-Scope`). Whatever a client sends
//! under those names is dropped, so an identity cannot be forged, on public routes too.
//!
//! So is a header spelled with `_` for `-` (`X_Subject`): CGI-style servers (WSGI, PHP, many Java
//! stacks) read both spellings as one variable (`HTTP_X_SUBJECT`), so `X_Subject: admin` would
//! reach them beside, or in place of, the gateway's `X-Subject`.

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use crate::domain::key::TokenKey;

/// Parsed once: removed by these names, and inserted under them with their wire spelling beside
/// (pingora's `insert_header` would parse a name per request, into a new allocation).
static X_CLIENT_ID: HeaderName = HeaderName::from_static("x-client-id");
static X_SUBJECT: HeaderName = HeaderName::from_static("x-subject");
static X_SCOPE: HeaderName = HeaderName::from_static("x-scope");

/// How many headers the gateway may add to a request going upstream: the identity (3) and the
/// forwarding headers (3). Room for them is made at once ([`reserve_room`]).
const ADDED_AT_MOST: usize = 6;

/// Headers the gateway writes for the upstream (here and in [`super::forwarded`]).
const MANAGED: [&str; 7] = [
    "x-client-id",
    "x-subject",
    "x-scope",
    "x-real-ip",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// Whether `name` (lower case, as parsed) is a managed header's name with some `-` written `_`.
fn is_underscored_managed(name: &str) -> bool {
    MANAGED.iter().any(|managed| {
        managed.len() == name.len()
            && managed
                .bytes()
                .zip(name.bytes())
                .all(|(m, n)| m == n || (m == b'-' && n == b'_'))
    })
}

/// Drops every client header that a CGI-style upstream would read as a managed one.
pub fn drop_underscored_lookalikes(req: &mut RequestHeader) {
    if !req.headers.keys().any(|name| name.as_str().contains('_')) {
        return;
    }
    let forged: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|name| is_underscored_managed(name.as_str()))
        .cloned()
        .collect();
    for name in &forged {
        req.remove_header(name);
    }
}

/// The identity header values of one token key, built once per key and connection (see
/// [`super::last_token`]): cloning them shares their bytes.
#[derive(Clone)]
pub struct IdentityValues {
    client_id: HeaderValue,
    /// `None` for a token without a resource owner (`client_credentials`).
    subject: Option<HeaderValue>,
    scope: HeaderValue,
}

impl IdentityValues {
    /// The values for the token key `key`.
    pub fn of(key: &TokenKey) -> pingora::Result<IdentityValues> {
        let subject = match key.subject.is_empty() {
            true => None,
            false => Some(value(&key.subject)?),
        };
        Ok(IdentityValues {
            client_id: value(&key.client_id)?,
            subject,
            scope: value(key.scope.as_str())?,
        })
    }
}

fn value(text: &str) -> pingora::Result<HeaderValue> {
    HeaderValue::from_str(text)
        .map_err(|_| pingora::Error::explain(pingora::ErrorType::InvalidHTTPHeader, "invalid identity header value"))
}

/// Sets the identity headers of a request about to go upstream: those of the token that let it
/// through, or none on a public route. `Authorization` never goes upstream.
pub fn set_headers(req: &mut RequestHeader, identity: Option<IdentityValues>) -> pingora::Result<()> {
    remove(req, &http::header::AUTHORIZATION);
    let Some(values) = identity else {
        for h in [&X_CLIENT_ID, &X_SUBJECT, &X_SCOPE] {
            remove(req, h);
        }
        return Ok(());
    };
    // An insert replaces every value a client sent under the same name, so only a header that
    // is not set needs removing (each edit hashes into two header maps).
    req.insert_parsed_header(&X_CLIENT_ID, "X-Client-Id", values.client_id)?;
    match values.subject {
        Some(subject) => req.insert_parsed_header(&X_SUBJECT, "X-Subject", subject)?,
        None => remove(req, &X_SUBJECT),
    }
    req.insert_parsed_header(&X_SCOPE, "X-Scope", values.scope)
}

/// Makes room in the request's header maps for every header the gateway may add, so that they
/// grow once, not at each insert that crosses a threshold.
pub fn reserve_room(req: &mut RequestHeader) -> pingora::Result<()> {
    req.try_reserve_headers(ADDED_AT_MOST)
}

/// Removes every `name` header. When there is none (the usual case for headers a client must not
/// send) this costs one lookup; pingora's `remove_header` looks in two maps.
pub(super) fn remove(req: &mut RequestHeader, name: &HeaderName) {
    if req.headers.contains_key(name) {
        req.remove_header(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underscored_spellings_of_managed_headers_are_dropped() {
        let mut req = RequestHeader::build("GET", b"/api", None).unwrap();
        for (name, value) in [
            ("X_Subject", "admin"),
            ("x_client_id", "other"),
            ("X_Scope", "all"),
            ("X_Real_IP", "10.0.0.1"),
            ("X_Forwarded_For", "10.0.0.1"),
            ("X-Forwarded_Proto", "https"),
            ("X_My_Header", "kept"),
            ("Accept", "*/*"),
        ] {
            req.append_header(name.to_string(), value).unwrap();
        }
        drop_underscored_lookalikes(&mut req);
        let mut left: Vec<&str> = req.headers.keys().map(|n| n.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x_my_header"]);
    }
}
