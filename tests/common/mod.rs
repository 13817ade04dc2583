//! Test harness: a real upstream and the real `tokengate` binary on a free port, with readiness
//! polling (never a fixed sleep).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod client_keys;
pub mod cluster;
pub mod load;
pub mod pg;
pub mod relay;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use serde_json::Value;

pub const SECRET: &str = "demo-secret";
pub const SECRET_SHA256: &str = "cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf";
/// argon2id of "alice-password" and "bob-password".
pub const ALICE_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$JShIPSXvsQrON1Evp9AlYg$PrLRvinCrCj2HbzDMsPJMrAjSGMEvsOQ/9GVSl7dnH8";
pub const BOB_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$k5SgPuuS0d4Za3zbtcx6Jw$knagtvMyq0XgFjNu0eizF6Bcr6AXtMI8fdKzy9nmZwQ";

/// A demo upstream shared by every test in the binary.
pub fn upstream() -> SocketAddr {
    static UP: OnceLock<SocketAddr> = OnceLock::new();
    *UP.get_or_init(|| {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = l.local_addr().expect("upstream addr");
        std::thread::spawn(move || tokengate::demo_upstream::serve(l));
        addr
    })
}

/// An HTTP client whose connections come from `ip` (any of 127/8 reaches the gateway on Linux,
/// so each test "address" is its own loopback address).
pub fn from(ip: &str) -> Client {
    Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A port that was free a moment ago.
///
/// Never one this test process was handed before: two picks in a row may otherwise return the
/// same port (the kernel can hand out a port just released), and a gateway given it for two
/// listeners (the proxy's and the metrics') does not come up: pingora retries the second bind
/// for 30 s.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        if HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// What a test may vary in the generated config.
#[derive(Clone, Default)]
pub struct Setup {
    /// TOML placed inside `[oauth]` after the defaults (e.g. `access_token_ttl_secs = 1`).
    pub oauth: String,
    /// Extra tables appended at the end (renewal sections, more clients...).
    pub extra: String,
}

impl Setup {
    pub fn policy(jwt: &str, opaque: &str) -> Setup {
        Setup {
            oauth: String::new(),
            extra: format!(
                "[oauth.jwt.renew_token_without_revoking_existing]\n{jwt}\n\
                 [oauth.opaque.renew_token_without_revoking_existing]\n{opaque}\n"
            ),
        }
    }
}

/// A `[[routes]]` table for `Setup::extra`: a public route from `prefix` to `upstream`.
pub fn public_route(prefix: &str, upstream: impl std::fmt::Display) -> String {
    format!("[[routes]]\npath_prefix = \"{prefix}\"\nupstream = \"{upstream}\"\nauth = false\n")
}

/// A gateway setup with one more public route, to an upstream that refuses connections (a port
/// that was bound, then released).
pub fn with_refusing_route(prefix: &str) -> Setup {
    Setup {
        extra: public_route(prefix, format!("127.0.0.1:{}", free_port())),
        ..Setup::default()
    }
}

/// The config text for a gateway on `port`.
pub fn config_text(port: u16, setup: &Setup) -> String {
    let up = upstream();
    let client = |id: &str, ty: &str| {
        format!(
            "[[clients]]\nid = \"{id}\"\nsecret_sha256 = \"{SECRET_SHA256}\"\ntoken_type = \"{ty}\"\n\
             grant_types = [\"client_credentials\", \"password\", \"refresh_token\"]\n\
             scopes = [\"a\", \"b\", \"c\", \"orders:read\"]\n"
        )
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nthreads = 2\ndata_dir = \"data\"\n\
         grace_period_secs = 0\nshutdown_timeout_secs = 2\n\
         [oauth]\nissuer = \"http://127.0.0.1:{port}\"\n{oauth}\n{extra}\n\
         {jwt}\n{opaque}\n{other}\n\
         [[users]]\nusername = \"alice\"\npassword_hash = \"{ALICE_HASH}\"\n\
         [[users]]\nusername = \"bob\"\npassword_hash = \"{BOB_HASH}\"\n\
         [[routes]]\npath_prefix = \"/api\"\nupstream = \"{up}\"\n\
         [[routes]]\npath_prefix = \"/scoped\"\nupstream = \"{up}\"\nscopes = [\"c\"]\n\
         [[routes]]\npath_prefix = \"/public\"\nupstream = \"{up}\"\nauth = false\n",
        oauth = setup.oauth,
        extra = setup.extra,
        jwt = client("jwt-app", "jwt"),
        opaque = client("opaque-app", "opaque"),
        other = client("other-app", "jwt"),
    )
}

/// `config` with `lines` (TOML keys) added to its `[server]` table.
pub fn with_server_lines(config: &str, lines: &str) -> String {
    config.replacen("[server]\n", &format!("[server]\n{lines}\n"), 1)
}

/// A running gateway process.
pub struct Gateway {
    child: Option<Child>,
    pub port: u16,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub http: Client,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tokengate")
}

impl Gateway {
    pub fn start(setup: Setup) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        std::fs::write(dir.path().join("gateway.toml"), config_text(port, &setup)).expect("write config");
        Gateway::start_in(dir, port)
    }

    /// Starts the binary on the config already written in `dir`.
    pub fn start_in(dir: tempfile::TempDir, port: u16) -> Gateway {
        Gateway::launch(dir, port, "http", None, "tokengate=debug,warn", None)
    }

    /// Starts the binary through `sh -c "<shell_prefix> exec tokengate --conf ..."`, so that it
    /// inherits what the prefix sets (e.g. `ulimit -Sn 256;`). The process is the gateway itself.
    pub fn start_in_shell(dir: tempfile::TempDir, port: u16, shell_prefix: &str) -> Gateway {
        Gateway::launch(dir, port, "http", None, "tokengate=debug,warn", Some(shell_prefix))
    }

    /// Starts the binary on a config in `dir` whose listener speaks HTTPS with a certificate for
    /// 127.0.0.1 that `ca_pem` (PEM) vouches for; `gw.http` trusts it.
    pub fn start_in_tls(dir: tempfile::TempDir, port: u16, ca_pem: &str) -> Gateway {
        Gateway::launch(dir, port, "https", Some(ca_pem), "tokengate=debug,warn", None)
    }

    /// Starts the binary with `RUST_LOG` set to `rust_log`.
    pub fn start_in_logging(dir: tempfile::TempDir, port: u16, rust_log: &str) -> Gateway {
        Gateway::launch(dir, port, "http", None, rust_log, None)
    }

    fn launch(
        dir: tempfile::TempDir,
        port: u16,
        scheme: &str,
        ca_pem: Option<&str>,
        rust_log: &str,
        shell_prefix: Option<&str>,
    ) -> Gateway {
        let log = std::fs::File::create(dir.path().join("gateway.log")).expect("log file");
        let mut command = match shell_prefix {
            Some(prefix) => {
                let mut sh = Command::new("sh");
                sh.arg("-c").arg(format!("{prefix} exec \"$0\" \"$@\"")).arg(bin());
                sh
            }
            None => Command::new(bin()),
        };
        let child = command
            .arg("--conf")
            .arg(dir.path().join("gateway.toml"))
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tokengate");
        let mut http = Client::builder().timeout(Duration::from_secs(30));
        if let Some(pem) = ca_pem {
            let ca = reqwest::Certificate::from_pem(pem.as_bytes()).expect("CA certificate");
            http = http.add_root_certificate(ca).https_only(true);
        }
        let mut gw = Gateway {
            child: Some(child),
            port,
            base: format!("{scheme}://127.0.0.1:{port}"),
            dir,
            http: http.build().expect("client"),
        };
        gw.wait_ready();
        gw
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("running")
    }

    /// Waits up to `limit` for the process to exit by itself; its exit status if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("gateway.toml")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// Waits until the gateway answers; panics with its log when it does not within a minute
    /// or exits first.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/.well-known/oauth-authorization-server", self.base);
        loop {
            if let Ok(r) = self.http.get(&url).timeout(Duration::from_secs(2)).send() {
                if r.status() == 200 {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("gateway exited ({status}) before it was ready; log:\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!("gateway did not become ready; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process with SIGKILL, keeping its folder.
    pub fn kill9(mut self) -> tempfile::TempDir {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    /// POST /oauth2/token with Basic auth as `client`.
    pub fn token(&self, client: &str, form: &[(&str, &str)]) -> Response {
        self.http
            .post(format!("{}/oauth2/token", self.base))
            .basic_auth(client, Some(SECRET))
            .form(form)
            .send()
            .expect("token request")
    }

    /// A token request that must succeed; returns the JSON answer.
    pub fn token_ok(&self, client: &str, form: &[(&str, &str)]) -> Value {
        let r = self.token(client, form);
        let status = r.status();
        let body: Value = r.json().expect("json");
        assert_eq!(status, 200, "token request failed: {body}");
        body
    }

    pub fn cc(&self, client: &str) -> Value {
        self.token_ok(client, &[("grant_type", "client_credentials")])
    }

    pub fn cc_scope(&self, client: &str, scope: &str) -> Value {
        self.token_ok(client, &[("grant_type", "client_credentials"), ("scope", scope)])
    }

    pub fn password(&self, client: &str, user: &str) -> Value {
        let pw = format!("{user}-password");
        self.token_ok(
            client,
            &[("grant_type", "password"), ("username", user), ("password", &pw)],
        )
    }

    /// GET `path` with a bearer token; returns the status.
    pub fn call(&self, path: &str, token: &str) -> u16 {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .expect("api call")
            .status()
            .as_u16()
    }

    pub fn api(&self, token: &Value) -> u16 {
        self.call("/api/x", at(token))
    }

    /// GET the JWKS the gateway publishes.
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        let r = self.http.get(format!("{}/oauth2/jwks", self.base)).send();
        r.expect("jwks").json().expect("JWK set")
    }

    /// GET the RFC 8414 metadata document.
    pub fn metadata(&self) -> Value {
        self.http
            .get(format!("{}/.well-known/oauth-authorization-server", self.base))
            .send()
            .expect("metadata")
            .json()
            .expect("json")
    }

    pub fn introspect(&self, client: &str, token: &str) -> Value {
        self.http
            .post(format!("{}/oauth2/introspect", self.base))
            .basic_auth(client, Some(SECRET))
            .form(&[("token", token)])
            .send()
            .expect("introspect")
            .json()
            .expect("json")
    }

    pub fn revoke(&self, client: &str, token: &str) -> u16 {
        self.http
            .post(format!("{}/oauth2/revoke", self.base))
            .basic_auth(client, Some(SECRET))
            .form(&[("token", token)])
            .send()
            .expect("revoke")
            .status()
            .as_u16()
    }

    /// Polls `check` until it holds (up to `secs`); panics with `what` otherwise.
    pub fn eventually(&self, secs: u64, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check() {
            if Instant::now() > deadline {
                panic!("timed out waiting for: {what}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM).
pub fn self_signed() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

impl Gateway {
    /// A gateway whose listener speaks HTTPS with a fresh self-signed certificate (trusted by
    /// `gw.http`), and that certificate's PEM.
    pub fn start_tls(setup: &Setup) -> (Gateway, String) {
        let (cert, key) = self_signed();
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("cert.pem"), &cert);
        write(&dir.path().join("key.pem"), &key);
        let port = free_port();
        let text = config_text(port, setup).replace("issuer = \"http://", "issuer = \"https://");
        let text = with_server_lines(&text, "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"");
        write(&dir.path().join("gateway.toml"), &text);
        (Gateway::start_in_tls(dir, port, &cert), cert)
    }
}

/// The `access_token` of a token answer.
pub fn at(v: &Value) -> &str {
    v["access_token"].as_str().expect("access_token")
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}
