//! Read, parse and validate a config file into the internal model. Never panics: every problem is
//! a [`ConfigError`] whose message names the key (or line) at fault.

use std::path::Path;
use std::sync::Arc;

use super::file::{ClientEntry, FileConfig, RouteEntry, UserEntry};
use super::model::{Client, Config, NameMap, User};
use super::routes::{Route, RouteTable};
use super::sections;
use super::start::StartConfig;
use crate::domain::audience::AudienceSet;
use crate::domain::format::TokenFormat;
use crate::domain::grant_type::{GrantSet, GrantType};
use crate::domain::key::ScopeSet;
use crate::upstream::balancer::Balancer;

pub use super::checks::ConfigError;
use super::checks::{grant_list, invalid, TYPOGRAPHIC_QUOTES};

/// Reads and validates the file at `path`; relative paths inside resolve against its folder.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_str(&text, base)
}

/// Parses and validates config text; relative paths resolve against `base`.
pub fn parse_str(text: &str, base: &Path) -> Result<Config, ConfigError> {
    let file: FileConfig = toml::from_str(text).map_err(|e| {
        let mut msg = e.to_string();
        if text.contains(TYPOGRAPHIC_QUOTES) {
            msg.push_str(
                "\nhint: the file contains typographic quotes (\u{201C} \u{201D}), as pasted from \
                 the WSO2 documentation; TOML needs straight quotes: \"client_credentials\"",
            );
        }
        ConfigError::Syntax(msg.trim_end().to_string())
    })?;
    build(file, base)
}

fn build(file: FileConfig, base: &Path) -> Result<Config, ConfigError> {
    let process = sections::process(&file.server, base)?;
    let store = sections::store(file.store, base, &process.data_dir)?;
    let keys = sections::keys(&file.oauth, base, &process.data_dir)?;
    let oauth = sections::oauth(file.oauth, &process.listen)?;
    let server = sections::server(file.server)?;
    let admin = sections::admin(file.admin, process.admin_listen.as_deref())?;
    Ok(Config {
        start: StartConfig { process, store, keys },
        server,
        oauth,
        clients: clients(file.clients, base)?,
        users: users(file.users)?,
        routes: routes(file.routes, base)?,
        admin,
    })
}

fn clients(entries: Vec<ClientEntry>, base: &Path) -> Result<NameMap<Arc<Client>>, ConfigError> {
    let mut clients = NameMap::default();
    for (i, c) in entries.into_iter().enumerate() {
        let client = client(i, c, base)?;
        if clients.contains_key(&client.id) {
            return Err(invalid(
                format!("clients[{i}].id"),
                format!("duplicate client id {:?}", client.id),
            ));
        }
        clients.insert(client.id.clone(), Arc::new(client));
    }
    Ok(clients)
}

fn users(entries: Vec<UserEntry>) -> Result<NameMap<User>, ConfigError> {
    let mut users = NameMap::default();
    for (i, u) in entries.into_iter().enumerate() {
        let key = format!("users[{i}]");
        if u.username.is_empty() || u.username.len() > 256 || u.username.chars().any(char::is_control) {
            return Err(invalid(
                format!("{key}.username"),
                "must be 1 to 256 bytes without control characters",
            ));
        }
        if !u.password_hash.starts_with("$argon2id$") || argon2::PasswordHash::new(&u.password_hash).is_err() {
            return Err(invalid(
                format!("{key}.password_hash"),
                "must be an argon2id PHC string (make one with `tokengate hash-password`)",
            ));
        }
        if users.contains_key(&u.username) {
            return Err(invalid(
                format!("{key}.username"),
                format!("duplicate user {:?}", u.username),
            ));
        }
        users.insert(
            u.username.clone(),
            User {
                username: u.username,
                password_hash: u.password_hash,
            },
        );
    }
    Ok(users)
}

fn routes(entries: Vec<RouteEntry>, base: &Path) -> Result<RouteTable, ConfigError> {
    let mut routes = Vec::new();
    for (i, r) in entries.into_iter().enumerate() {
        routes.push(route(i, r, base)?);
    }
    RouteTable::new(routes)
        .map_err(|prefix| invalid("routes", format!("two routes have the same path_prefix {prefix:?}")))
}

fn client(i: usize, c: ClientEntry, base: &Path) -> Result<Client, ConfigError> {
    let key = format!("clients[{i}]");
    if c.id.is_empty() || c.id.len() > 256 || c.id.chars().any(|ch| ch.is_control()) {
        return Err(invalid(
            format!("{key}.id"),
            "must be 1 to 256 bytes without control characters",
        ));
    }
    let auth = super::client_auth::client_auth(&key, &c, base)?;
    let format_name = c.token_type.as_str();
    let token_format = TokenFormat::parse(format_name).ok_or_else(|| {
        invalid(
            format!("{key}.token_type"),
            format!("{format_name:?} is not \"jwt\" or \"opaque\""),
        )
    })?;
    let grant_types = grant_list(&format!("{key}.grant_types"), &c.grant_types)?;
    if grant_types == GrantSet::EMPTY {
        return Err(invalid(format!("{key}.grant_types"), "lists no grant type"));
    }
    let scopes = ScopeSet::from_tokens(c.scopes.iter().map(String::as_str))
        .map_err(|e| invalid(format!("{key}.scopes"), e.to_string()))?;
    let refresh_cc = c.refresh_tokens_for_client_credentials;
    if refresh_cc && !grant_types.contains(GrantType::RefreshToken) {
        return Err(invalid(
            format!("{key}.refresh_tokens_for_client_credentials"),
            "needs \"refresh_token\" in grant_types",
        ));
    }
    Ok(Client {
        id: c.id,
        auth,
        token_format,
        grant_types,
        scopes,
        refresh_tokens_for_client_credentials: refresh_cc,
        max_live_tokens: c.max_live_tokens,
        audiences: client_audiences(&key, c.audiences.as_deref())?,
        dpop_required: match c.dpop.as_deref() {
            None | Some("optional") => false,
            Some("required") => true,
            Some(other) => {
                return Err(invalid(
                    format!("{key}.dpop"),
                    format!("{other:?} is not \"optional\" or \"required\""),
                ))
            }
        },
    })
}

fn route(i: usize, r: RouteEntry, base: &Path) -> Result<Route, ConfigError> {
    let key = format!("routes[{i}]");
    if !r.path_prefix.starts_with('/') {
        return Err(invalid(format!("{key}.path_prefix"), "must start with '/'"));
    }
    // Requests are routed by their normal path, so a prefix in any other form could never match.
    match crate::domain::path::normalize(&r.path_prefix) {
        Ok(normal) if normal == r.path_prefix => {}
        Ok(normal) => {
            return Err(invalid(
                format!("{key}.path_prefix"),
                format!("requests are matched in normal form: write {normal:?}"),
            ))
        }
        Err(e) => return Err(invalid(format!("{key}.path_prefix"), e.to_string())),
    }
    let settings = super::upstreams::settings(&key, &r, base)?;
    let upstream =
        Balancer::new(&r.path_prefix, settings).map_err(|e| invalid(format!("{key}.upstreams"), e.to_string()))?;
    let scopes = ScopeSet::from_tokens(r.scopes.iter().map(String::as_str))
        .map_err(|e| invalid(format!("{key}.scopes"), e.to_string()))?;
    let auth = r.auth.unwrap_or(true);
    if !auth && !scopes.is_empty() {
        return Err(invalid(
            format!("{key}.scopes"),
            "a public route (auth = false) cannot require scopes",
        ));
    }
    let audience = match &r.audience {
        None => None,
        Some(_) if !auth => {
            return Err(invalid(
                format!("{key}.audience"),
                "a public route (auth = false) cannot require an audience",
            ))
        }
        Some(uri) => Some(Arc::from(
            AudienceSet::one(uri)
                .map_err(|e| invalid(format!("{key}.audience"), format!("{e} (RFC 8707)")))?
                .as_str(),
        )),
    };
    Ok(Route {
        path_prefix: r.path_prefix,
        upstream: Arc::new(upstream),
        scopes,
        auth,
        audience,
    })
}

/// A client's `audiences`, each an absolute URI without a fragment.
fn client_audiences(key: &str, listed: Option<&[String]>) -> Result<Option<AudienceSet>, ConfigError> {
    listed
        .map(|uris| {
            AudienceSet::from_uris(uris.iter().map(String::as_str))
                .map_err(|e| invalid(format!("{key}.audiences"), format!("{e} (RFC 8707)")))
        })
        .transpose()
}
