//! The request target as the client sent it (RFC 9112 section 3.2), read from its raw bytes.
//!
//! The route is chosen, and the token checked, by the path read here; the upstream is always
//! sent that same path (normalised, see [`super::path`]) with the query, never the raw target.
//! Only origin-form (`/path?query`) and absolute-form (`http://host/path?query`, whose scheme
//! must be the listener's) are accepted: `api/x`, `*`, `?x` and an authority alone are refused
//! with 400, as a server that reads them one way while the upstream reads them another would
//! let a request skip its route's token check.

use crate::domain::path::{self, PathError};
use crate::reply::Reply;

/// The 400 answer to a target refused by [`route`].
pub fn refusal(e: PathError) -> Reply {
    let body = serde_json::json!({"error": "invalid_request", "error_description": e.to_string()});
    Reply::json_no_store(400, body.to_string())
}

/// Where a request goes: the path its route is chosen by, and the target the upstream is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The normalised path, when it is not the request URI's path as pingora parsed it (the
    /// common case costs no copy).
    pub path: Option<String>,
    /// The target for the upstream, when it is not the raw one.
    pub upstream: Option<String>,
}

/// Reads, checks and normalises a raw request target; `uri_path` is the path pingora parsed
/// from it, used as is when it is the normal form.
pub fn route(raw: &[u8], uri_path: &str, https: bool) -> Result<Routed, PathError> {
    let target = parse(raw, https)?;
    let normal = path::normalize(target.path)?;
    let upstream = upstream_target(raw, &normal, target.query);
    let path = (*normal != *uri_path).then(|| normal.into_owned());
    Ok(Routed { path, upstream })
}

/// The parts of a request target the gateway routes and forwards by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The path, not yet normalised; `/` for an absolute-form target without one.
    pub path: &'a str,
    /// The query, without its `?`.
    pub query: Option<&'a str>,
}

/// Reads a raw request target. `https` tells the listener's scheme, which an absolute-form
/// target must name.
pub fn parse(raw: &[u8], https: bool) -> Result<Target<'_>, PathError> {
    let raw = std::str::from_utf8(raw).map_err(|_| PathError::Ambiguous)?;
    // A fragment is not part of a request target (pingora drops it from the forwarded one too).
    let raw = raw.split_once('#').map_or(raw, |(before, _)| before);
    if raw.starts_with('/') {
        return Ok(split_query(raw));
    }
    let rest = strip_scheme(raw, https)?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    if authority_end == 0 {
        return Err(PathError::NotAbsolute);
    }
    let rest = &rest[authority_end..];
    Ok(match rest.strip_prefix('?') {
        Some(query) => Target {
            path: "/",
            query: Some(query),
        },
        None if rest.is_empty() => Target { path: "/", query: None },
        None => split_query(rest),
    })
}

/// The part of an absolute-form target after `scheme://`; the scheme must be the listener's.
fn strip_scheme(raw: &str, https: bool) -> Result<&str, PathError> {
    let (scheme, rest) = raw.split_once("://").ok_or(PathError::NotAbsolute)?;
    let expected = if https { "https" } else { "http" };
    if scheme.eq_ignore_ascii_case(expected) {
        Ok(rest)
    } else if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        Err(PathError::WrongScheme)
    } else {
        Err(PathError::NotAbsolute)
    }
}

fn split_query(target: &str) -> Target<'_> {
    match target.split_once('?') {
        Some((path, query)) => Target {
            path,
            query: Some(query),
        },
        None => Target {
            path: target,
            query: None,
        },
    }
}

/// The target to send upstream: `path` and the query; `None` when `raw` already is exactly
/// that (the common case: nothing to allocate or rewrite).
pub fn upstream_target(raw: &[u8], path: &str, query: Option<&str>) -> Option<String> {
    let same = match raw.strip_prefix(path.as_bytes()) {
        Some(rest) => match query {
            Some(q) => rest.first() == Some(&b'?') && &rest[1..] == q.as_bytes(),
            None => rest.is_empty(),
        },
        None => false,
    };
    if same {
        return None;
    }
    Some(match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t<'a>(path: &'a str, query: Option<&'a str>) -> Target<'a> {
        Target { path, query }
    }

    #[test]
    fn origin_form_is_read_as_is() {
        assert_eq!(parse(b"/api/x", false), Ok(t("/api/x", None)));
        assert_eq!(parse(b"/api/x?a=1&b", false), Ok(t("/api/x", Some("a=1&b"))));
        assert_eq!(parse(b"/api/x?", false), Ok(t("/api/x", Some(""))));
        assert_eq!(parse(b"/api/x#frag", false), Ok(t("/api/x", None)));
        assert_eq!(parse(b"/a?b?c", false), Ok(t("/a", Some("b?c"))));
    }

    #[test]
    fn absolute_form_gives_its_path() {
        assert_eq!(parse(b"http://gw/api/x?q", false), Ok(t("/api/x", Some("q"))));
        assert_eq!(parse(b"HTTP://gw:8080/api/x", false), Ok(t("/api/x", None)));
        assert_eq!(parse(b"http://gw", false), Ok(t("/", None)));
        assert_eq!(parse(b"http://gw?x=1", false), Ok(t("/", Some("x=1"))));
        assert_eq!(parse(b"https://gw/api", true), Ok(t("/api", None)));
    }

    #[test]
    fn other_forms_are_refused() {
        for raw in [
            &b"api/orders/1"[..],
            b"x/../api/orders/1",
            b"127.0.0.1:8080",
            b"?x",
            b"*",
            b"",
            b"ftp://gw/api",
            b"http:///api",
            b"foo:bar://gw/api",
            b"/api/\xff",
        ] {
            assert!(parse(raw, false).is_err(), "{:?}", String::from_utf8_lossy(raw));
        }
        assert_eq!(parse(b"https://gw/api", false), Err(PathError::WrongScheme));
        assert_eq!(parse(b"http://gw/api", true), Err(PathError::WrongScheme));
    }

    #[test]
    fn routes_by_the_normal_path_and_forwards_it() {
        let plain = |path: Option<&str>, up: Option<&str>| Routed {
            path: path.map(str::to_string),
            upstream: up.map(str::to_string),
        };
        assert_eq!(route(b"/api/x?q", "/api/x", false), Ok(plain(None, None)));
        assert_eq!(
            route(b"/public/../api/x?q", "/public/../api/x", false),
            Ok(plain(Some("/api/x"), Some("/api/x?q")))
        );
        assert_eq!(
            route(b"http://gw/api/x", "/api/x", false),
            Ok(plain(None, Some("/api/x")))
        );
        // Should pingora's parsed path ever differ from the raw one, the raw one decides.
        assert_eq!(route(b"/api/x", "/", false), Ok(plain(Some("/api/x"), None)));
        assert_eq!(route(b"api/orders/1", "/", false), Err(PathError::NotAbsolute));
        assert_eq!(
            route(b"/public/..;/api", "/public/..;/api", false),
            Err(PathError::PathParameter)
        );
    }

    #[test]
    fn refusals_answer_400_invalid_request() {
        let r = refusal(PathError::AboveRoot);
        assert_eq!(r.status, 400);
        assert!(String::from_utf8_lossy(&r.body).contains("\"invalid_request\""));
    }

    #[test]
    fn upstream_target_is_rewritten_only_when_it_differs() {
        assert_eq!(upstream_target(b"/api/x", "/api/x", None), None);
        assert_eq!(upstream_target(b"/api/x?a=1", "/api/x", Some("a=1")), None);
        assert_eq!(upstream_target(b"/api/x?", "/api/x", Some("")), None);
        assert_eq!(upstream_target(b"/api/x#f", "/api/x", None).as_deref(), Some("/api/x"));
        assert_eq!(
            upstream_target(b"http://gw/api/x?a", "/api/x", Some("a")).as_deref(),
            Some("/api/x?a")
        );
        assert_eq!(
            upstream_target(b"/a/../api/x", "/api/x", None).as_deref(),
            Some("/api/x")
        );
        assert_eq!(upstream_target(b"/api/xy", "/api/x", None).as_deref(), Some("/api/x"));
    }
}
