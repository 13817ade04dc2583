//! A bare pingora 0.9 reverse proxy with no logic and the default allocator: the floor the load
//! harness (`benches/load/run.sh`) compares tokengate with.
//!
//!     cargo run --release --example passthrough -- 127.0.0.1:18082 127.0.0.1:18081 1
//!
//! A fourth argument `nosteal` switches pingora's work-stealing runtime (its default, the floor)
//! for one current-thread runtime per worker thread, as tokengate runs.

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::prelude::HttpPeer;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::Result;

struct Passthrough {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2).and_then(|u| u.parse().ok())) else {
        eprintln!("usage: passthrough LISTEN UPSTREAM [THREADS] [nosteal]");
        std::process::exit(2);
    };
    let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1);
    let conf = ServerConf {
        threads,
        work_stealing: args.get(4).map(String::as_str) != Some("nosteal"),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Passthrough { upstream });
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever()
}
