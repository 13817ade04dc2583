//! Request bodies the gateway reads itself (the OAuth endpoints'): whole, capped in size and in
//! time, with `100 Continue` sent to a client that waits for it.

use std::time::Duration;

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::Result;

use crate::oauth::errors::OAuthError;

/// Whether a request declares a body (one the gateway may have to refuse unread).
pub(crate) fn has_body(req: &RequestHeader) -> bool {
    req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// Whether the client waits for `100 Continue` before sending the body (RFC 9110 section
/// 10.1.1; never for HTTP/1.0, which has no interim answers).
fn expects_continue(req: &RequestHeader) -> bool {
    req.version == http::Version::HTTP_11
        && req
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads the whole request body, up to `limit` bytes; a body declared too large is refused
/// before any of it is asked for.
async fn read_body(session: &mut Session, limit: usize) -> Result<Result<Bytes, OAuthError>> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Ok(Err(OAuthError::PayloadTooLarge));
    }
    if expects_continue(session.req_header()) {
        // The client holds the body back until told to send it (curl waits a second, some
        // clients for ever): the body is wanted, so say so.
        session.write_continue_response().await?;
    }
    let mut buf = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if buf.len() + chunk.len() > limit {
            return Ok(Err(OAuthError::PayloadTooLarge));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Ok(Bytes::from(buf)))
}

/// Reads the whole body within `deadline` (a slow client cannot hold a request open forever).
pub(crate) async fn read_body_before(
    session: &mut Session,
    limit: usize,
    deadline: Duration,
) -> Result<Result<Bytes, OAuthError>> {
    match tokio::time::timeout(deadline, read_body(session, limit)).await {
        Ok(read) => read,
        Err(_) => Ok(Err(OAuthError::RequestTimeout)),
    }
}
