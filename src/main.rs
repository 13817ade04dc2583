//! The `tokengate` binary: command line, config, state, pingora server.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::background_service;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::listening::Service;
use tokengate::config::{self, Config};
use tokengate::gateway::connections::ConnectionLimit;
use tokengate::gateway::drain::Drain;
use tokengate::gateway::proxy::Gateway;
use tokengate::services::health::UpstreamHealth;
use tokengate::services::ops_http;
use tokengate::services::reload::{ConfigFile, ConfigReloader, Fingerprint};
use tokengate::services::sweeper::Sweeper;
use tokengate::state::AppState;
use tokengate::tls;
use tokengate::tokens::jwt::previous_key_jwk;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// OAuth2 token gateway with WSO2-style multiple-active-access-token renewal policy.
#[derive(Parser)]
#[command(name = "tokengate", version, about)]
struct Cli {
    /// The config file.
    #[arg(short, long, default_value = "conf/gateway.toml")]
    conf: PathBuf,
    /// Validate the config, print what is wrong, exit 0 (valid) or 1.
    #[arg(long)]
    check: bool,
    /// Graceful upgrade: take over the listening sockets of the gateway running on this config
    /// (send it SIGQUIT once this one has started), then serve once it has finished.
    #[arg(long)]
    upgrade: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Read a client secret on stdin, print its secret_sha256.
    HashSecret,
    /// Read a password on stdin (not echoed), print an argon2id PHC string.
    HashPassword,
    /// Drive the admin API (`server.admin_listen`): list and revoke tokens.
    Admin(tokengate::admin::cli::AdminArgs),
    /// Run a demo upstream that echoes the identity headers (for the quick start).
    DemoUpstream {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
    },
}

fn read_secret(prompt: &str) -> Result<String, String> {
    let stdin = std::io::stdin();
    let text = if stdin.is_terminal() {
        rpassword::prompt_password(prompt).map_err(|e| e.to_string())?
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map_err(|e| e.to_string())?;
        line
    };
    let text = text.trim_end_matches(['\r', '\n']).to_string();
    if text.is_empty() {
        return Err("empty input".into());
    }
    Ok(text)
}

fn main() -> ExitCode {
    tokengate::logging::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::HashSecret) => {
            read_secret("client secret: ").map(|s| println!("{}", tokengate::oauth::client_auth::hash_secret(&s)))
        }
        Some(Command::HashPassword) => read_secret("password: ")
            .and_then(|p| tokengate::oauth::passwords::hash_password(&p))
            .map(|h| println!("{h}")),
        Some(Command::DemoUpstream { listen }) => match std::net::TcpListener::bind(listen) {
            Ok(l) => {
                eprintln!("demo upstream listening on {listen}");
                tokengate::demo_upstream::serve(l);
                Ok(())
            }
            Err(e) => Err(format!("cannot listen on {listen}: {e}")),
        },
        Some(Command::Admin(args)) => tokengate::admin::cli::run(args, &cli.conf),
        None if cli.check => load(&cli.conf).map(|_| println!("{}: ok", cli.conf.display())),
        None => run(cli.conf, cli.upgrade),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokengate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads and validates the config, and the TLS and previous JWT key files it names; the error is
/// the one-line reason.
fn load(conf_path: &Path) -> Result<Config, String> {
    let config = config::load_file(conf_path).map_err(|e| format!("{}: {e}", conf_path.display()))?;
    if let Some(files) = &config.start.process.tls {
        tls::check(files).map_err(|e| format!("{}: {e}", conf_path.display()))?;
    }
    for path in &config.start.keys.jwt_previous_keys {
        previous_key_jwk(path).map_err(|e| format!("{}: {e}", conf_path.display()))?;
    }
    Ok(config)
}

/// Warns about settings that put credentials at risk.
fn warn_about_exposure(config: &Config) {
    let s = &config.start.process;
    let public = s.listen.parse::<SocketAddr>().is_ok_and(|a| !a.ip().is_loopback());
    if s.tls.is_none() && public {
        log::warn!(
            "the token endpoint is served over plain HTTP on {}: client secrets and passwords cross the network in clear; set server.tls_cert and server.tls_key",
            s.listen
        );
    }
    if s.tls.is_some() && config.oauth.issuer.starts_with("http://") {
        log::warn!(
            "the listener speaks HTTPS but oauth.issuer is {:?}: clients read endpoint URLs from the metadata; set an https:// issuer",
            config.oauth.issuer
        );
    }
}

/// Raises the soft limit on open files to the hard limit, as Go's runtime, nginx
/// (`worker_rlimit_nofile`) and HAProxy do: every client connection and every upstream connection
/// is a file, and the usual soft limit of 1,024 (systemd's default for services) made wrk with
/// 2,000 connections get 502s ("Too many open files") while the hard limit allowed far more.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => log::info!("open-file limit raised from {soft} to {hard}"),
            Err(e) => log::warn!("open-file limit stays at {soft} (could not raise it to {hard}: {e})"),
        },
        Ok(_) => {}
        Err(e) => log::warn!("could not read the open-file limit: {e}"),
    }
}

/// Opens the data folder's lock file (creating the folder, 0700, if missing).
fn data_dir_lock_file(dir: &Path) -> Result<(std::fs::File, PathBuf), String> {
    tokengate::fsutil::create_private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("tokengate.lock");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((file, path))
}

/// Takes the data folder for this process alone: a second gateway on the same folder would
/// open the same store and keys, and each would keep its own index of the tokens in it. The
/// lock lasts as long as the returned file is open (the process's life).
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, String> {
    let (file, path) = data_dir_lock_file(dir)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another tokengate is running on the data folder {} (it holds {}); to replace it without downtime, start this one with --upgrade and send that one SIGQUIT",
            dir.display(),
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// In a graceful upgrade: waits, up to `limit`, for the gateway being replaced to release the
/// data folder (at its exit, once its last connection is closed), so that the store is loaded
/// only after its last change.
fn wait_for_data_dir(dir: &Path, limit: Duration) -> Result<std::fs::File, String> {
    let (file, path) = data_dir_lock_file(dir)?;
    // Far enough for any config: `checked_add` fails only past the clock's range.
    let deadline = Instant::now().checked_add(limit);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if deadline.is_none_or(|d| Instant::now() < d) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "graceful upgrade: the gateway being replaced still holds {} after {} s (pingora's 5 s, server.grace_period_secs, twice server.shutdown_timeout_secs and 10 s); it did not exit, so this one does not load the store",
                    path.display(),
                    limit.as_secs()
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(format!("cannot lock {}: {e}", path.display())),
        }
    }
}

/// How long pingora's old process goes on accepting after sending its listening sockets
/// (its `CLOSE_TIMEOUT`), before it stops and shuts down.
const PINGORA_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest path a Unix socket address holds (`sun_path` less its final NUL).
const MAX_UNIX_SOCKET_PATH: usize = 107;

/// Builds the pingora server. With `upgrade`, it receives the listening sockets of the gateway
/// being replaced (waiting a few seconds for it to get SIGQUIT; it exits when none come), then
/// waits for that gateway to release the data folder. Returns it with the data folder's lock.
fn server(config: &Config, upgrade: bool) -> Result<(Server, std::fs::File), String> {
    let s = &config.start.process;
    let conf = ServerConf {
        threads: s.threads,
        // One current-thread runtime per worker thread instead of a work-stealing one: proxied
        // requests are served faster (docs/decisions.md). Store acks reach each such runtime
        // through one relay task (`store::ack`).
        work_stealing: false,
        // pingora keeps the runtimes going for its grace period, then drops every task: the
        // connections get `grace_period_secs` to end with an answer, then the requests under
        // way `shutdown_timeout_secs` to finish (`Drain`); the process exits sooner once none
        // is left.
        grace_period_seconds: Some(s.grace_period_secs.saturating_add(s.shutdown_timeout_secs)),
        graceful_shutdown_timeout_seconds: Some(s.shutdown_timeout_secs),
        upgrade_sock: s.upgrade_sock.to_string_lossy().into_owned(),
        ..ServerConf::default()
    };
    if !upgrade {
        let lock = lock_data_dir(&s.data_dir)?;
        check_listeners_free(config)?;
        let mut server = Server::new_with_opt_and_conf(None, conf);
        server.bootstrap();
        return Ok((server, lock));
    }
    let sock = &s.upgrade_sock;
    if sock.as_os_str().len() > MAX_UNIX_SOCKET_PATH {
        return Err(format!(
            "server.upgrade_sock: {} is longer than a Unix socket address holds ({MAX_UNIX_SOCKET_PATH} bytes); set a shorter path",
            sock.display()
        ));
    }
    if !sock
        .parent()
        .is_some_and(|dir| dir.as_os_str().is_empty() || dir.is_dir())
    {
        return Err(format!(
            "server.upgrade_sock: the folder of {} does not exist",
            sock.display()
        ));
    }
    let opt = Opt {
        upgrade: true,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    log::info!(
        "graceful upgrade: waiting on {} for the listening sockets of the running gateway (send it SIGQUIT)",
        sock.display()
    );
    // Exits the process when no sockets come within about six seconds.
    server.bootstrap();
    log::info!(
        "graceful upgrade: listening sockets received; waiting for the running gateway to finish its requests and exit"
    );
    // New connections wait in the listeners' backlog meanwhile: none is refused.
    // The old one: pingora's close timeout, the grace period and shutdown timeout (`Drain`),
    // then at most the shutdown timeout again for its runtimes' blocking threads.
    let limit = PINGORA_CLOSE_TIMEOUT
        .as_secs()
        .saturating_add(s.grace_period_secs)
        .saturating_add(s.shutdown_timeout_secs.saturating_mul(2))
        .saturating_add(10);
    let limit = Duration::from_secs(limit);
    let lock = wait_for_data_dir(&s.data_dir, limit)?;
    Ok((server, lock))
}

/// Refuses to start when a listener's address cannot be bound (in use, or not this host's),
/// rather than letting pingora retry it for ever after logging that it listens.
fn check_listeners_free(config: &Config) -> Result<(), String> {
    let s = &config.start.process;
    let listeners = [
        ("server.listen", Some(&s.listen)),
        ("server.metrics_listen", s.metrics_listen.as_ref()),
        ("server.admin_listen", s.admin_listen.as_ref()),
    ];
    for (key, addr) in listeners {
        if let Some(addr) = addr {
            std::net::TcpListener::bind(addr.as_str()).map_err(|e| format!("{key}: cannot listen on {addr}: {e}"))?;
        }
    }
    Ok(())
}

fn run(conf_path: PathBuf, upgrade: bool) -> Result<(), String> {
    // Fingerprinted before loading: a save made from here on is picked up when the watcher starts.
    let loaded = Fingerprint::read(&conf_path);
    let config: Config = load(&conf_path)?;
    // In an upgrade the store is loaded only once the old gateway is gone (`server`).
    let (mut server, _data_lock) = server(&config, upgrade)?;
    raise_open_file_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let state = rt
        .block_on(AppState::start(config.clone()))
        .map_err(|e| e.to_string())?;
    drop(rt);

    let s = &config.start.process;
    let mut app = pingora::proxy::http_proxy(&server.configuration, Gateway::new(state.clone()));
    let mut options = HttpServerOptions::default();
    // HTTP/1.1 idle connections are closed per request (`Gateway::request_filter`); HTTP/2
    // ones here, by the value at start.
    options.h2_idle_timeout = Some(config.server.keepalive_timeout);
    app.server_options = Some(options);
    // After SIGTERM or SIGQUIT the process ends once its connections are done (`Drain`); in an
    // upgrade its exit releases the data folder to the new process.
    let drain = Drain::new(|| std::process::exit(0));
    let mut proxy = Service::new("tokengate".to_string(), ConnectionLimit::new(app, state.clone(), drain));
    let certificates = match &s.tls {
        Some(files) => Some(std::sync::Arc::new(
            tls::Certificates::load(files).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let scheme = match &certificates {
        Some(certificates) => {
            // The listener asks `certificates` on every handshake: a reload can renew them, or
            // switch to other files.
            let mut settings =
                TlsSettings::intermediate("", "").map_err(|e| format!("server.tls_cert/tls_key: {e}"))?;
            settings.set_cert_resolver(certificates.clone());
            // Clients that offer HTTP/2 (ALPN h2) get it; the others HTTP/1.1. Upstreams are
            // always spoken to in HTTP/1.1.
            settings.enable_h2();
            proxy.add_tls_with_settings(&s.listen, None, settings);
            "https"
        }
        None => {
            proxy.add_tcp(&s.listen);
            "http"
        }
    };
    warn_about_exposure(&config);
    server.add_service(proxy);
    if let Some(addr) = &s.metrics_listen {
        server.add_service(ops_http::service(state.clone(), addr));
        log::info!("metrics on http://{addr}/metrics, health on http://{addr}/healthz");
    }
    if let Some(addr) = &s.admin_listen {
        server.add_service(tokengate::admin::http::service(state.clone(), addr));
        log::info!("admin API on http://{addr}/admin/");
    }
    server.add_service(background_service(
        "sweeper",
        Sweeper {
            state: state.clone(),
            interval: config.start.store.sweep_interval,
        },
    ));
    server.add_service(background_service(
        "upstream health",
        UpstreamHealth::new(state.clone()),
    ));
    server.add_service(background_service(
        "config reload",
        ConfigReloader::new(state.clone(), ConfigFile::new(conf_path, loaded)).with_certificates(certificates),
    ));
    log::info!("tokengate listening on {scheme}://{} ({} threads)", s.listen, s.threads);
    server.run_forever()
}
