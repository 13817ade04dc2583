//! The gateway on a PostgreSQL store (`store.url`), against a real server: `TOKENGATE_TEST_PG`
//! (a url), else the local one scripts/test.sh provides; each test in a database of its own.
//! Tokens and revocations survive a SIGKILL, and a second gateway on the same database refuses
//! to start. A server that cannot be reached fails the tests; they are never skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use common::{bin, config_text, free_port, write, Gateway, Setup};

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Put into the gateway's url when it has no password (a server that trusts the user ignores
/// it), so the logs can be checked for it.
const PASSWORD: &str = "never-in-a-log";

fn server_url() -> String {
    std::env::var("TOKENGATE_TEST_PG").unwrap_or_else(|_| DEFAULT_SERVER.into())
}

/// Runs `sql` on the test server from a runtime of its own.
fn admin(sql: String) {
    let url = server_url();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut config = tokio_postgres::Config::from_str(&url).unwrap();
            config.connect_timeout(Duration::from_secs(5));
            let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap_or_else(|e| {
                panic!(
                    "cannot reach the test PostgreSQL ({e}); run scripts/test.sh, which starts \
                     one, or set TOKENGATE_TEST_PG to a server's url"
                )
            });
            tokio::spawn(conn);
            client.batch_execute(&sql).await.unwrap();
        })
    })
    .join()
    .unwrap();
}

/// A database of its own, dropped with this value.
struct TestDb {
    name: String,
    /// The url the gateway is given: the test server's, naming this database, with a password.
    url: String,
}

impl TestDb {
    fn create() -> TestDb {
        let name = format!("tokengate_test_{:016x}", rand::random::<u64>());
        admin(format!("CREATE DATABASE {name}"));
        let server = server_url();
        let (base, query) = server.split_once('?').map_or((&*server, None), |(b, q)| (b, Some(q)));
        let host_at = base.find("://").map_or(0, |i| i + 3);
        let host_end = base[host_at..].find('/').map_or(base.len(), |i| host_at + i);
        let mut authority = base[host_at..host_end].to_string();
        if let Some((user, host)) = authority.split_once('@') {
            if !user.contains(':') {
                authority = format!("{user}:{PASSWORD}@{host}");
            }
        }
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        let url = format!("{}{authority}/{name}{query}", &base[..host_at]);
        TestDb { name, url }
    }

    fn password(&self) -> Option<&str> {
        let authority = self.url.split("://").nth(1)?.split('/').next()?;
        authority.split_once('@')?.0.split_once(':').map(|(_, p)| p)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        admin(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// A folder with a gateway config on `port` whose store is `db`.
fn folder(db: &TestDb, port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::policy("enable = true", "enable = true");
    let config = format!(
        "{}\n[store]\nurl = \"{}\"\npool_size = 4\n",
        config_text(port, &setup),
        db.url
    );
    write(&dir.path().join("gateway.toml"), &config);
    dir
}

#[test]
fn tokens_and_revocations_survive_a_sigkill_and_a_second_node_is_refused() {
    let db = TestDb::create();
    let port = free_port();
    let gw = Gateway::start_in(folder(&db, port), port);
    let kept: Vec<String> = ["opaque-app", "jwt-app"]
        .iter()
        .flat_map(|c| [gw.cc(c), gw.password(c, "alice")])
        .map(|v| v["access_token"].as_str().unwrap().to_string())
        .collect();
    let revoked = gw.cc_scope("opaque-app", "b")["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(gw.revoke("opaque-app", &revoked), 200);
    assert_eq!(gw.call("/api/x", &revoked), 401);

    // A second gateway on the same database stops at once, naming it.
    let other = folder(&db, free_port());
    let out = Command::new(bin())
        .arg("--conf")
        .arg(other.path().join("gateway.toml"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second gateway started: {stderr}");
    assert!(
        stderr.contains("another tokengate node") && stderr.contains(&db.name),
        "{stderr}"
    );

    let log = gw.log();
    let gw = Gateway::start_in(gw.kill9(), port);
    for t in &kept {
        assert_eq!(gw.call("/api/x", t), 200, "a token issued before the SIGKILL");
    }
    assert_eq!(gw.call("/api/x", &revoked), 401, "a revocation made before the SIGKILL");
    assert!(gw.log().contains(&db.name), "the log names the database");
    if let Some(password) = db.password() {
        for text in [&log, &gw.log(), &stderr.to_string()] {
            assert!(!text.contains(password), "a password in a log:\n{text}");
        }
    }
}

#[test]
fn check_accepts_a_postgres_store_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[store]\nurl = \"postgres://gw:secret@127.0.0.1:9/tokens\"\n",
        config_text(free_port(), &Setup::default())
    );
    write(&dir.path().join("gateway.toml"), &config);
    let out = Command::new(bin())
        .arg("--check")
        .arg("--conf")
        .arg(dir.path().join("gateway.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
