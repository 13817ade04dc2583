//! The embedded store: SQLite (bundled) in WAL mode with `synchronous = FULL`, owned by one
//! writer thread that commits whatever is queued in a single transaction (group commit): N
//! concurrent requests cost one fsync, and each caller is answered only after the commit.

use std::path::Path;
use std::sync::mpsc;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use tokio::sync::oneshot;

use super::{AccessRow, Ack, RefreshRow, Snapshot, StoreError, StoreOp, TokenStore};
use crate::tokens::record::{FamilyId, TokenId, TokenState};

/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 4096;

enum Job {
    Commit(Vec<StoreOp>, oneshot::Sender<Result<(), StoreError>>),
    Load(u64, oneshot::Sender<Result<Snapshot, StoreError>>),
    Purge(u64, oneshot::Sender<Result<u64, StoreError>>),
}

/// Handle to the writer thread; cheap to share behind an `Arc`.
pub struct SqliteStore {
    tx: mpsc::Sender<Job>,
}

fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS access_tokens (
    id BLOB PRIMARY KEY, client_id TEXT NOT NULL, subject TEXT NOT NULL, scope TEXT NOT NULL,
    format TEXT NOT NULL, grant_type TEXT NOT NULL, issued_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL, state INTEGER NOT NULL, family BLOB, refresh_id BLOB
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refresh_tokens (
    id BLOB PRIMARY KEY, client_id TEXT NOT NULL, subject TEXT NOT NULL, scope TEXT NOT NULL,
    family BLOB NOT NULL, issued_at_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL,
    access_id BLOB NOT NULL, state INTEGER NOT NULL
) WITHOUT ROWID;
";

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(db_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("tokengate-store".into())
            .spawn(move || writer(conn, rx))
            .map_err(|e| StoreError::Db(e.to_string()))?;
        Ok(SqliteStore { tx })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.tx.send(job).map_err(|_| StoreError::Closed)
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    fn submit(&self, ops: Vec<StoreOp>) -> Ack {
        let (tx, rx) = oneshot::channel();
        let sent = self.send(Job::Commit(ops, tx));
        Box::pin(async move {
            sent?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    async fn load(&self, now_ms: u64) -> Result<Snapshot, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Load(now_ms, tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn purge(&self, now_ms: u64) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Purge(now_ms, tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn writer(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut commits = Vec::new();
        let mut others = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next {
            match job {
                Job::Commit(ops, reply) => commits.push((ops, reply)),
                other => others.push(other),
            }
            next = if commits.len() + others.len() < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !commits.is_empty() {
            let all: Vec<&StoreOp> = commits.iter().flat_map(|(ops, _)| ops.iter()).collect();
            // Barriers alone need no transaction: everything before them is already committed.
            let result = if all.is_empty() { Ok(()) } else { apply(&mut conn, &all) };
            match result {
                Ok(()) => {
                    for (_, reply) in commits {
                        let _ = reply.send(Ok(()));
                    }
                }
                Err(_) => {
                    // One bad batch member must not fail the others: retry each on its own.
                    for (ops, reply) in commits {
                        let refs: Vec<&StoreOp> = ops.iter().collect();
                        let _ = reply.send(apply(&mut conn, &refs).map_err(db_err));
                    }
                }
            }
        }
        for job in others {
            match job {
                Job::Load(now, reply) => {
                    let _ = reply.send(load(&conn, now).map_err(db_err));
                }
                Job::Purge(now, reply) => {
                    let _ = reply.send(purge(&conn, now).map_err(db_err));
                }
                Job::Commit(..) => {}
            }
        }
    }
}

fn apply(conn: &mut Connection, ops: &[&StoreOp]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for op in ops {
        match op {
            StoreOp::InsertAccess(r) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO access_tokens VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?
                .execute(params![
                    &r.id.0[..],
                    r.client_id,
                    r.subject,
                    r.scope,
                    r.format,
                    r.grant,
                    r.issued_at_ms as i64,
                    r.expires_at_ms as i64,
                    r.state as u8,
                    r.family.as_ref().map(|f| &f[..]),
                    r.refresh_id.as_ref().map(|i| &i.0[..]),
                ])?;
            }
            StoreOp::InsertRefresh(r) => {
                tx.prepare_cached("INSERT OR REPLACE INTO refresh_tokens VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?
                    .execute(params![
                        &r.id.0[..],
                        r.client_id,
                        r.subject,
                        r.scope,
                        &r.family[..],
                        r.issued_at_ms as i64,
                        r.expires_at_ms as i64,
                        &r.access_id.0[..],
                        r.state as u8,
                    ])?;
            }
            StoreOp::SetAccessState(id, s) => {
                tx.prepare_cached("UPDATE access_tokens SET state = ?2 WHERE id = ?1")?
                    .execute(params![&id.0[..], *s as u8])?;
            }
            StoreOp::SetRefreshState(id, s) => {
                tx.prepare_cached("UPDATE refresh_tokens SET state = ?2 WHERE id = ?1")?
                    .execute(params![&id.0[..], *s as u8])?;
            }
        }
    }
    tx.commit()
}

fn blob32(row: &Row<'_>, i: usize) -> rusqlite::Result<TokenId> {
    let v: Vec<u8> = row.get(i)?;
    <[u8; 32]>::try_from(v.as_slice())
        .map(TokenId)
        .map_err(|_| rusqlite::Error::InvalidColumnType(i, "id".into(), rusqlite::types::Type::Blob))
}

fn blob16(v: Option<Vec<u8>>) -> Option<FamilyId> {
    v.and_then(|v| <[u8; 16]>::try_from(v.as_slice()).ok())
}

fn load(conn: &Connection, now: u64) -> rusqlite::Result<Snapshot> {
    let mut snap = Snapshot::default();
    let mut stmt = conn.prepare(
        "SELECT id, client_id, subject, scope, format, grant_type, issued_at_ms, expires_at_ms, state,
                family, refresh_id
         FROM access_tokens WHERE state = 0 AND expires_at_ms > ?1 ORDER BY issued_at_ms",
    )?;
    let rows = stmt.query_map([now as i64], |row| {
        Ok(AccessRow {
            id: blob32(row, 0)?,
            client_id: row.get(1)?,
            subject: row.get(2)?,
            scope: row.get(3)?,
            format: row.get(4)?,
            grant: row.get(5)?,
            issued_at_ms: row.get::<_, i64>(6)? as u64,
            expires_at_ms: row.get::<_, i64>(7)? as u64,
            state: TokenState::from_u8(row.get(8)?),
            family: blob16(row.get(9)?),
            refresh_id: row
                .get::<_, Option<Vec<u8>>>(10)?
                .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok().map(TokenId)),
        })
    })?;
    for r in rows {
        snap.access.push(r?);
    }
    let mut stmt = conn.prepare(
        "SELECT id, client_id, subject, scope, family, issued_at_ms, expires_at_ms, access_id, state
         FROM refresh_tokens WHERE state IN (0, 3) AND expires_at_ms > ?1 ORDER BY issued_at_ms",
    )?;
    let rows = stmt.query_map([now as i64], |row| {
        Ok(RefreshRow {
            id: blob32(row, 0)?,
            client_id: row.get(1)?,
            subject: row.get(2)?,
            scope: row.get(3)?,
            family: blob16(row.get(4)?).unwrap_or_default(),
            issued_at_ms: row.get::<_, i64>(5)? as u64,
            expires_at_ms: row.get::<_, i64>(6)? as u64,
            access_id: blob32(row, 7)?,
            state: TokenState::from_u8(row.get(8)?),
        })
    })?;
    for r in rows {
        snap.refresh.push(r?);
    }
    Ok(snap)
}

fn purge(conn: &Connection, now: u64) -> rusqlite::Result<u64> {
    let a = conn.execute(
        "DELETE FROM access_tokens WHERE state != 0 OR expires_at_ms <= ?1",
        [now as i64],
    )?;
    let r = conn.execute(
        "DELETE FROM refresh_tokens WHERE state IN (1, 2) OR expires_at_ms <= ?1",
        [now as i64],
    )?;
    Ok((a + r) as u64)
}

/// Reads one access row by id (for tests and tools).
pub fn read_access_state(path: &Path, id: &TokenId) -> Result<Option<TokenState>, StoreError> {
    let conn = Connection::open(path).map_err(db_err)?;
    conn.query_row("SELECT state FROM access_tokens WHERE id = ?1", [&id.0[..]], |r| {
        r.get::<_, u8>(0)
    })
    .optional()
    .map(|o| o.map(TokenState::from_u8))
    .map_err(db_err)
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
