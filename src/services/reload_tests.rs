use super::*;
use notify::event::{CreateKind, DataChange, RemoveKind, RenameMode};
use notify::Event;

const SECRET_SHA256: &str = "cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf";

fn conf(extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:18080\"\nthreads = 2\ndata_dir = \"data\"\n\
         [oauth]\njwt_algorithm = \"ES256\"\n{extra}\n\
         [[clients]]\nid = \"c\"\nsecret_sha256 = \"{SECRET_SHA256}\"\ngrant_types = [\"client_credentials\"]\n"
    )
}

const MULTI: &str = "[oauth.jwt.renew_token_without_revoking_existing]\nenable = true\n";

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    state: Arc<AppState>,
    file: ConfigFile,
}

async fn fixture(text: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    let in_force = Fingerprint::read(&path);
    let config = config::load_file(&path).unwrap();
    let state = AppState::start(config).await.unwrap();
    let file = ConfigFile::new(path.clone(), in_force);
    Fixture {
        _dir: dir,
        path,
        state,
        file,
    }
}

impl Fixture {
    fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }

    fn counts(&self) -> (u64, u64) {
        let c = &self.state.metrics.config_reloads;
        (
            c.with_label_values(&["ok"]).get(),
            c.with_label_values(&["failed"]).get(),
        )
    }

    fn multi(&self) -> bool {
        self.state.live().config.oauth.jwt_policy.enable
    }
}

#[tokio::test]
async fn a_valid_file_is_swapped_in_and_counted() {
    let mut f = fixture(&conf("")).await;
    assert!(!f.multi());
    f.write(&conf(MULTI));
    let out = f.file.reload(&f.state, Trigger::FileChange).unwrap();
    assert_eq!(out, Outcome::Applied { restart: vec![] });
    assert!(f.multi());
    assert_eq!(f.counts(), (1, 0));
    f.write(&conf(""));
    f.file.reload(&f.state, Trigger::FileChange).unwrap();
    assert!(!f.multi());
    assert_eq!(f.counts(), (2, 0));
}

#[tokio::test]
async fn unchanged_bytes_are_skipped_unless_sighup() {
    let mut f = fixture(&conf("")).await;
    assert_eq!(f.file.reload(&f.state, Trigger::Startup).unwrap(), Outcome::Unchanged);
    assert_eq!(
        f.file.reload(&f.state, Trigger::FileChange).unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(f.counts(), (0, 0));
    let out = f.file.reload(&f.state, Trigger::Signal).unwrap();
    assert_eq!(out, Outcome::Applied { restart: vec![] });
    assert_eq!(f.counts(), (1, 0));
}

#[tokio::test]
async fn a_refused_file_changes_nothing_and_is_counted() {
    let mut f = fixture(&conf(MULTI)).await;
    let before = f.state.live();
    let cases = [
        ("[oauth\n".to_string(), "line 1"),
        (
            conf("[oauth.jwt.renew_token_without_revoking_existing]\nenabled = true"),
            "enabled",
        ),
        (
            conf("[oauth.jwt.renew_token_without_revoking_existing]\nallowed_grant_types = [\"implicit\"]"),
            "oauth.jwt.renew_token_without_revoking_existing.allowed_grant_types",
        ),
        (
            conf("[[routes]]\npath_prefix = \"api\"\nupstream = \"127.0.0.1:1\""),
            "routes[0].path_prefix",
        ),
        (
            conf("[oauth.jwt.renew_token_without_revoking_existing]\nallowed_grant_types = [\u{201C}password\u{201D}]"),
            "straight quotes",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        f.write(text);
        let e = f.file.reload(&f.state, Trigger::FileChange).unwrap_err().to_string();
        assert!(e.contains(expected), "{expected}: {e}");
        assert!(Arc::ptr_eq(&before, &f.state.live()), "the config in force stays");
        assert_eq!(f.counts(), (0, i as u64 + 1));
    }
    std::fs::remove_file(&f.path).unwrap();
    let e = f.file.reload(&f.state, Trigger::FileChange).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }), "{e}");
    assert!(Arc::ptr_eq(&before, &f.state.live()));
    // Writing back the version in force needs no swap.
    f.write(&conf(MULTI));
    assert!(matches!(
        f.file.reload(&f.state, Trigger::FileChange).unwrap(),
        Outcome::Unchanged
    ));
}

#[tokio::test]
async fn start_only_settings_are_reported_and_keep_their_running_values() {
    let mut f = fixture(&conf("")).await;
    let changed =
        conf("").replace("18080", "18081").replace("threads = 2", "threads = 3") + "[store]\nsweep_interval_secs = 5\n";
    let changed = changed.replace(
        "[server]\n",
        "[server]\naccess_log = true\nbody_read_timeout_secs = 3\nupstream_connect_timeout_secs = 2\n\
         upstream_timeout_secs = 7\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
    );
    f.write(&changed);
    let out = f.file.reload(&f.state, Trigger::FileChange).unwrap();
    assert_eq!(
        out,
        Outcome::Applied {
            restart: vec!["server.listen", "server.threads", "store.sweep_interval_secs"]
        }
    );
    let live = f.state.live();
    assert_eq!(live.config.start.process.listen, "127.0.0.1:18080");
    assert_eq!(live.config.start.process.threads, 2);
    assert!(live.config.server.access_log, "access_log applies live");
    let server = &live.config.server;
    assert_eq!(server.body_read_timeout, Duration::from_secs(3), "timeouts apply live");
    assert_eq!(server.upstream_connect_timeout, Duration::from_secs(2));
    assert_eq!(server.upstream_timeout, Duration::from_secs(7));
    assert!(
        server.trusted_proxies.contains("10.1.2.3".parse().unwrap()),
        "trusted_proxies apply live"
    );
    // Still not in force: a later reload says so again.
    let out = f.file.reload(&f.state, Trigger::Signal).unwrap();
    assert!(matches!(out, Outcome::Applied { restart } if restart.len() == 3));
}

fn event(kind: EventKind, paths: &[&str]) -> Event {
    paths.iter().fold(Event::new(kind), |e, p| e.add_path(PathBuf::from(p)))
}

#[test]
fn classify_filters_on_the_file_name_and_ignores_reads() {
    let names = [OsString::from("gateway.toml")];
    let name = &names[..];
    let f = "/etc/tg/gateway.toml";
    let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
    assert_eq!(classify(&event(data, &[f]), name), Some(Seen::Writing));
    let created = EventKind::Create(CreateKind::File);
    assert_eq!(classify(&event(created, &[f]), name), Some(Seen::Writing));
    let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
    assert_eq!(classify(&event(closed, &[f]), name), Some(Seen::Settled));
    let opened = EventKind::Access(AccessKind::Open(AccessMode::Any));
    assert_eq!(classify(&event(opened, &[f]), name), None, "our own read");
    let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
    assert_eq!(
        classify(&event(renamed, &["/etc/tg/.gateway.toml.swp", f]), name),
        Some(Seen::Settled)
    );
    let removed = EventKind::Remove(RemoveKind::File);
    assert_eq!(classify(&event(removed, &[f]), name), Some(Seen::Settled));
    assert_eq!(classify(&event(data, &["/etc/tg/other.toml"]), name), None);
    assert_eq!(classify(&event(data, &["/etc/tg/gateway.toml.tmp"]), name), None);
    let lost = Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
    assert_eq!(classify(&lost, name), Some(Seen::Settled));
    // A Kubernetes volume update: the `..data` symlink renamed over, a `..<timestamp>` folder.
    let swapped = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
    assert_eq!(
        classify(&event(swapped, &["/etc/tg/..data_tmp", "/etc/tg/..data"]), name),
        Some(Seen::Settled)
    );
    let made = EventKind::Create(CreateKind::Folder);
    assert_eq!(
        classify(&event(made, &["/etc/tg/..2026_12_02_09_10_00.123"]), name),
        Some(Seen::Writing)
    );
    // The target of a symlinked config, under its own name.
    let both = [OsString::from("gateway.toml"), OsString::from("v2.toml")];
    assert_eq!(
        classify(&event(data, &["/srv/conf/v2.toml"]), &both),
        Some(Seen::Writing)
    );
}

#[test]
fn debounce_collapses_a_burst_into_one_due_time() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut d = Debounce::default();
    assert_eq!(d.due(), None);
    d.event(ms(0), Seen::Writing);
    assert_eq!(d.due(), Some(ms(0) + MAX_WAIT), "a writer has the file open");
    d.event(ms(2), Seen::Writing);
    d.event(ms(3), Seen::Settled);
    assert_eq!(
        d.due(),
        Some(ms(3) + QUIET),
        "closed: quiet period after the last event"
    );
    d.event(ms(100), Seen::Settled);
    assert_eq!(d.due(), Some(ms(100) + QUIET));
    // A steady stream of events cannot push the reload past MAX_WAIT.
    d.event(ms(690), Seen::Settled);
    assert_eq!(d.due(), Some(ms(0) + MAX_WAIT));
    d.clear();
    assert_eq!(d.due(), None);
    assert!(MAX_WAIT < Duration::from_millis(800), "a save applies within a second");
}

#[test]
fn the_watched_folder_of_a_bare_file_name_is_the_current_one() {
    assert_eq!(folder_of(Path::new("gateway.toml")), PathBuf::from("."));
    assert_eq!(folder_of(Path::new("/etc/tg/gateway.toml")), PathBuf::from("/etc/tg"));
}
