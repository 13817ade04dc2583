//! Checks on a request head, before it is routed anywhere (OAuth endpoint or upstream).
//!
//! pingora itself refuses (400, then closes) a head over 1 MiB or with more than 256 header
//! lines; anything below that would reach the endpoints and be forwarded upstream. The gateway
//! answers 431 well before that, refuses a request with two `Authorization` headers, which
//! would otherwise be read as whichever came first, and an HTTP/1.1 request without `Host`.

use pingora::http::RequestHeader;

use super::bearer::BearerError;
use crate::oauth::errors::OAuthError;
use crate::reply::Reply;

/// Largest request head accepted: request target plus header names and values.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Bytes of the head as counted against [`MAX_HEAD_BYTES`] (each header line with its `: ` and
/// line end).
pub fn head_bytes(req: &RequestHeader) -> usize {
    let target = req.uri.path_and_query().map_or(0, |p| p.as_str().len());
    req.headers
        .iter()
        .fold(target, |n, (name, value)| n + name.as_str().len() + value.len() + 4)
}

/// Checks a request head: the answer refusing it, or else the value of its one `Authorization`
/// header, if it has one (so the bearer check does not look the header up a second time).
pub fn check_head(req: &RequestHeader) -> Result<Option<&[u8]>, Reply> {
    if head_bytes(req) > MAX_HEAD_BYTES {
        let body = serde_json::json!({
            "error": "invalid_request",
            "error_description": format!("request header fields larger than {MAX_HEAD_BYTES} bytes"),
        });
        return Err(Reply::json_no_store(431, body.to_string()));
    }
    if req.version == http::Version::HTTP_11 && !req.headers.contains_key(http::header::HOST) {
        // RFC 9112 section 3.2: a server MUST answer 400 (pingora already refuses two Hosts).
        return Err(OAuthError::InvalidRequest("an HTTP/1.1 request needs a Host header".into()).reply());
    }
    let mut authorization = req.headers.get_all(http::header::AUTHORIZATION).iter();
    let first = authorization.next();
    if authorization.next().is_some() {
        const WHY: &str = "more than one Authorization header";
        return Err(if req.uri.path().starts_with("/oauth2/") {
            OAuthError::InvalidRequest(WHY.into()).reply()
        } else {
            BearerError::Malformed(WHY).reply()
        });
    }
    Ok(first.map(|v| v.as_bytes()))
}

/// Sends the upstream one `Content-Length` value where the client sent a list of identical ones
/// (`5, 5`, or the header twice), which RFC 9110 section 8.6 lets a recipient accept: an upstream
/// that reads only the first, or refuses lists, then frames the body as the gateway did. (pingora
/// refuses a list of differing values before any filter runs.)
pub fn normalize_content_length(req: &mut RequestHeader) -> pingora::Result<()> {
    let mut values = req.headers.get_all(http::header::CONTENT_LENGTH).iter();
    let (Some(first), second) = (values.next(), values.next()) else {
        return Ok(());
    };
    if second.is_none() && !first.as_bytes().contains(&b',') {
        return Ok(());
    }
    let single = first
        .as_bytes()
        .split(|&b| b == b',')
        .next()
        .map(<[u8]>::trim_ascii)
        .and_then(|v| http::HeaderValue::from_bytes(v).ok());
    match single {
        Some(value) => req.insert_header(http::header::CONTENT_LENGTH, value),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut h = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        h.append_header("Host", "gw").unwrap();
        for (k, v) in headers {
            h.append_header(k.to_string(), *v).unwrap();
        }
        h
    }

    #[test]
    fn ordinary_heads_pass() {
        let h = head("/api/x?a=1", &[("Authorization", "Bearer abc"), ("Accept", "*/*")]);
        assert_eq!(
            head_bytes(&h),
            "/api/x?a=1".len() + "Authorization: Bearer abc\r\n".len() + 13 + "Host: gw\r\n".len()
        );
        assert_eq!(check_head(&h), Ok(Some(&b"Bearer abc"[..])));
        assert_eq!(check_head(&head("/public", &[("Accept", "*/*")])), Ok(None));
    }

    #[test]
    fn large_heads_are_431() {
        let big = "x".repeat(MAX_HEAD_BYTES);
        assert_eq!(check_head(&head("/api", &[("X-Junk", &big)])).unwrap_err().status, 431);
        // The target counts too (the http crate itself refuses one of 64 KiB or more).
        let long_path = format!("/api/{}", &big[..60_000]);
        assert_eq!(check_head(&head(&long_path, &[])), Ok(None));
        let h = head(&long_path, &[("X-A", &big[..6_000])]);
        assert_eq!(check_head(&h).unwrap_err().status, 431);
        let many: Vec<(&str, &str)> = (0..100).map(|_| ("X-A", &big[..1000])).collect();
        assert_eq!(check_head(&head("/api", &many)).unwrap_err().status, 431);
    }

    #[test]
    fn a_content_length_list_becomes_one_value() {
        let mut h = head("/api", &[("Content-Length", "5, 5")]);
        normalize_content_length(&mut h).unwrap();
        let all: Vec<_> = h.headers.get_all("content-length").iter().collect();
        assert_eq!(all, ["5"]);
        let mut h = head("/api", &[("Content-Length", "5"), ("Content-Length", "5")]);
        normalize_content_length(&mut h).unwrap();
        assert_eq!(h.headers.get_all("content-length").iter().count(), 1);
        let mut h = head("/api", &[("Content-Length", "7")]);
        normalize_content_length(&mut h).unwrap();
        assert_eq!(h.headers["content-length"], "7");
    }

    #[test]
    fn http_1_1_without_host_is_400() {
        let mut h = RequestHeader::build("GET", b"/api/x", None).unwrap();
        let r = check_head(&h).unwrap_err();
        assert_eq!(r.status, 400);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "invalid_request");
        h.set_version(http::Version::HTTP_10);
        assert_eq!(check_head(&h), Ok(None), "HTTP/1.0 has no Host requirement");
    }

    #[test]
    fn two_authorization_headers_are_400_invalid_request() {
        let two = [("Authorization", "Bearer a"), ("Authorization", "Bearer b")];
        let h = head("/api/x", &two);
        let r = check_head(&h).unwrap_err();
        assert_eq!(r.status, 400);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "WWW-Authenticate" && v.contains("invalid_request")));
        let h = head("/oauth2/token", &two);
        let r = check_head(&h).unwrap_err();
        assert_eq!(r.status, 400);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "invalid_request");
    }
}
