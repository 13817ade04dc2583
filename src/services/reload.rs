//! Hot reload of the config file, under traffic.
//!
//! A `notify` watcher on the file's folder (not the file: editors that save by rename replace the
//! inode) and SIGHUP both lead to [`ConfigFile::reload`]: read, parse and validate the whole file
//! into the internal model, then swap it in with one `ArcSwap::store`
//! ([`AppState::replace_config`]). A request loads the live config once, so it sees one
//! consistent config from start to end. A refused file changes nothing: the old config stays in
//! force, the error (naming the key or line) is logged and `tokengate_config_reloads_total
//! {result="failed"}` goes up. Nothing here exits or panics.
//!
//! File events come in bursts (truncate, writes, close; or create, write, rename). [`Debounce`]
//! turns a burst into one reload, [`QUIET`] after its last event, or [`MAX_WAIT`] after its first
//! while a writer still has the file open, so a save applies within a second.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use sha2::{Digest, Sha256};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{self, ConfigError};
use crate::state::AppState;
use crate::tls::Certificates;

/// A burst of file events ends after this long without another one.
pub const QUIET: Duration = Duration::from_millis(150);
/// A reload happens at the latest this long after the first event of a burst, even if a writer
/// still holds the file open (or the platform reports no close).
pub const MAX_WAIT: Duration = Duration::from_millis(700);

/// SHA-256 of a config file's bytes: tells a real change from an event that changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(bytes: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(bytes).into())
    }

    /// The fingerprint of the file now; `None` when it cannot be read.
    pub fn read(path: &Path) -> Option<Fingerprint> {
        std::fs::read(path).ok().map(|b| Fingerprint::of(&b))
    }
}

/// What set off a reload (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The watcher saw the file change. Skipped when the bytes equal the config in force.
    FileChange,
    /// SIGHUP: always reloads (route upstream host names are resolved again).
    Signal,
    /// The check when the watcher starts, for a save made while the gateway was starting.
    Startup,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::FileChange => "file change",
            Trigger::Signal => "SIGHUP",
            Trigger::Startup => "change during start-up",
        })
    }
}

/// What a successful reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The new config is in force. `restart` names the changed settings that only take effect
    /// after a restart (their running values stay).
    Applied { restart: Vec<&'static str> },
    /// The file holds the config in force, byte for byte: nothing to do.
    Unchanged,
}

/// The config file and the fingerprint of the version in force.
pub struct ConfigFile {
    path: PathBuf,
    in_force: Option<Fingerprint>,
    /// Whether the last reload was refused: the next good one says the file is good again, so
    /// the log does not end on an error that no longer holds.
    last_refused: bool,
    /// The HTTPS listener's certificate: a config naming other files switches it to them.
    certificates: Option<Arc<Certificates>>,
}

impl ConfigFile {
    /// `in_force`: the fingerprint of the file as loaded at start (read before loading it, so a
    /// save in between shows up as a difference).
    pub fn new(path: PathBuf, in_force: Option<Fingerprint>) -> ConfigFile {
        ConfigFile {
            path,
            in_force,
            last_refused: false,
            certificates: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the file and swaps it in, or keeps the config in force; logs what happened and
    /// counts it in `tokengate_config_reloads_total`. Blocking (file read, route host names).
    pub fn reload(&mut self, state: &AppState, trigger: Trigger) -> Result<Outcome, ConfigError> {
        let result = self.load_and_swap(state, trigger);
        let path = self.path.display();
        match &result {
            Ok(Outcome::Applied { restart }) => {
                state.metrics.config_reloads.with_label_values(&["ok"]).inc();
                log::info!("config reloaded from {path} ({trigger})");
                if !restart.is_empty() {
                    log::warn!(
                        "{path}: {} changed; this needs a restart to take effect, until then the running values stay",
                        restart.join(", ")
                    );
                }
            }
            Ok(Outcome::Unchanged) if self.last_refused => {
                log::info!("{path} is valid again and holds the config in force ({trigger})")
            }
            Ok(Outcome::Unchanged) => log::debug!("{path}: unchanged, nothing to reload ({trigger})"),
            Err(e) => {
                state.metrics.config_reloads.with_label_values(&["failed"]).inc();
                log::error!("config reload ({trigger}) refused, the config in force stays: {path}: {e}");
            }
        }
        self.last_refused = result.is_err();
        result
    }

    fn load_and_swap(&mut self, state: &AppState, trigger: Trigger) -> Result<Outcome, ConfigError> {
        let io = |source| ConfigError::Io {
            path: self.path.clone(),
            source,
        };
        // The same reading and parsing as `config::load_file` at start and for `--check`, so the
        // messages are the same; read here once to fingerprint exactly the bytes parsed.
        let text = std::fs::read_to_string(&self.path).map_err(io)?;
        let fingerprint = Fingerprint::of(text.as_bytes());
        if trigger != Trigger::Signal && self.in_force == Some(fingerprint) {
            return Ok(Outcome::Unchanged);
        }
        let base = self.path.parent().unwrap_or(Path::new("."));
        let config = config::parse_str(&text, base)?;
        // A new signing key applies with the rest, or the whole reload is refused.
        state
            .rotate_jwt_keys(&config.start.keys)
            .map_err(|e| ConfigError::Invalid {
                key: "oauth.jwt_signing_key".into(),
                message: e.to_string(),
            })?;
        // So do other certificate files, when the listener speaks HTTPS.
        let switchable = match (&self.certificates, &config.start.process.tls) {
            (Some(certificates), Some(files)) => {
                certificates.switch(files).map_err(|e| ConfigError::Invalid {
                    key: "server.tls_cert".into(),
                    message: e.to_string(),
                })?;
                true
            }
            _ => false,
        };
        let restart = state.replace_config_with(config, switchable);
        self.in_force = Some(fingerprint);
        Ok(Outcome::Applied { restart })
    }
}

/// What a file event says about the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Being written (created, truncated, data written): more is likely to come.
    Writing,
    /// Written and closed, renamed into place, removed, changed metadata, or events were lost.
    Settled,
}

/// Sorts a watcher event: `None` when it concerns none of `names` (the file, and the file a
/// symlinked config points to). Kubernetes mounts a ConfigMap or Secret as `name ->
/// ..data/name`, and an update swaps the `..data` symlink to a new `..<timestamp>` folder: events
/// on such `..` entries count too. Opens and reads (ours included) are ignored, so a reload does
/// not set off another; a reload whose bytes equal the config in force changes nothing.
pub fn classify(event: &notify::Event, names: &[OsString]) -> Option<Seen> {
    if event.need_rescan() {
        return Some(Seen::Settled);
    }
    let concerns = |p: &PathBuf| {
        p.file_name()
            .is_some_and(|n| names.iter().any(|name| name == n) || n.as_encoded_bytes().starts_with(b".."))
    };
    if !event.paths.iter().any(concerns) {
        return None;
    }
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Seen::Settled),
        EventKind::Access(_) => None,
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_)) => Some(Seen::Writing),
        _ => Some(Seen::Settled),
    }
}

/// Turns a burst of file events into one reload. Pure: it is given the time of each event.
#[derive(Debug, Default)]
pub struct Debounce {
    first: Option<Instant>,
    last: Option<Instant>,
    writing: bool,
}

impl Debounce {
    pub fn event(&mut self, now: Instant, seen: Seen) {
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.writing = seen == Seen::Writing;
    }

    /// When to reload; `None` when no event is pending.
    pub fn due(&self) -> Option<Instant> {
        let cap = self.first? + MAX_WAIT;
        if self.writing {
            return Some(cap);
        }
        Some((self.last? + QUIET).min(cap))
    }

    /// Forgets the pending events (a reload has read the file).
    pub fn clear(&mut self) {
        *self = Debounce::default();
    }
}

/// The folder to watch for `path`.
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

type Events = mpsc::UnboundedSender<notify::Result<notify::Event>>;

/// Watches the file's folder, non-recursively, so that a file replaced by rename or recreated is
/// still seen; and, when the file is a symlink, the folder of the file it points to (an edit
/// there changes the config too). Returns the watcher and the file names that concern it.
fn watch(path: &Path, tx: Events) -> notify::Result<(RecommendedWatcher, Vec<OsString>)> {
    let mut watcher = notify::recommended_watcher(move |event| {
        // The receiver is gone only when the service stops.
        let _ = tx.send(event);
    })?;
    let folder = folder_of(path);
    watcher.watch(&folder, RecursiveMode::NonRecursive)?;
    let mut names: Vec<OsString> = path.file_name().map(OsStr::to_os_string).into_iter().collect();
    let symlink = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if let Some(target) = symlink.then(|| std::fs::canonicalize(path).ok()).flatten() {
        let target_folder = folder_of(&target);
        if std::fs::canonicalize(&folder).ok().as_ref() != Some(&target_folder) {
            watcher.watch(&target_folder, RecursiveMode::NonRecursive)?;
        }
        names.extend(target.file_name().map(OsStr::to_os_string));
    }
    Ok((watcher, names))
}

/// The pingora background service: watcher, SIGHUP and debounce around [`ConfigFile::reload`].
pub struct ConfigReloader {
    state: Arc<AppState>,
    file: Arc<Mutex<ConfigFile>>,
    /// The HTTPS listener's certificate, read again at every reload.
    certificates: Option<Arc<Certificates>>,
}

impl ConfigReloader {
    pub fn new(state: Arc<AppState>, file: ConfigFile) -> ConfigReloader {
        ConfigReloader {
            state,
            file: Arc::new(Mutex::new(file)),
            certificates: None,
        }
    }

    /// Also reads the listener's certificate and key files again at every reload (SIGHUP after
    /// a renewal), so new connections get a renewed certificate.
    pub fn with_certificates(mut self, certificates: Option<Arc<Certificates>>) -> ConfigReloader {
        // A config naming other files switches to them too (`ConfigFile::load_and_swap`).
        self.file.lock().unwrap_or_else(PoisonError::into_inner).certificates = certificates.clone();
        self.certificates = certificates;
        self
    }

    /// Reloads on the blocking pool (reading the file and resolving route hosts may block).
    async fn reload(&self, trigger: Trigger) {
        let state = self.state.clone();
        let file = self.file.clone();
        let certificates = self.certificates.clone();
        let job = tokio::task::spawn_blocking(move || {
            // A poisoned lock only means an earlier reload panicked; the file state is still valid.
            let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
            // The outcome is logged and counted inside.
            let _ = file.reload(&state, trigger);
            if let Some(certificates) = certificates {
                match certificates.reload() {
                    Ok(true) => log::info!("a new certificate from server.tls_cert is served on new connections"),
                    Ok(false) => {}
                    Err(e) => log::error!("certificate reload ({trigger}) refused, the certificate in use stays: {e}"),
                }
            }
        });
        if let Err(e) = job.await {
            log::error!("config reload ({trigger}) did not finish, the config in force stays: {e}");
        }
    }
}

async fn next_hangup(hup: &mut Option<Signal>) -> Option<()> {
    match hup {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[async_trait]
impl BackgroundService for ConfigReloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let path = self
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .path()
            .to_path_buf();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (watcher, names) = match watch(&path, tx) {
            Ok((w, names)) => (Some(w), names),
            Err(e) => {
                log::error!(
                    "cannot watch {}: {e}; saves are not seen, SIGHUP still reloads",
                    path.display()
                );
                (None, Vec::new())
            }
        };
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("cannot handle SIGHUP: {e}");
                None
            }
        };
        if watcher.is_some() && hup.is_some() {
            log::info!("watching {} for changes; SIGHUP also reloads", path.display());
        }
        self.reload(Trigger::Startup).await;
        let mut debounce = Debounce::default();
        let mut events_open = watcher.is_some();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                event = rx.recv(), if events_open => match event {
                    Some(Ok(event)) => {
                        if let Some(seen) = classify(&event, &names) {
                            debounce.event(Instant::now(), seen);
                        }
                    }
                    Some(Err(e)) => log::warn!("config watcher: {e}"),
                    None => events_open = false,
                },
                // Pending file events stay pending: if a save was under way, the reload they lead
                // to reads the finished file (and is skipped when it is what SIGHUP loaded).
                Some(()) = next_hangup(&mut hup) => self.reload(Trigger::Signal).await,
                () = sleep_until(debounce.due()) => {
                    debounce.clear();
                    self.reload(Trigger::FileChange).await;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "reload_tests.rs"]
mod tests;
