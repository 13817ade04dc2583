//! Checks on a request head, before it is routed anywhere (OAuth endpoint or upstream).
//!
//! pingora itself refuses (400, then closes) a head over 1 MiB or with more than 256 header
//! lines; anything below that would reach the endpoints and be forwarded upstream. The gateway
//! answers 431 well before that, and refuses a request with two `Authorization` headers, which
//! would otherwise be read as whichever came first.

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

/// The answer refusing a request head, if it must be refused.
pub fn check_head(req: &RequestHeader) -> Option<Reply> {
    if head_bytes(req) > MAX_HEAD_BYTES {
        let body = serde_json::json!({
            "error": "invalid_request",
            "error_description": format!("request header fields larger than {MAX_HEAD_BYTES} bytes"),
        });
        return Some(Reply::json_no_store(431, body.to_string()));
    }
    if req.headers.get_all(http::header::AUTHORIZATION).iter().nth(1).is_some() {
        const WHY: &str = "more than one Authorization header";
        return Some(if req.uri.path().starts_with("/oauth2/") {
            OAuthError::InvalidRequest(WHY.into()).reply()
        } else {
            BearerError::Malformed(WHY).reply()
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut h = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
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
            "/api/x?a=1".len() + "Authorization: Bearer abc\r\n".len() + 13
        );
        assert_eq!(check_head(&h), None);
    }

    #[test]
    fn large_heads_are_431() {
        let big = "x".repeat(MAX_HEAD_BYTES);
        assert_eq!(check_head(&head("/api", &[("X-Junk", &big)])).unwrap().status, 431);
        // The target counts too (the http crate itself refuses one of 64 KiB or more).
        let long_path = format!("/api/{}", &big[..60_000]);
        assert_eq!(check_head(&head(&long_path, &[])), None);
        let r = check_head(&head(&long_path, &[("X-A", &big[..6_000])]));
        assert_eq!(r.unwrap().status, 431);
        let many: Vec<(&str, &str)> = (0..100).map(|_| ("X-A", &big[..1000])).collect();
        assert_eq!(check_head(&head("/api", &many)).unwrap().status, 431);
    }

    #[test]
    fn two_authorization_headers_are_400_invalid_request() {
        let two = [("Authorization", "Bearer a"), ("Authorization", "Bearer b")];
        let r = check_head(&head("/api/x", &two)).unwrap();
        assert_eq!(r.status, 400);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "WWW-Authenticate" && v.contains("invalid_request")));
        let r = check_head(&head("/oauth2/token", &two)).unwrap();
        assert_eq!(r.status, 400);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "invalid_request");
    }
}
