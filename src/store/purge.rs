//! Purging expired rows in bounded steps, and giving their space back.
//!
//! One `DELETE` of every expired row held the writer for the whole purge: a million rows took 1.3 s
//! here, every token request waited behind it, and the WAL grew by the size of the database. So a
//! purge works one segment of [`SEGMENT_ROWS`](super::expiries::SEGMENT_ROWS) rows per
//! transaction (the segments whose earliest expiry has passed, from the writer's [`Expiries`]),
//! and the writer serves whatever commits are queued between two steps: a request waits for one
//! step at most. Once the rows are gone,
//! incremental vacuum returns the free pages to the file system, [`VACUUM_PAGES`] per step, so the
//! file follows the live tokens back down.

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::expiries::{bounds, segment_of, Expiries, Table};
use super::StoreError;

/// Free pages returned to the file system per transaction (1 MiB: moving pages rewrites them).
pub const VACUUM_PAGES: i64 = 256;

/// Where a purge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Tokens,
    Changes,
    Vacuum,
    Done,
}

/// A purge under way, and who is waiting for its count.
pub struct Purge {
    now_ms: u64,
    deleted: u64,
    phase: Phase,
    /// The next segment of the current table to look at.
    next_segment: i64,
    /// Taken when the purge is answered.
    reply: Option<oneshot::Sender<Result<u64, StoreError>>>,
}

impl Purge {
    /// A purge of the rows expired at `now_ms`; `reply` is told how many went.
    pub fn new(now_ms: u64, reply: oneshot::Sender<Result<u64, StoreError>>) -> Purge {
        Purge {
            now_ms,
            deleted: 0,
            phase: Phase::Tokens,
            next_segment: 0,
            reply: Some(reply),
        }
    }

    /// Runs one bounded transaction. Returns `false` once the purge is over and its caller has
    /// been answered (with the count, or with the error that stopped it).
    pub fn step(&mut self, conn: &Connection, expiries: &mut Expiries) -> bool {
        match self.advance(conn, expiries) {
            Ok(()) if self.phase != Phase::Done => true,
            Ok(()) => {
                self.answer(Ok(self.deleted));
                false
            }
            Err(e) => {
                self.answer(Err(StoreError::Db(e.to_string())));
                false
            }
        }
    }

    fn answer(&mut self, result: Result<u64, StoreError>) {
        self.phase = Phase::Done;
        if let Some(reply) = self.reply.take() {
            // The caller may have stopped waiting (the sweeper at shutdown): nothing to tell then.
            let _ = reply.send(result);
        }
    }

    fn advance(&mut self, conn: &Connection, expiries: &mut Expiries) -> rusqlite::Result<()> {
        let table = match self.phase {
            Phase::Tokens => Table::Tokens,
            Phase::Changes => Table::Changes,
            Phase::Vacuum => {
                if free_pages(conn)? == 0 {
                    self.phase = Phase::Done;
                } else {
                    conn.execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))?;
                }
                return Ok(());
            }
            Phase::Done => return Ok(()),
        };
        let segments = expiries.of(table);
        let name = table.name();
        let next = if segments.is_complete() {
            segments.next_expired(self.next_segment, self.now_ms)
        } else {
            // Rows from before the start: every segment that has any, empty ranges skipped.
            let (from, _) = bounds(self.next_segment);
            conn.prepare_cached(&format!("SELECT min(seq) FROM {name} WHERE seq >= ?1"))?
                .query_row([from], |r| r.get::<_, Option<i64>>(0))?
                .map(segment_of)
        };
        let Some(segment) = next else {
            segments.mark_complete();
            self.next_segment = 0;
            self.phase = match self.phase {
                Phase::Tokens => Phase::Changes,
                _ if incremental_vacuum(conn)? => Phase::Vacuum,
                _ => Phase::Done,
            };
            return Ok(());
        };
        let (lo, hi) = bounds(segment);
        let n = conn
            .prepare_cached(&format!(
                "DELETE FROM {name} WHERE seq >= ?1 AND seq < ?2 AND expires_at_ms <= ?3"
            ))?
            .execute([lo, hi, self.now_ms as i64])?;
        let earliest: Option<i64> = conn
            .prepare_cached(&format!(
                "SELECT min(expires_at_ms) FROM {name} WHERE seq >= ?1 AND seq < ?2"
            ))?
            .query_row([lo, hi], |r| r.get(0))?;
        segments.set(segment, earliest.map(|e| e.max(0) as u64));
        self.deleted += n as u64;
        self.next_segment = segment + 1;
        Ok(())
    }
}

/// Pages on the free list.
pub fn free_pages(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))
}

/// Whether the database gives free pages back on `PRAGMA incremental_vacuum`.
fn incremental_vacuum(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(conn.query_row("PRAGMA auto_vacuum", [], |r| r.get::<_, i64>(0))? == 2)
}

/// Makes the database one whose free pages can be given back: new databases are created so, and
/// one from before this setting is rebuilt once (`VACUUM`). Run before the writer starts.
pub fn enable_incremental_vacuum(conn: &Connection) -> rusqlite::Result<()> {
    if incremental_vacuum(conn)? {
        return Ok(());
    }
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")?;
    // A database that already has tables only switches when rebuilt.
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    if tables > 0 {
        log::info!("rebuilding the token store once so that it can shrink (VACUUM)");
        // It needs room for a second copy; without it the store works as before, only its
        // file does not shrink, so this is no reason to refuse to start.
        if let Err(e) = conn.execute_batch("VACUUM") {
            log::warn!("the token store could not be rebuilt, its file will not shrink: {e}");
        }
    }
    Ok(())
}
