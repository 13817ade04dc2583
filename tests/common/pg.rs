//! The PostgreSQL server the store's tests run against: `TOKENGATE_TEST_PG` (a url), else the
//! local one scripts/test.sh provides; each test gets a database of its own ([`TestDb`]).

use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Put into the gateway's url when it has no password (a server that trusts the user ignores
/// it), so the logs can be checked for it.
pub const PASSWORD: &str = "never-in-a-log";

pub fn server_url() -> String {
    std::env::var("TOKENGATE_TEST_PG").unwrap_or_else(|_| DEFAULT_SERVER.into())
}

/// Runs `sql` on the test server's own database from a runtime of its own.
pub fn admin(sql: String) {
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

/// A url split around its host: `postgres://user:pw@` + `host:port` + `/db?query`.
struct Parts {
    head: String,
    host: String,
    tail: String,
}

fn split(url: &str) -> Parts {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let host_at = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[host_at..].find('/').map_or(base.len(), |i| host_at + i);
    let (user, host) = match base[host_at..host_end].rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host.to_string()),
        None => (String::new(), base[host_at..host_end].to_string()),
    };
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    Parts {
        head: format!("{}{user}", &base[..host_at]),
        host,
        tail: format!("{}{query}", &base[host_end..]),
    }
}

/// A database of its own, dropped with this value.
pub struct TestDb {
    pub name: String,
    /// The url the gateway is given: the test server's, naming this database, with a password.
    pub url: String,
}

impl TestDb {
    pub fn create() -> TestDb {
        let name = format!("tokengate_test_{:016x}", rand::random::<u64>());
        admin(format!("CREATE DATABASE {name}"));
        let server = split(&server_url());
        let mut head = server.head;
        if let Some(user) = head.strip_suffix('@').and_then(|h| h.rsplit_once("://")) {
            if !user.1.contains(':') {
                head = format!("{}://{}:{PASSWORD}@", user.0, user.1);
            }
        }
        let query = server
            .tail
            .split_once('?')
            .map(|(_, q)| format!("?{q}"))
            .unwrap_or_default();
        let url = format!("{head}{}/{name}{query}", server.host);
        TestDb { name, url }
    }

    pub fn password(&self) -> Option<&str> {
        let authority = self.url.split("://").nth(1)?.split('/').next()?;
        authority.split_once('@')?.0.split_once(':').map(|(_, p)| p)
    }

    /// The server's TCP address (a relay's target).
    pub fn server_addr(&self) -> SocketAddr {
        let host = split(&self.url).host;
        let has_port = match host.strip_prefix('[') {
            Some(v6) => v6.contains("]:"),
            None => host.contains(':'),
        };
        let with_port = if has_port { host } else { format!("{host}:5432") };
        with_port
            .to_socket_addrs()
            .unwrap_or_else(|e| panic!("the test PostgreSQL's host {with_port}: {e}"))
            .next()
            .expect("an address")
    }

    /// This database's url with the host replaced by `addr` (a relay in front of the server).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        let p = split(&self.url);
        format!("{}{addr}{}", p.head, p.tail)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        admin(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// Connects to `url` and runs `SELECT 1`, all within `limit`: `Err` says what failed.
pub fn probe(url: &str, limit: Duration) -> Result<(), String> {
    let url = url.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let attempt = async {
                let config = tokio_postgres::Config::from_str(&url).map_err(|e| e.to_string())?;
                let (client, conn) = config.connect(tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                client.simple_query("SELECT 1").await.map_err(|e| e.to_string())?;
                Ok(())
            };
            tokio::time::timeout(limit, attempt)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {limit:?}")))
        })
    })
    .join()
    .unwrap()
}
