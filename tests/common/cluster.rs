//! Several gateway processes on one PostgreSQL database (cluster mode): each node in a folder of
//! its own with its own listener and metrics listener, all with the same key files (in a folder
//! the cluster shares; the first node generates them) and the same issuer.

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::pg::TestDb;
use super::relay::Relay;
use super::{bin, config_text, free_port, with_server_lines, write, Gateway, Setup};

/// The issuer every node shares: they stand behind one address.
pub const ISSUER: &str = "http://tokengate.cluster.test";

/// How one node differs from the cluster's shared setup.
#[derive(Clone, Default)]
pub struct NodeOptions {
    /// Its store url goes through a [`Relay`] the test can cut.
    pub relayed: bool,
    /// More `[store]` lines, e.g. `stale_after_secs = 2`.
    pub store: String,
    /// `[oauth]` key lines instead of the shared files (`jwt_signing_key = "..."`).
    pub keys: Option<String>,
    /// More `[server]` lines, e.g. `admin_listen = "..."`.
    pub server: String,
}

impl NodeOptions {
    pub fn relayed(store: &str) -> NodeOptions {
        NodeOptions {
            relayed: true,
            store: store.into(),
            ..NodeOptions::default()
        }
    }
}

pub struct Node {
    pub gw: Gateway,
    /// `http://127.0.0.1:<metrics port>`: `/healthz` and `/metrics`.
    pub ops: String,
    pub relay: Option<Relay>,
}

impl Node {
    /// The relay in front of this node's database.
    pub fn relay(&self) -> &Relay {
        self.relay.as_ref().expect("a relayed node")
    }

    /// `GET /healthz`: status and body.
    pub fn healthz(&self) -> (u16, String) {
        match self
            .gw
            .http
            .get(format!("{}/healthz", self.ops))
            .timeout(Duration::from_secs(5))
            .send()
        {
            Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// `GET /healthz?detail`'s `store` object (`Value::Null` when absent or unreadable).
    pub fn store_health(&self) -> Value {
        let r = self
            .gw
            .http
            .get(format!("{}/healthz?detail", self.ops))
            .timeout(Duration::from_secs(5))
            .send();
        r.ok()
            .and_then(|r| r.json::<Value>().ok())
            .map_or(Value::Null, |v| v["store"].clone())
    }
}

/// Nodes started one folder and one process each; stopped (SIGKILL) with this value, before the
/// database is dropped.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub setup: Setup,
    /// The key files every node shares.
    pub keys: tempfile::TempDir,
    pub db: TestDb,
}

impl Cluster {
    /// A database and a key folder, no node yet.
    pub fn empty(setup: Setup) -> Cluster {
        Cluster {
            nodes: Vec::new(),
            setup,
            keys: tempfile::tempdir().expect("key folder"),
            db: TestDb::create(),
        }
    }

    /// `n` nodes on `setup`, each with the default options.
    pub fn start(n: usize, setup: Setup) -> Cluster {
        Cluster::start_with(setup, &vec![NodeOptions::default(); n])
    }

    /// A node per entry of `options`: the first alone (it creates the schema and the keys), then
    /// the others at once.
    pub fn start_with(setup: Setup, options: &[NodeOptions]) -> Cluster {
        let mut c = Cluster::empty(setup);
        if let Some((first, rest)) = options.split_first() {
            c.add(first);
            let prepared: Vec<_> = rest.iter().map(|o| c.prepare(o)).collect();
            let started: Vec<Node> = std::thread::scope(|s| {
                let handles: Vec<_> = prepared
                    .into_iter()
                    .map(|(dir, port, ops, relay)| {
                        s.spawn(move || Node {
                            gw: Gateway::start_in(dir, port),
                            ops,
                            relay,
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("node start")).collect()
            });
            c.nodes.extend(started);
        }
        c
    }

    pub fn jwt_key(&self) -> PathBuf {
        self.keys.path().join("jwt.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.keys.path().join("server.key")
    }

    /// The config text of a node listening on `port`, with metrics on `mport`, whose store is
    /// at `url`.
    pub fn config(&self, port: u16, mport: u16, url: &str, options: &NodeOptions) -> String {
        let mut setup = self.setup.clone();
        let keys = options.keys.clone().unwrap_or_else(|| {
            format!(
                "jwt_signing_key = \"{}\"\nserver_key = \"{}\"",
                self.jwt_key().display(),
                self.server_key().display()
            )
        });
        setup.oauth = format!("{}\n{keys}\n", setup.oauth);
        let text = config_text(port, &setup).replacen(
            &format!("issuer = \"http://127.0.0.1:{port}\""),
            &format!("issuer = \"{ISSUER}\""),
            1,
        );
        let text = with_server_lines(
            &text,
            &format!("metrics_listen = \"127.0.0.1:{mport}\"\n{}", options.server),
        );
        format!("{text}\n[store]\nurl = \"{url}\"\npool_size = 4\n{}\n", options.store)
    }

    /// A node's folder with its config written, its port, metrics url and relay.
    fn prepare(&self, options: &NodeOptions) -> (tempfile::TempDir, u16, String, Option<Relay>) {
        let dir = tempfile::tempdir().expect("node folder");
        let (port, mport) = (free_port(), free_port());
        let relay = options.relayed.then(|| Relay::start(self.db.server_addr()));
        let url = relay.as_ref().map_or(self.db.url.clone(), |r| self.db.url_via(r.addr));
        write(
            &dir.path().join("gateway.toml"),
            &self.config(port, mport, &url, options),
        );
        (dir, port, format!("http://127.0.0.1:{mport}"), relay)
    }

    /// Starts one more node; its index in `nodes`.
    pub fn add(&mut self, options: &NodeOptions) -> usize {
        let (dir, port, ops, relay) = self.prepare(options);
        self.nodes.push(Node {
            gw: Gateway::start_in(dir, port),
            ops,
            relay,
        });
        self.nodes.len() - 1
    }

    /// Runs a node that is expected to refuse to start: its exit status (`None` when it was
    /// still running after 30 s, then killed) and its stderr.
    pub fn start_refused(&self, options: &NodeOptions) -> (Option<ExitStatus>, String) {
        let (dir, ..) = self.prepare(options);
        let log = dir.path().join("gateway.log");
        let mut child = Command::new(bin())
            .arg("--conf")
            .arg(dir.path().join("gateway.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn tokengate");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, std::fs::read_to_string(&log).unwrap_or_default())
    }

    /// Node `i`'s gateway.
    pub fn gw(&self, i: usize) -> &Gateway {
        &self.nodes[i].gw
    }

    /// Every node's log, each under its index.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("----- node {i} (port {}) -----\n{}", n.gw.port, n.gw.log()))
            .collect()
    }

    /// Polls `check` until it holds (up to `secs`); panics with `what` and every node's log
    /// otherwise.
    pub fn eventually(&self, secs: u64, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check() {
            if Instant::now() > deadline {
                panic!("timed out waiting for: {what}; logs:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The statuses of `GET /api/x` with `token` at every node, in node order.
    pub fn statuses(&self, token: &str) -> Vec<u16> {
        self.nodes.iter().map(|n| n.gw.call("/api/x", token)).collect()
    }

    /// Whether every node answers `status` to `token`.
    pub fn all(&self, token: &str, status: u16) -> bool {
        self.nodes.iter().all(|n| n.gw.call("/api/x", token) == status)
    }
}

/// Random `tga_` texts of the right length: well-formed opaque access tokens no key minted.
pub fn forged_opaque(n: usize) -> Vec<String> {
    use base64::Engine;
    (0..n)
        .map(|_| {
            let raw: [u8; 64] = std::array::from_fn(|_| rand::random::<u8>());
            format!("tga_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
        })
        .collect()
}
