//! `tokengate admin ...`: the operator's client of the admin API, and `token-id`, which turns a
//! token's text into the id the API names it by (so a leaked token is revoked without sending
//! its text anywhere). One HTTP/1.1 request over a plain TCP connection: the admin API listens
//! on loopback or a private network, without TLS.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::domain::ids::TokenId;
use crate::tokens::opaque::{OpaqueCodec, OpaqueKind};

/// The environment variable the admin token is read from without `--token-file`.
pub const TOKEN_ENV: &str = "TOKENGATE_ADMIN_TOKEN";

/// How long the client waits to connect, and for the answer (a revocation of many tokens takes
/// a while: it is answered once durable).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// `tokengate admin`: drives the admin API (`server.admin_listen`).
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The admin API's address.
    #[arg(long, default_value = "http://127.0.0.1:9092")]
    pub url: String,
    /// A file holding the admin token (default: the TOKENGATE_ADMIN_TOKEN environment variable).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List the live tokens matching every filter given (metadata only), as JSON.
    Tokens {
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many (default 1000).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Revoke every live access and refresh token matching every filter given (at least one);
    /// prints {"revoked": N} once it is durable.
    Revoke {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Read a token's text on stdin, print its id (for --token-id). An opaque token's id needs
    /// the server key: the one the config (--conf) names.
    TokenId,
}

/// Which tokens: every one given must match.
#[derive(Debug, Args)]
pub struct FilterArgs {
    #[arg(long)]
    pub client_id: Option<String>,
    /// The resource owner ("" for the client's own tokens, from client_credentials).
    #[arg(long)]
    pub subject: Option<String>,
    /// The whole scope set, space-separated (with --client-id and --subject: one token key).
    #[arg(long)]
    pub scope: Option<String>,
    /// A token's id (64 hex digits; `tokengate admin token-id` computes it).
    #[arg(long)]
    pub token_id: Option<String>,
    /// Tokens issued before this instant (unix seconds).
    #[arg(long)]
    pub issued_before: Option<u64>,
}

impl FilterArgs {
    fn pairs(&self) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        let text = [
            ("client_id", &self.client_id),
            ("subject", &self.subject),
            ("scope", &self.scope),
            ("token_id", &self.token_id),
        ];
        for (name, value) in text {
            if let Some(v) = value {
                out.push((name, Value::from(v.as_str())));
            }
        }
        if let Some(t) = self.issued_before {
            out.push(("issued_before", Value::from(t)));
        }
        out
    }
}

/// Runs an admin command; `conf` is the config file (`token-id` reads its server key).
pub fn run(args: AdminArgs, conf: &Path) -> Result<(), String> {
    let (method, target, body) = match &args.command {
        AdminCommand::TokenId => {
            let text = read_token_text()?;
            println!("{}", token_id(&text, conf)?);
            return Ok(());
        }
        AdminCommand::Tokens { filter, limit } => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (name, value) in filter.pairs() {
                match value {
                    Value::String(s) => query.append_pair(name, &s),
                    other => query.append_pair(name, &other.to_string()),
                };
            }
            if let Some(n) = limit {
                query.append_pair("limit", &n.to_string());
            }
            let query = query.finish();
            let target = if query.is_empty() {
                "/admin/tokens".to_string()
            } else {
                format!("/admin/tokens?{query}")
            };
            ("GET", target, None)
        }
        AdminCommand::Revoke { filter } => {
            let body: Map<String, Value> = filter.pairs().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            if body.is_empty() {
                return Err(
                    "revoke: name the tokens (--client-id, --subject, --scope, --token-id or \
                            --issued-before)"
                        .into(),
                );
            }
            ("POST", "/admin/revoke".to_string(), Some(json!(body).to_string()))
        }
    };
    let token = admin_token(args.token_file.as_deref())?;
    let (status, answer) = request(&args.url, method, &target, &token, body.as_deref())?;
    println!("{}", answer.trim_end());
    if status == 200 {
        Ok(())
    } else {
        Err(format!("the admin API answered {status}"))
    }
}

/// The admin token: the file's first line, or the environment variable.
fn admin_token(file: Option<&Path>) -> Result<String, String> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        None => std::env::var(TOKEN_ENV).map_err(|_| format!("give --token-file or set {TOKEN_ENV}"))?,
    };
    let token = token.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err("the admin token is empty".into());
    }
    Ok(token)
}

/// A token's text from stdin (not echoed on a terminal).
fn read_token_text() -> Result<String, String> {
    let stdin = std::io::stdin();
    let text = if stdin.is_terminal() {
        rpassword::prompt_password("token: ").map_err(|e| e.to_string())?
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map_err(|e| e.to_string())?;
        line
    };
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err("empty input".into());
    }
    Ok(text)
}

/// The id the admin API names the token `text` by: an opaque token's random id (its tag checked
/// with the server key `conf` names), or a JWT's SHA-256.
pub fn token_id(text: &str, conf: &Path) -> Result<String, String> {
    let kind = if OpaqueCodec::has_prefix(OpaqueKind::Access, text) {
        OpaqueKind::Access
    } else if OpaqueCodec::has_prefix(OpaqueKind::Refresh, text) {
        OpaqueKind::Refresh
    } else if text.split('.').count() == 3 {
        return Ok(hex::encode(TokenId::of_jwt(text).0));
    } else {
        return Err("this is neither a JWT nor an opaque token (tga_..., tgr_...)".into());
    };
    let config = crate::config::load_file(conf).map_err(|e| format!("{}: {e}", conf.display()))?;
    let key = &config.start.keys.server_key;
    if !key.exists() {
        return Err(format!("{}: no server key there (oauth.server_key)", key.display()));
    }
    let codec = OpaqueCodec::load_or_create(key).map_err(|e| e.to_string())?;
    let id = codec
        .parse(kind, text)
        .ok_or("this opaque token was not minted with the server key of this config")?;
    Ok(hex::encode(id.0))
}

/// Sends one request to the admin API at `url` (`http://host:port`); its status and body.
fn request(url: &str, method: &str, target: &str, token: &str, body: Option<&str>) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--url {url:?}: only http:// is spoken (the admin API has no TLS)"))?;
    let (authority, prefix) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let prefix = prefix.trim_end_matches('/');
    let target = if prefix.is_empty() {
        target.to_string()
    } else {
        format!("/{prefix}{target}")
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("--url {url:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--url {url:?}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let io = |e: std::io::Error| format!("{addr}: {e}");
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(io)?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Accept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).map_err(io)?;
    stream.write_all(body.as_bytes()).map_err(io)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(io)?;
    parse_answer(&answer).ok_or_else(|| format!("{addr}: not an HTTP answer"))
}

/// The status and body of an HTTP/1.1 answer read to its end.
fn parse_answer(answer: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    let body = match length {
        Some(n) if n <= body.len() => &body[..n],
        _ => body,
    };
    Some((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_read_by_its_length() {
        let (status, body) = parse_answer(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((status, body.as_str()), (401, "{}"));
        assert!(parse_answer(b"garbage").is_none());
    }

    #[test]
    fn a_jwt_id_is_its_sha256_and_garbage_is_refused() {
        let jwt = "aaa.bbb.ccc";
        let id = token_id(jwt, Path::new("/nonexistent.toml")).unwrap();
        assert_eq!(id, hex::encode(TokenId::of_jwt(jwt).0));
        assert!(token_id("hello", Path::new("/nonexistent.toml")).is_err());
    }
}
