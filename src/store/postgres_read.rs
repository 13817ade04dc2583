//! The PostgreSQL store's reads and deletes: the live tokens at start, in issue order and in
//! chunks, from one snapshot; and the purge of what can never be valid again.

use std::sync::Arc;

use compact_str::CompactString;
use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::mpsc;
use tokio_postgres::IsolationLevel;

use super::postgres_feed::{position, FeedState};
use super::postgres_sql::{answered, chain, db_err, ms, ACCESS};
use super::{AccessRow, RefreshRow, SharedNames, Snapshot, StoreError};
use crate::domain::format::TokenFormat;
use crate::domain::grant_type::GrantType;
use crate::domain::ids::{TokenId, TokenState};

/// Rows per chunk handed over by [`load`].
const LOAD_CHUNK_ROWS: i64 = 65_536;
/// Rows deleted per statement by [`purge`], so no statement runs into the timeout.
const PURGE_STEP_ROWS: i64 = 10_000;

const LOAD: &str = "SELECT seq, kind, id, client_id, subject, scope, format, grant_type, \
     issued_at_ms, expires_at_ms, state, family, link, audience FROM (
       SELECT seq, 0::int2 AS kind, id, client_id, subject, scope, format, grant_type, \
         issued_at_ms, expires_at_ms, state, family, refresh_id AS link, audience
       FROM access_tokens WHERE expires_at_ms > $1 AND state = 0 AND seq > $2
     UNION ALL
       SELECT seq, 1::int2, id, client_id, subject, scope, 'refresh', 'refresh_token', \
         issued_at_ms, expires_at_ms, state, family, access_id, audience
       FROM refresh_tokens WHERE expires_at_ms > $1 AND state IN (0, 3) AND seq > $2
     ) t ORDER BY seq LIMIT $3";

/// Sends the live tokens to `out` in issue order, a chunk at a time, all read in one snapshot;
/// then `None`, or the error that stopped it.
pub async fn load(
    pool: &Pool,
    now: u64,
    out: mpsc::Sender<Result<Option<Snapshot>, StoreError>>,
    feed: Arc<FeedState>,
) {
    let result = load_chunks(pool, now, &out, &feed).await;
    // A receiver that went away wanted no more.
    let _ = out.send(result.map(|()| None)).await;
}

async fn load_chunks(
    pool: &Pool,
    now: u64,
    out: &mpsc::Sender<Result<Option<Snapshot>, StoreError>>,
    feed: &FeedState,
) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(|e| StoreError::Unavailable(chain(&e)))?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(db_err)?;
    // The change feed starts where this snapshot ends (the first load only).
    let at = position(&tx).await?;
    if let Ok(mut start) = feed.start.lock() {
        start.get_or_insert(at);
    }
    let stmt = tx.prepare_cached(LOAD).await.map_err(db_err)?;
    let mut names = SharedNames::default();
    let mut shared = |text: &str| names.share(text);
    let mut after = 0i64;
    loop {
        let rows = answered(tx.query(&stmt, &[&ms(now), &after, &LOAD_CHUNK_ROWS])).await?;
        let full = rows.len() as i64 == LOAD_CHUNK_ROWS;
        let mut snap = Snapshot::default();
        for row in &rows {
            after = row.get(0);
            push_row(&mut snap, row, &mut shared);
        }
        let empty = snap.access.is_empty() && snap.refresh.is_empty();
        // A receiver that went away wants no more.
        if (!empty && out.send(Ok(Some(snap))).await.is_err()) || !full {
            return Ok(());
        }
    }
}

/// Adds one row of [`LOAD`] to `snap`; a row this version cannot read is left out.
pub(super) fn push_row(snap: &mut Snapshot, row: &tokio_postgres::Row, shared: &mut impl FnMut(&str) -> Arc<str>) {
    let Ok(id) = <[u8; 32]>::try_from(row.get::<_, &[u8]>(2)).map(TokenId) else {
        return;
    };
    let state = TokenState::from_u8(u8::try_from(row.get::<_, i16>(10)).unwrap_or(u8::MAX));
    let family: Option<&[u8]> = row.get(11);
    let family = family.and_then(|f| <[u8; 16]>::try_from(f).ok());
    let link: Option<&[u8]> = row.get(12);
    let link = link.and_then(|l| <[u8; 32]>::try_from(l).ok()).map(TokenId);
    let client_id = shared(row.get(3));
    let subject = CompactString::from(row.get::<_, &str>(4));
    let scope = shared(row.get(5));
    let audience = shared(row.get(13));
    let issued_at_ms = u64::try_from(row.get::<_, i64>(8)).unwrap_or(0);
    let expires_at_ms = u64::try_from(row.get::<_, i64>(9)).unwrap_or(0);
    if row.get::<_, i16>(1) == ACCESS {
        let (Some(format), Some(grant)) = (TokenFormat::parse(row.get(6)), GrantType::parse(row.get(7))) else {
            return;
        };
        snap.access.push(AccessRow {
            id,
            client_id,
            subject,
            scope,
            audience,
            format,
            grant,
            issued_at_ms,
            expires_at_ms,
            state,
            family,
            refresh_id: link,
        });
    } else if let (Some(family), Some(access_id)) = (family, link) {
        snap.refresh.push(RefreshRow {
            id,
            client_id,
            subject,
            scope,
            audience,
            family,
            issued_at_ms,
            expires_at_ms,
            access_id,
            state,
        });
    }
}

const FIND_ACCESS: &str = "SELECT seq, 0::int2, id, client_id, subject, scope, format, grant_type, \
     issued_at_ms, expires_at_ms, state, family, refresh_id, audience FROM access_tokens WHERE id = $1";
const FIND_REFRESH: &str = "SELECT seq, 1::int2, id, client_id, subject, scope, 'refresh', \
     'refresh_token', issued_at_ms, expires_at_ms, state, family, access_id, audience \
     FROM refresh_tokens WHERE id = $1";

/// The row of the access (`refresh` false) or refresh token `id`, whatever its state.
pub async fn find(pool: &Pool, refresh: bool, id: TokenId) -> Result<Snapshot, StoreError> {
    let client = pool.get().await.map_err(|e| StoreError::Unavailable(chain(&e)))?;
    let stmt = answered(client.prepare_cached(if refresh { FIND_REFRESH } else { FIND_ACCESS })).await?;
    let rows = answered(client.query(&stmt, &[&&id.0[..]])).await?;
    Ok(snapshot_of(&rows))
}

/// `rows` of the layout [`push_row`] reads, as a snapshot.
pub(super) fn snapshot_of(rows: &[tokio_postgres::Row]) -> Snapshot {
    let mut names = SharedNames::default();
    let mut shared = |text: &str| names.share(text);
    let mut snap = Snapshot::default();
    for row in rows {
        push_row(&mut snap, row, &mut shared);
    }
    snap
}

/// The lock that lets one node at a time purge ("tokensweep").
pub(super) const PURGE_LOCK: i64 = 0x746f_6b65_6e73_7765;

/// Deletes the tokens expired at `now` and the records of their changes, a bounded step at a
/// time; returns how many rows went. One node of a cluster purges at a time: a node that finds
/// another purging skips the round (0 rows).
pub async fn purge(pool: &Pool, now: u64) -> Result<u64, StoreError> {
    let mut client = pool.get().await.map_err(|e| StoreError::Unavailable(chain(&e)))?;
    let tx = client.transaction().await.map_err(db_err)?;
    let locked = answered(tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PURGE_LOCK])).await?;
    if !locked.get::<_, bool>(0) {
        return Ok(0);
    }
    let client = &tx;
    let mut removed = 0;
    for table in ["access_tokens", "refresh_tokens", "token_changes"] {
        let step = format!(
            "DELETE FROM {table} WHERE seq = ANY(ARRAY(
                SELECT seq FROM {table} WHERE expires_at_ms <= $1 LIMIT $2))"
        );
        let stmt = client.prepare_cached(&step).await.map_err(db_err)?;
        loop {
            let n = answered(client.execute(&stmt, &[&ms(now), &PURGE_STEP_ROWS])).await?;
            removed += n;
            if n < PURGE_STEP_ROWS as u64 {
                break;
            }
        }
    }
    tx.commit().await.map_err(db_err)?;
    Ok(removed)
}
