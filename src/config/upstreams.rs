//! A route's upstream keys, checked: the servers (`upstream` or `upstreams`), how one is chosen
//! (`load_balancing`), the active check (`health_check`), HTTPS to them (`upstream_tls` and the
//! keys beside it) and re-resolution (`resolve_interval_secs`), into the data of
//! [`crate::upstream::settings`], from which the balancer is built.

use std::net::ToSocketAddrs;
use std::path::Path;
use std::time::Duration;

use super::checks::{invalid, resolve, ConfigError};
use super::file::{HealthCheckEntry, RouteEntry};
use crate::upstream::settings::{
    Balancing, HealthCheck, Server, UpstreamSettings, DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_TIMEOUT, MAX_SERVERS,
};
use crate::upstream::tls::{CaBundle, ClientCert, ClientCertError, UpstreamTls};

/// The upstream settings of the route whose keys start with `key` (`routes[3]`).
pub fn settings(key: &str, r: &RouteEntry, base: &Path) -> Result<UpstreamSettings, ConfigError> {
    let servers = servers(key, r)?;
    let balancing = match r.load_balancing.as_deref().unwrap_or("round_robin") {
        "round_robin" => Balancing::RoundRobin,
        "random" => Balancing::Random,
        "consistent_hash" => Balancing::ConsistentHash,
        other => {
            return Err(invalid(
                format!("{key}.load_balancing"),
                format!("{other:?} is not one of \"round_robin\", \"random\", \"consistent_hash\""),
            ))
        }
    };
    let health_check = r.health_check.as_ref().map(|h| health_check(key, h)).transpose()?;
    let resolve_interval = match r.resolve_interval_secs {
        None => None,
        Some(s) if (1..=86_400).contains(&s) => Some(Duration::from_secs(s)),
        Some(_) => {
            return Err(invalid(
                format!("{key}.resolve_interval_secs"),
                "must be between 1 and 86400",
            ))
        }
    };
    Ok(UpstreamSettings {
        servers,
        balancing,
        health_check,
        tls: tls(key, r, base)?,
        resolve_interval,
    })
}

fn servers(key: &str, r: &RouteEntry) -> Result<Vec<Server>, ConfigError> {
    let listed: Vec<(String, &String)> = match (&r.upstream, &r.upstreams) {
        (Some(one), None) => vec![(format!("{key}.upstream"), one)],
        (None, Some(list)) => list
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("{key}.upstreams[{i}]"), s))
            .collect(),
        (Some(_), Some(_)) => {
            return Err(invalid(
                format!("{key}.upstreams"),
                "give either upstream (one server) or upstreams (a list), not both",
            ))
        }
        (None, None) => {
            return Err(invalid(
                format!("{key}.upstream"),
                "missing: give upstream = \"host:port\" or upstreams = [\"host:port\", ...]",
            ))
        }
    };
    if listed.is_empty() {
        return Err(invalid(format!("{key}.upstreams"), "lists no server"));
    }
    if listed.len() > MAX_SERVERS {
        return Err(invalid(
            format!("{key}.upstreams"),
            format!("lists more than {MAX_SERVERS} servers"),
        ));
    }
    let mut servers: Vec<Server> = Vec::with_capacity(listed.len());
    for (server_key, name) in listed {
        if servers.iter().any(|s| s.name == *name) {
            return Err(invalid(server_key, format!("{name:?} is listed twice")));
        }
        servers.push(server(&server_key, name)?);
    }
    Ok(servers)
}

fn server(key: &str, name: &str) -> Result<Server, ConfigError> {
    let unreachable = || invalid(key, format!("{name:?} is not a reachable host:port"));
    let (host, port) = name.rsplit_once(':').ok_or_else(unreachable)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| unreachable())?;
    // The host goes into the health check's Host header and the SNI: printable ASCII only.
    if host.is_empty() || port == 0 || !host.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(unreachable());
    }
    let addr = name
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(unreachable)?;
    Ok(Server {
        name: name.to_string(),
        host: host.to_string(),
        port,
        addr,
    })
}

fn health_check(key: &str, h: &HealthCheckEntry) -> Result<HealthCheck, ConfigError> {
    let key = format!("{key}.health_check");
    if let Some(path) = &h.path {
        if !path.starts_with('/') || path.len() > 1024 || !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                format!("{key}.path"),
                "must start with '/' and hold printable ASCII without spaces (at most 1024 bytes)",
            ));
        }
    }
    let interval = match h.interval_secs {
        None => DEFAULT_CHECK_INTERVAL,
        Some(s) if (1..=3600).contains(&s) => Duration::from_secs(s),
        Some(_) => return Err(invalid(format!("{key}.interval_secs"), "must be between 1 and 3600")),
    };
    let timeout = match h.timeout_ms {
        None => DEFAULT_CHECK_TIMEOUT,
        Some(ms) if (1..=60_000).contains(&ms) => Duration::from_millis(ms),
        Some(_) => return Err(invalid(format!("{key}.timeout_ms"), "must be between 1 and 60000")),
    };
    Ok(HealthCheck {
        path: h.path.clone(),
        interval,
        timeout,
    })
}

fn tls(key: &str, r: &RouteEntry, base: &Path) -> Result<Option<UpstreamTls>, ConfigError> {
    if r.upstream_tls != Some(true) {
        let given = [
            ("upstream_sni", r.upstream_sni.is_some()),
            ("upstream_ca", r.upstream_ca.is_some()),
            ("upstream_client_cert", r.upstream_client_cert.is_some()),
            ("upstream_client_key", r.upstream_client_key.is_some()),
            ("insecure_skip_verify", r.insecure_skip_verify == Some(true)),
        ];
        if let Some((name, _)) = given.iter().find(|(_, set)| *set) {
            return Err(invalid(
                format!("{key}.{name}"),
                "applies to HTTPS upstreams: set upstream_tls = true",
            ));
        }
        return Ok(None);
    }
    let sni = match &r.upstream_sni {
        Some(name) if pingora::tls::ServerName::try_from(name.as_str()).is_err() => {
            return Err(invalid(
                format!("{key}.upstream_sni"),
                format!("{name:?} is not a DNS name or an IP address"),
            ))
        }
        sni => sni.clone(),
    };
    let ca = r
        .upstream_ca
        .as_deref()
        .map(|p| CaBundle::load(&resolve(base, p)))
        .transpose()
        .map_err(|e| invalid(format!("{key}.upstream_ca"), e.to_string()))?;
    let client = match (&r.upstream_client_cert, &r.upstream_client_key) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                format!("{key}.upstream_client_key"),
                "upstream_client_cert is set, upstream_client_key is missing",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                format!("{key}.upstream_client_cert"),
                "upstream_client_key is set, upstream_client_cert is missing",
            ))
        }
        (Some(c), Some(k)) => Some(
            ClientCert::load(&resolve(base, c), &resolve(base, k)).map_err(|e| match e {
                ClientCertError::Cert(e) => invalid(format!("{key}.upstream_client_cert"), e.to_string()),
                ClientCertError::Key(e) => invalid(format!("{key}.upstream_client_key"), e.to_string()),
                ClientCertError::Pair(e) => invalid(format!("{key}.upstream_client_cert/upstream_client_key"), e),
            })?,
        ),
    };
    let insecure_skip_verify = r.insecure_skip_verify.unwrap_or(false);
    if insecure_skip_verify {
        log::warn!(
            "{key}.insecure_skip_verify = true: the certificates of {}'s servers are not verified; anyone on \
             the network path can read and change that traffic",
            r.path_prefix
        );
    }
    Ok(Some(UpstreamTls {
        sni,
        ca,
        client,
        insecure_skip_verify,
    }))
}

#[cfg(test)]
#[path = "upstreams_tests.rs"]
mod tests;
