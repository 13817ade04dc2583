//! The SQL of the embedded store: its schema, the connection the writer thread owns, one batch
//! applied in one transaction, and the chunked read of the live tokens at start. Called by the
//! writer ([`super::writer`]); knows nothing of threads or acks.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::path::Path;

use compact_str::CompactString;
use rusqlite::{params, Connection, OptionalExtension};

use super::checkpoint;
use super::expiries::Expiries;
use super::purge;
use super::{AccessRow, RefreshRow, SharedNames, Snapshot, StoreError, StoreOp};
use crate::domain::format::TokenFormat;
use crate::domain::grant_type::GrantType;
use crate::domain::ids::{FamilyId, IdHasher, TokenId, TokenState};
use crate::fsutil;

pub(super) fn db_err(e: rusqlite::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

/// Append-only tables: issuing a token or changing its state appends a row, so a commit writes a
/// few sequential pages instead of one random B-tree page per token (random 256-bit ids as keys
/// made each commit dirty a page per row). Rows go when their token expires, found through the
/// writer's summary of each segment's earliest expiry ([`super::expiries`]): an expiry index
/// cost every commit two more WAL frames. Stores that had those indexes lose them at open.
pub(super) const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS tokens (
    seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, id BLOB NOT NULL, client_id TEXT NOT NULL,
    subject TEXT NOT NULL, scope TEXT NOT NULL, format TEXT NOT NULL, grant_type TEXT NOT NULL,
    issued_at_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL, family BLOB, link BLOB,
    audience TEXT NOT NULL DEFAULT ''
);
DROP INDEX IF EXISTS tokens_expiry;
CREATE TABLE IF NOT EXISTS state_changes (
    seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, id BLOB NOT NULL, state INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
DROP INDEX IF EXISTS state_changes_expiry;
";

/// `kind` column values.
const ACCESS: i64 = 0;
const REFRESH: i64 = 1;

/// The writer's connection to the database at `path` (created with its folder if needed), with
/// the schema in place.
pub(super) fn open_writer_connection(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent() {
        fsutil::create_private_dir(dir).map_err(|e| StoreError::Db(format!("{}: {e}", dir.display())))?;
    }
    // Client ids, usernames, scopes and token digests: for the owner's eyes only.
    fsutil::create_private_file(path).map_err(|e| StoreError::Db(format!("{}: {e}", path.display())))?;
    let conn = Connection::open(path).map_err(db_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db_err)?;
    purge::enable_incremental_vacuum(&conn).map_err(db_err)?;
    conn.execute_batch(SCHEMA).map_err(db_err)?;
    add_audience_column(&conn).map_err(db_err)?;
    conn.pragma_update(None, "wal_autocheckpoint", checkpoint::HARD_LIMIT_FRAMES)
        .map_err(db_err)?;
    // A WAL that grew past this many bytes (a burst the checkpoints could not keep up with) is
    // cut back to it when it restarts; in steady use it restarts well below it (`checkpoint`).
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).map_err(db_err)?;
    conn.pragma_update(None, "journal_size_limit", checkpoint::HARD_LIMIT_FRAMES * page_size)
        .map_err(db_err)?;
    Ok(conn)
}

/// Stores made before tokens had audiences get the column, empty for the tokens they hold.
fn add_audience_column(conn: &Connection) -> rusqlite::Result<()> {
    let has_it: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('tokens') WHERE name = 'audience'",
        [],
        |r| r.get(0),
    )?;
    if !has_it {
        conn.execute_batch("ALTER TABLE tokens ADD COLUMN audience TEXT NOT NULL DEFAULT ''")?;
    }
    Ok(())
}

const INSERT_TOKEN: &str = "INSERT INTO tokens (kind, id, client_id, subject, scope, format, grant_type, \
     issued_at_ms, expires_at_ms, family, link, audience) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
const INSERT_CHANGE: &str = "INSERT INTO state_changes (kind, id, state, expires_at_ms) VALUES (?1, ?2, ?3, ?4)";

/// Applies `ops` in one transaction. BEGIN and COMMIT come from the statement cache
/// (`Connection::transaction` parses them anew each time) and each insert statement is taken
/// from the cache once per batch, not once per row (docs/decisions.md).
pub(super) fn apply(conn: &Connection, ops: &[&StoreOp], expiries: &mut Expiries) -> rusqlite::Result<()> {
    conn.prepare_cached("BEGIN")?.execute([])?;
    let result = insert_all(conn, ops, expiries).and_then(|()| conn.prepare_cached("COMMIT")?.execute([]));
    if result.is_err() && !conn.is_autocommit() {
        // The batch's error is what the caller needs; a failed rollback leaves nothing to add.
        let _ = conn.execute_batch("ROLLBACK");
    }
    result.map(drop)
}

/// Appends the rows of `ops`, noting each one's segment in `expiries` (a rolled-back batch
/// leaves notes of rows that are not there: a purge finds nothing in them and drops them).
fn insert_all(conn: &Connection, ops: &[&StoreOp], expiries: &mut Expiries) -> rusqlite::Result<()> {
    let mut tokens = conn.prepare_cached(INSERT_TOKEN)?;
    let mut changes = conn.prepare_cached(INSERT_CHANGE)?;
    let Expiries {
        tokens: token_segments,
        changes: change_segments,
    } = expiries;
    let mut change = |kind: i64, id: &TokenId, state: TokenState, expires_at_ms: u64| {
        changes.execute(params![kind, &id.0[..], state as u8, expires_at_ms as i64])?;
        change_segments.note(conn.last_insert_rowid(), expires_at_ms);
        Ok::<(), rusqlite::Error>(())
    };
    for op in ops {
        match op {
            StoreOp::InsertAccess(r) => {
                tokens.execute(params![
                    ACCESS,
                    &r.id.0[..],
                    &*r.client_id,
                    r.subject.as_str(),
                    &*r.scope,
                    r.format.as_str(),
                    r.grant.as_str(),
                    r.issued_at_ms as i64,
                    r.expires_at_ms as i64,
                    r.family.as_ref().map(|f| &f[..]),
                    r.refresh_id.as_ref().map(|i| &i.0[..]),
                    &*r.audience,
                ])?;
                token_segments.note(conn.last_insert_rowid(), r.expires_at_ms);
                if r.state != TokenState::Active {
                    change(ACCESS, &r.id, r.state, r.expires_at_ms)?;
                }
            }
            StoreOp::InsertRefresh(r) => {
                tokens.execute(params![
                    REFRESH,
                    &r.id.0[..],
                    &*r.client_id,
                    r.subject.as_str(),
                    &*r.scope,
                    "refresh",
                    "refresh_token",
                    r.issued_at_ms as i64,
                    r.expires_at_ms as i64,
                    &r.family[..],
                    &r.access_id.0[..],
                    &*r.audience,
                ])?;
                token_segments.note(conn.last_insert_rowid(), r.expires_at_ms);
                if r.state != TokenState::Active {
                    change(REFRESH, &r.id, r.state, r.expires_at_ms)?;
                }
            }
            StoreOp::SetAccessState {
                id,
                state,
                expires_at_ms,
            } => change(ACCESS, id, *state, *expires_at_ms)?,
            StoreOp::SetRefreshState {
                id,
                state,
                expires_at_ms,
            } => change(REFRESH, id, *state, *expires_at_ms)?,
        }
    }
    Ok(())
}

fn id_of(v: Vec<u8>, i: usize) -> rusqlite::Result<TokenId> {
    <[u8; 32]>::try_from(v.as_slice())
        .map(TokenId)
        .map_err(|_| rusqlite::Error::InvalidColumnType(i, "id".into(), rusqlite::types::Type::Blob))
}

/// The latest state of every token that changed, by id. States only move forward.
///
/// Held whole while a restart reads the tokens: after heavy renewal in single mode there is a
/// change per token issued, so the map is sized once from a count (no
/// growth by doubling, which held the old and the new table at once), keyed by the id alone (33
/// bytes an entry: access and refresh ids are both random 256-bit values, never equal) and hashed
/// by the id's own bytes (docs/decisions.md, "Restart time and memory").
fn final_states(
    conn: &Connection,
    now: u64,
) -> rusqlite::Result<HashMap<TokenId, TokenState, BuildHasherDefault<IdHasher>>> {
    let count: i64 = conn.query_row(
        "SELECT count(*) FROM state_changes WHERE expires_at_ms > ?1",
        [now as i64],
        |r| r.get(0),
    )?;
    let mut states = HashMap::with_capacity_and_hasher(usize::try_from(count).unwrap_or(0), Default::default());
    let mut stmt = conn.prepare("SELECT id, state FROM state_changes WHERE expires_at_ms > ?1 ORDER BY seq")?;
    let mut rows = stmt.query([now as i64])?;
    while let Some(row) = rows.next()? {
        states.insert(id_of(row.get(0)?, 0)?, TokenState::from_u8(row.get(1)?));
    }
    Ok(states)
}

/// Rows per chunk handed over by [`load`] (~11 MB of rows).
pub(super) const LOAD_CHUNK_ROWS: usize = 65_536;

/// Reads the live tokens in issue order and hands them to `emit` in chunks of at most
/// `chunk_rows` ([`LOAD_CHUNK_ROWS`]); stops early when `emit` returns `false` (nobody is
/// reading any more).
pub(super) fn load(
    conn: &Connection,
    now: u64,
    chunk_rows: usize,
    mut emit: impl FnMut(Snapshot) -> bool,
) -> rusqlite::Result<()> {
    let states = final_states(conn, now)?;
    let mut snap = Snapshot::default();
    let mut stmt = conn.prepare(
        "SELECT kind, id, client_id, subject, scope, format, grant_type, issued_at_ms, expires_at_ms, family, link,
         audience FROM tokens WHERE expires_at_ms > ?1 ORDER BY seq",
    )?;
    let mut rows = stmt.query([now as i64])?;
    let mut names = SharedNames::default();
    let mut shared = |text: &str| names.share(text);
    while let Some(row) = rows.next()? {
        if snap.access.len() + snap.refresh.len() >= chunk_rows && !emit(std::mem::take(&mut snap)) {
            return Ok(());
        }
        let kind: i64 = row.get(0)?;
        let id = id_of(row.get(1)?, 1)?;
        let state = states.get(&id).copied().unwrap_or(TokenState::Active);
        let link: Option<Vec<u8>> = row.get(10)?;
        let link = link.and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok()).map(TokenId);
        let family = blob16(row.get(9)?);
        let (client_id, subject, scope, audience) = (
            shared(text(row, 2)?),
            CompactString::from(text(row, 3)?),
            shared(text(row, 4)?),
            shared(text(row, 11)?),
        );
        if kind == ACCESS {
            // A row this version cannot read (a format or grant it does not know) is left out.
            let (Some(format), Some(grant)) = (TokenFormat::parse(text(row, 5)?), GrantType::parse(text(row, 6)?))
            else {
                continue;
            };
            if state != TokenState::Active {
                continue;
            }
            snap.access.push(AccessRow {
                id,
                client_id,
                subject,
                scope,
                audience,
                format,
                grant,
                issued_at_ms: row.get::<_, i64>(7)? as u64,
                expires_at_ms: row.get::<_, i64>(8)? as u64,
                state,
                family,
                refresh_id: link,
            });
        } else if matches!(state, TokenState::Active | TokenState::Inactive) {
            // Spent (inactive) refresh tokens are kept to detect their reuse.
            let (Some(family), Some(access_id)) = (family, link) else {
                continue;
            };
            snap.refresh.push(RefreshRow {
                id,
                client_id,
                subject,
                scope,
                audience,
                family,
                issued_at_ms: row.get::<_, i64>(7)? as u64,
                expires_at_ms: row.get::<_, i64>(8)? as u64,
                access_id,
                state,
            });
        }
    }
    if !snap.access.is_empty() || !snap.refresh.is_empty() {
        emit(snap);
    }
    Ok(())
}

/// Column `i` as text, borrowed from the row.
fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(i)?
        .as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

fn blob16(v: Option<Vec<u8>>) -> Option<FamilyId> {
    v.and_then(|v| <[u8; 16]>::try_from(v.as_slice()).ok())
}

/// The stored state of one access token: `None` when the store does not hold it (or it expired).
pub fn read_access_state(path: &Path, id: &TokenId) -> Result<Option<TokenState>, StoreError> {
    let conn = Connection::open(path).map_err(db_err)?;
    let known: Option<i64> = conn
        .query_row("SELECT seq FROM tokens WHERE kind = 0 AND id = ?1", [&id.0[..]], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db_err)?;
    if known.is_none() {
        return Ok(None);
    }
    let state: Option<u8> = conn
        .query_row(
            "SELECT state FROM state_changes WHERE kind = 0 AND id = ?1 ORDER BY seq DESC LIMIT 1",
            [&id.0[..]],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    Ok(Some(state.map(TokenState::from_u8).unwrap_or(TokenState::Active)))
}
