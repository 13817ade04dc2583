//! The request path the gateway routes on, normalised once (RFC 3986 section 6.2.2) and then
//! forwarded as such, so that the route whose rules were applied is the resource the upstream
//! serves. Without it `/public/../api/x` would pass as the public route while the upstream
//! (nginx, most frameworks) serves `/api/x`: a token check bypassed by spelling.
//!
//! Normalising means: percent-encoded unreserved characters are decoded (`%61` is `a`, `%2e`
//! is `.`), other escapes get upper-case hex digits, `.` and `..` segments are resolved, and
//! repeated slashes merged. A path an upstream could read in more than one way is refused
//! instead: an encoded `/`, `\` or NUL, a raw `\`, a malformed escape, or `..` above the root.
//!
//! A `;` is refused too. Servlet containers (Tomcat, Jetty, Spring) strip `;parameters` from each
//! segment before they match, so `/public/..;/api/x` is `/api/x` to them and `/api/orders;x/1` is
//! `/api/orders/1`: a route chosen by the text with the `;` would not be the resource served.

use std::borrow::Cow;

/// Why a path is refused (400 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request target must be a path starting with / or an absolute http(s) URL")]
    NotAbsolute,
    #[error("the request target's scheme is not this listener's")]
    WrongScheme,
    #[error("a ; (path parameter) in the request path")]
    PathParameter,
    #[error("malformed percent-encoding in the request path")]
    BadEscape,
    #[error("an encoded slash, backslash or NUL, or a backslash, in the request path")]
    Ambiguous,
    #[error("the request path climbs above the root")]
    AboveRoot,
}

/// Whether `path` is already in normal form (the common case: nothing to copy).
fn is_normal(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if rest.bytes().any(|b| b == b'%' || b == b'\\' || b == b';') {
        return false;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if (seg.is_empty() && !last) || seg == "." || seg == ".." {
            return false;
        }
    }
    true
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 section 2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes the escapes of unreserved characters and upper-cases the others' hex digits.
fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => return Err(PathError::Ambiguous),
            b';' => return Err(PathError::PathParameter),
            b'%' => {
                let (hi, lo) = bytes
                    .get(i + 1)
                    .and_then(|&h| hex(h))
                    .zip(bytes.get(i + 2).and_then(|&l| hex(l)))
                    .ok_or(PathError::BadEscape)?;
                let v = (hi << 4) | lo;
                if matches!(v, b'/' | b'\\' | 0) {
                    return Err(PathError::Ambiguous);
                }
                if is_unreserved(v) {
                    out.push(char::from(v));
                } else {
                    out.push('%');
                    out.push(char::from(b"0123456789ABCDEF"[usize::from(hi)]));
                    out.push(char::from(b"0123456789ABCDEF"[usize::from(lo)]));
                }
                i += 3;
            }
            _ => {
                // Copy the run up to the next byte of interest (keeps multi-byte characters whole).
                let end = bytes[i..]
                    .iter()
                    .position(|&b| b == b'%' || b == b'\\' || b == b';')
                    .map_or(bytes.len(), |n| i + n);
                out.push_str(&path[i..end]);
                i = end;
            }
        }
    }
    Ok(out)
}

/// The normal form of a request path; borrowed when `path` already is one.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if is_normal(path) {
        return Ok(Cow::Borrowed(path));
    }
    let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let decoded = decode_unreserved(rest)?;
    let mut kept: Vec<&str> = Vec::new();
    // Whether the result ends in a slash: `/a/`, `/a/.` and `/a/b/..` all name the folder.
    let mut trailing = false;
    for seg in decoded.split('/') {
        trailing = true;
        match seg {
            "" | "." => {}
            ".." => {
                kept.pop().ok_or(PathError::AboveRoot)?;
            }
            _ => {
                kept.push(seg);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for seg in &kept {
        out.push('/');
        out.push_str(seg);
    }
    if trailing || kept.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_borrowed() {
        for p in [
            "/",
            "/api",
            "/api/",
            "/api/orders/42",
            "/.well-known/x",
            "/a/..b/c.",
            "/a/.../b",
        ] {
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(q)) if q == p), "{p}");
        }
    }

    #[test]
    fn paths_are_normalised() {
        for (p, want) in [
            ("/public/../api/x", "/api/x"),
            ("/public/%2e%2e/api/x", "/api/x"),
            ("/public/%2E%2E/api/x", "/api/x"),
            ("/public/.%2e/api/x", "/api/x"),
            ("/api/./orders/./42", "/api/orders/42"),
            ("//api//orders///42", "/api/orders/42"),
            ("/api/orders/.", "/api/orders/"),
            ("/api/orders/x/..", "/api/orders/"),
            ("/api/..", "/"),
            ("/%61pi/x", "/api/x"),
            ("/api/%7euser", "/api/~user"),
            ("/api/a%20b", "/api/a%20b"),
            ("/api/a%3fb", "/api/a%3Fb"),
            ("/api/%C3%A9", "/api/%C3%A9"),
            ("/api/é/./x", "/api/é/x"),
            ("/.", "/"),
            ("//", "/"),
        ] {
            assert_eq!(normalize(p).as_deref(), Ok(want), "{p}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for (p, e) in [
            ("/public/..%2fapi/x", PathError::Ambiguous),
            ("/public/..%2Fapi/x", PathError::Ambiguous),
            ("/public/..%5capi/x", PathError::Ambiguous),
            ("/public\\..\\api", PathError::Ambiguous),
            ("/api/%00", PathError::Ambiguous),
            ("/api/%", PathError::BadEscape),
            ("/api/%2", PathError::BadEscape),
            ("/api/%zz", PathError::BadEscape),
            ("/..", PathError::AboveRoot),
            ("/api/../../x", PathError::AboveRoot),
            ("/%2e%2e/api", PathError::AboveRoot),
            ("/public/..;/api/orders/1", PathError::PathParameter),
            ("/api/orders/..;/admin/1", PathError::PathParameter),
            ("/api/orders;jsessionid=x/1", PathError::PathParameter),
            ("/api/.;x/1", PathError::PathParameter),
            ("/api/x;", PathError::PathParameter),
            ("api/x", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ] {
            assert_eq!(normalize(p), Err(e), "{p}");
        }
    }
}
