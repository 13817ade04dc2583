//! What the upstream is told about the client, and which address is the client's.
//!
//! An upstream behind the gateway sees every connection come from the gateway, so it is told the
//! client's address in `X-Forwarded-For` (appended, as nginx, HAProxy and Kong do: the rightmost
//! entry is always the address the gateway saw) and `X-Real-IP`, and how the client reached the
//! gateway in `X-Forwarded-Proto` and `X-Forwarded-Host`. A client cannot choose these: values it
//! sends under those names are replaced, and `Forwarded` (RFC 7239), which the gateway does not
//! write, is dropped.
//!
//! Behind a reverse proxy of its own, the gateway is configured with that proxy's addresses
//! (`server.trusted_proxies`). From a trusted peer, `X-Forwarded-Proto`, `X-Forwarded-Host` and
//! `Forwarded` pass unchanged, and the client's address is the rightmost `X-Forwarded-For` entry
//! that is not itself a trusted proxy (nginx's `real_ip_recursive`): that address is sent as
//! `X-Real-IP` and counted by the brute-force lockout. Nothing a client sends is believed unless
//! every hop after it is trusted.

use std::net::IpAddr;

use http::header::{FORWARDED, HOST};
use http::HeaderName;
use ipnet::IpNet;
use pingora::http::RequestHeader;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// `server.trusted_proxies`: the networks of reverse proxies in front of the gateway. Empty by
/// default: the gateway is the edge and believes no forwarding header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.7`, `::1`) and networks (`10.0.0.0/8`, `fd00::/8`).
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .map(|e| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("{e:?} is not an IP address or network (a.b.c.d/n)"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` (IPv4-mapped IPv6 read as IPv4) is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

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
pub fn set_upstream_headers(
    req: &mut RequestHeader,
    peer: Option<IpAddr>,
    https: bool,
    trusted: &TrustedProxies,
) -> pingora::Result<()> {
    let from_trusted = peer.is_some_and(|p| trusted.contains(p));
    let Some(peer) = peer else {
        for h in [
            &X_FORWARDED_FOR,
            &X_REAL_IP,
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
            &FORWARDED,
        ] {
            req.remove_header(h);
        }
        return Ok(());
    };
    let peer = peer.to_canonical();
    let peer_text = peer.to_string();
    let client = client_addr(req, peer, trusted);
    let mut chain = String::new();
    for v in req.headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(v) = v.to_str() {
            chain.push_str(v.trim());
            chain.push_str(", ");
        }
    }
    chain.push_str(&peer_text);
    req.insert_header("X-Forwarded-For", chain)?;
    let real_ip = if client == peer { peer_text } else { client.to_string() };
    req.insert_header("X-Real-IP", real_ip)?;
    if !(from_trusted && req.headers.contains_key(&X_FORWARDED_PROTO)) {
        req.insert_header("X-Forwarded-Proto", if https { "https" } else { "http" })?;
    }
    if !(from_trusted && req.headers.contains_key(&X_FORWARDED_HOST)) {
        match req.headers.get(HOST).cloned() {
            Some(host) => req.insert_header("X-Forwarded-Host", host)?,
            None => {
                req.remove_header(&X_FORWARDED_HOST);
            }
        }
    }
    if !from_trusted {
        req.remove_header(&FORWARDED);
    }
    Ok(())
}

#[cfg(test)]
#[path = "forwarded_tests.rs"]
mod tests;
