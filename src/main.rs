//! The `tokengate` binary: command line, config, state, pingora server.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::background_service;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;
use tokengate::config::{self, Config};
use tokengate::gateway::connections::ConnectionLimit;
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
        None => run(cli.conf),
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

/// Takes the data folder for this process alone (created 0700 if missing): a second gateway on
/// the same folder would open the same store and keys, and each would keep its own index of the
/// tokens in it. The lock lasts as long as the returned file is open (the process's life).
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, String> {
    tokengate::fsutil::create_private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("tokengate.lock");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another tokengate is running on the data folder {} (it holds {})",
            dir.display(),
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
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

fn run(conf_path: PathBuf) -> Result<(), String> {
    // Fingerprinted before loading: a save made from here on is picked up when the watcher starts.
    let loaded = Fingerprint::read(&conf_path);
    let config: Config = load(&conf_path)?;
    let _data_lock = lock_data_dir(&config.start.process.data_dir)?;
    check_listeners_free(&config)?;
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
    let conf = ServerConf {
        threads: s.threads,
        // One current-thread runtime per worker thread instead of a work-stealing one: proxied
        // requests are served faster (docs/decisions.md). Store acks reach each such runtime
        // through one relay task (`store::ack`).
        work_stealing: false,
        grace_period_seconds: Some(s.grace_period_secs),
        graceful_shutdown_timeout_seconds: Some(s.shutdown_timeout_secs),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut app = pingora::proxy::http_proxy(&server.configuration, Gateway::new(state.clone()));
    let mut options = HttpServerOptions::default();
    // HTTP/1.1 idle connections are closed per request (`Gateway::request_filter`); HTTP/2
    // ones here, by the value at start.
    options.h2_idle_timeout = Some(config.server.keepalive_timeout);
    app.server_options = Some(options);
    let mut proxy = Service::new("tokengate".to_string(), ConnectionLimit::new(app, state.clone()));
    let certificates = match &s.tls {
        Some(files) => Some(std::sync::Arc::new(
            tls::Certificates::load(files).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let scheme = match &certificates {
        Some(certificates) => {
            // The listener asks `certificates` on every handshake: a reload can renew them.
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
