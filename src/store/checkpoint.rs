//! WAL checkpoints off the commit path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold: the writer
//! copies every page the WAL holds into the database file and syncs it, and every request waiting
//! for a commit waits for that too (tens of milliseconds, once or twice a second under load). So a thread
//! of its own, on its own connection, copies frames while the writer goes on committing (a
//! PASSIVE checkpoint never blocks a writer).
//!
//! The WAL only starts over from its first frame once all of it is in the database. Under
//! steady writes a background pass never catches the last frames, and a WAL that only grows
//! makes every commit's sync slower (growing a file costs a metadata write; overwriting does
//! not). So once a pass has found the WAL past [`RESTART_FRAMES`], the writer copies the few
//! frames appended during that pass itself, and its next commit rewrites the WAL from the start.
//! SQLite's own automatic checkpoint stays on at [`HARD_LIMIT_FRAMES`], should this ever fall
//! behind.

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};

use rusqlite::Connection;

use super::StoreError;

/// WAL size (frames of one page) past which the writer finishes a background pass so the WAL
/// restarts: the size SQLite's automatic checkpoint had here.
pub const RESTART_FRAMES: i64 = 4000;

/// SQLite's automatic checkpoint, inside the commit, as a backstop only.
pub const HARD_LIMIT_FRAMES: i64 = 4 * RESTART_FRAMES;

/// Commits between two nudges of the checkpoint thread.
const NUDGE_EVERY: u32 = 256;

/// Where the checkpoint thread is. Only the writer moves it out of `IDLE` and `DONE`, only the
/// thread out of `RUNNING`, so no pass starts while the writer finishes the last one.
const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

/// What the writer and the checkpoint thread share.
#[derive(Default)]
struct Shared {
    phase: AtomicU8,
    /// WAL frames the last pass found.
    wal_frames: AtomicI64,
}

/// The writer's side: starts background passes and finishes them.
pub struct Checkpoints {
    nudge: mpsc::SyncSender<()>,
    shared: Arc<Shared>,
    commits: u32,
}

impl Checkpoints {
    /// Opens a second connection to `path` and starts the checkpoint thread on it. The thread
    /// ends when the writer drops this.
    pub fn start(path: &Path) -> Result<Checkpoints, StoreError> {
        let conn = open(path)?;
        let shared = Arc::new(Shared::default());
        let (nudge, nudged) = mpsc::sync_channel(1);
        let theirs = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("tokengate-ckpt".into())
            .spawn(move || {
                while nudged.recv().is_ok() {
                    let frames = passive(&conn).unwrap_or_else(|e| {
                        log::warn!("background WAL checkpoint failed: {e}");
                        0
                    });
                    theirs.wal_frames.store(frames, Ordering::Relaxed);
                    theirs.phase.store(DONE, Ordering::Release);
                }
            })
            .map_err(|e| StoreError::Db(e.to_string()))?;
        Ok(Checkpoints {
            nudge,
            shared,
            commits: 0,
        })
    }

    /// Called by the writer after each commit.
    pub fn after_commit(&mut self, conn: &Connection) {
        self.commits += 1;
        match self.shared.phase.load(Ordering::Acquire) {
            DONE => {
                if self.shared.wal_frames.load(Ordering::Relaxed) >= RESTART_FRAMES {
                    // What is left is what was appended during the pass: a short copy.
                    if let Err(e) = passive(conn) {
                        log::warn!("WAL checkpoint failed: {e}");
                    }
                }
                self.shared.phase.store(IDLE, Ordering::Release);
            }
            IDLE if self.commits >= NUDGE_EVERY => {
                self.commits = 0;
                self.shared.phase.store(RUNNING, Ordering::Release);
                if self.nudge.try_send(()).is_err() {
                    // The thread is gone: SQLite's own checkpoint at the hard limit remains.
                    self.shared.phase.store(IDLE, Ordering::Release);
                }
            }
            _ => {}
        }
    }
}

/// The checkpoint thread's connection: the same durability settings as the writer's, since a
/// checkpoint syncs with its own connection's settings.
fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::Db(e.to_string()))?;
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;")
        .map_err(|e| StoreError::Db(e.to_string()))?;
    Ok(conn)
}

/// One PASSIVE checkpoint; returns the frames the WAL held. A checkpoint already running on the
/// other connection is not an error: this one just copies nothing.
fn passive(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The WAL header's checkpoint sequence number: it goes up each time the WAL restarts.
    fn restarts(db: &Path) -> u32 {
        let wal = std::fs::read(db.with_extension("db-wal")).unwrap();
        u32::from_be_bytes(wal[12..16].try_into().unwrap())
    }

    fn wal_db(dir: &tempfile::TempDir) -> (std::path::PathBuf, Connection) {
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (v INTEGER);",
        )
        .unwrap();
        (path, conn)
    }

    /// Reports a finished pass over a WAL of `frames`, lets the writer take it after a commit,
    /// commits once more, and returns how many times the WAL restarted meanwhile.
    fn restarts_after_pass(frames: i64) -> u32 {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = wal_db(&dir);
        let mut ckpt = Checkpoints::start(&path).unwrap();
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let before = restarts(&path);
        ckpt.shared.wal_frames.store(frames, Ordering::Relaxed);
        ckpt.shared.phase.store(DONE, Ordering::Release);
        ckpt.after_commit(&conn);
        assert_eq!(ckpt.shared.phase.load(Ordering::Acquire), IDLE, "the pass is taken");
        conn.execute("INSERT INTO t VALUES (2)", []).unwrap();
        restarts(&path) - before
    }

    #[test]
    fn after_a_pass_over_a_big_wal_the_writer_lets_it_restart() {
        assert_eq!(
            restarts_after_pass(RESTART_FRAMES),
            1,
            "the next commit rewrote the WAL from its start"
        );
    }

    #[test]
    fn a_small_wal_is_left_to_the_checkpoint_thread() {
        assert_eq!(restarts_after_pass(RESTART_FRAMES - 1), 0, "no checkpoint, no restart");
    }

    #[test]
    fn the_thread_checkpoints_when_nudged_and_reports_back() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = wal_db(&dir);
        let mut ckpt = Checkpoints::start(&path).unwrap();
        for i in 0..NUDGE_EVERY {
            conn.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
            ckpt.after_commit(&conn);
        }
        assert_eq!(ckpt.shared.phase.load(Ordering::Acquire), RUNNING, "nudged");
        // The thread answers through `phase`; wait for it (bounded, no fixed sleep).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while ckpt.shared.phase.load(Ordering::Acquire) != DONE {
            assert!(std::time::Instant::now() < deadline, "no pass reported");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(ckpt.shared.wal_frames.load(Ordering::Relaxed) > 0);
        // Due for a nudge, but the finished pass is taken first: no pass runs while the writer
        // finishes one.
        conn.execute("INSERT INTO t VALUES (0)", []).unwrap();
        ckpt.commits = NUDGE_EVERY;
        ckpt.after_commit(&conn);
        assert_eq!(ckpt.shared.phase.load(Ordering::Acquire), IDLE, "taken, not restarted");
    }
}
