//! What the upstream is told about the client, and which address is the client's.
//!
//! An upstream behind the gateway sees every connection come from the gateway, so it is told the
//! client's address in `X-Forwarded-For` (appended, as nginx, HAProxy and Kong do: the rightmost
//! entry is always the address the gateway saw) and `X-Real-IP`, and `X-Forwarded-Proto: https`
//! when the client came over TLS. A client cannot choose these: values it sends under those names
//! are replaced, and `X-Forwarded-Host` and `Forwarded` (RFC 7239), which the gateway does not
//! write, are dropped (the upstream is sent the client's `Host` as it was).
//!
//! Behind a reverse proxy of its own, the gateway is configured with that proxy's addresses
//! (`server.trusted_proxies`). From a trusted peer, `X-Forwarded-Proto`, `X-Forwarded-Host` and
//! `Forwarded` pass unchanged, and the client's address is the rightmost `X-Forwarded-For` entry
//! that is not itself a trusted proxy (nginx's `real_ip_recursive`): that address is sent as
//! `X-Real-IP` and counted by the brute-force lockout. Nothing a client sends is believed unless
//! every hop after it is trusted.

use std::net::IpAddr;

use bytes::Bytes;
use http::header::FORWARDED;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use super::identity::remove;
pub use crate::config::trusted_proxies::TrustedProxies;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// The client's address: `peer`, or, when `peer` is a trusted proxy, the rightmost address in
/// `X-Forwarded-For` that is not. An entry that is not an address ends the walk at the proxy that
/// passed it on, so unreadable input never moves the answer further from the gateway.
pub fn client_addr(req: &RequestHeader, peer: IpAddr, trusted: &TrustedProxies) -> IpAddr {
    let mut client = peer.to_canonical();
    if trusted.is_empty() {
        return client;
    }
    let lines = req.headers.get_all(&X_FORWARDED_FOR).iter().rev();
    for entry in lines.flat_map(|v| v.as_bytes().rsplit(|&b| b == b',')) {
        if !trusted.contains(client) {
            break;
        }
        match std::str::from_utf8(entry)
            .ok()
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
        {
            Some(ip) => client = ip.to_canonical(),
            None => break,
        }
    }
    client
}

/// Sets the forwarding headers of a request about to go upstream. `peer` is the address of the
/// connection (none for a Unix socket), `https` whether it came over TLS.
///
/// Each header pingora inserts costs a parse of its name into a new allocation and two map
/// updates, so only two are always written. The upstream is sent the client's `Host`
/// unchanged, so an `X-Forwarded-Host` would repeat it; and a missing `X-Forwarded-Proto` means
/// `http` to every framework that reads it, so it is written for TLS only. Values a client sent
/// under those names are removed (a lookup when there are none).
pub fn set_upstream_headers(
    req: &mut RequestHeader,
    peer: Option<IpAddr>,
    https: bool,
    trusted: &TrustedProxies,
) -> pingora::Result<()> {
    let Some(peer) = peer.map(|p| p.to_canonical()) else {
        for h in [
            &X_FORWARDED_FOR,
            &X_REAL_IP,
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
            &FORWARDED,
        ] {
            remove(req, h);
        }
        return Ok(());
    };
    let from_trusted = trusted.contains(peer);
    let client = client_addr(req, peer, trusted);
    let peer_text = Bytes::from(peer.to_string());
    let chain = if req.headers.contains_key(&X_FORWARDED_FOR) {
        let mut chain = Vec::with_capacity(64);
        for v in req.headers.get_all(&X_FORWARDED_FOR) {
            chain.extend_from_slice(v.as_bytes().trim_ascii());
            chain.extend_from_slice(b", ");
        }
        chain.extend_from_slice(&peer_text);
        Bytes::from(chain)
    } else {
        peer_text.clone()
    };
    req.insert_parsed_header(&X_FORWARDED_FOR, "X-Forwarded-For", header_value(chain)?)?;
    let real_ip = if client == peer {
        peer_text
    } else {
        Bytes::from(client.to_string())
    };
    req.insert_parsed_header(&X_REAL_IP, "X-Real-IP", header_value(real_ip)?)?;
    if !from_trusted {
        for h in [&X_FORWARDED_PROTO, &X_FORWARDED_HOST, &FORWARDED] {
            remove(req, h);
        }
    }
    if https && !req.headers.contains_key(&X_FORWARDED_PROTO) {
        req.insert_parsed_header(
            &X_FORWARDED_PROTO,
            "X-Forwarded-Proto",
            HeaderValue::from_static("https"),
        )?;
    }
    Ok(())
}

/// A forwarding header's value (addresses, and a client's list joined: always valid bytes).
fn header_value(bytes: Bytes) -> pingora::Result<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes)
        .map_err(|_| pingora::Error::explain(pingora::ErrorType::InvalidHTTPHeader, "invalid forwarding header value"))
}

#[cfg(test)]
#[path = "forwarded_tests.rs"]
mod tests;
