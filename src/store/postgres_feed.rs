//! The change feed of a shared PostgreSQL store: a connection of its own LISTENs for the
//! doorbell every writing transaction rings at commit, and pulls `token_changes` on each ring,
//! on a safety poll, and after every reconnect (a NOTIFY is never replayed to a node that was
//! away).
//!
//! Position: `token_changes.seq` is handed out at insert, not at commit, so reading
//! `seq > last` would skip for ever a transaction that commits after a later one. The feed
//! instead reads by the writing transaction's id: each pull runs in one snapshot, reads every
//! change it can see from transactions with ids at or above its position, and moves its
//! position up to that snapshot's `xmin` (the oldest transaction still running). Every
//! transaction below `xmin` has ended, so none of their changes can appear later; changes of
//! transactions at or above it are read again by the next pull, which is harmless: applying a
//! change is idempotent (a token's state only moves forward). A writer that stays open does
//! not delay the others' changes, only makes pulls re-read them until it ends (the server ends
//! a session idle in a transaction after `idle_in_transaction_session_timeout`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, IsolationLevel, NoTls};

use super::postgres_sql::{answered, chain, REFRESH};
use super::postgres_write::CHANNEL;
use super::shared::{Change, Feed, TokenKind};
use super::StoreError;
use crate::domain::ids::{TokenId, TokenState};

/// How often the feed is pulled when no doorbell rings: bounds how late a node learns of a
/// change whose doorbell it missed, and how soon it notices the database is gone.
const POLL: Duration = Duration::from_millis(500);
/// Longest a pull (or the connection) may take before the database is taken for gone.
const PULL_TIMEOUT: Duration = Duration::from_secs(2);
/// Wait between attempts to reconnect.
const RETRY: Duration = Duration::from_millis(500);

const XMIN: &str = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text";
/// State changes (inserts are not needed: a node learns of a new token when it is first used).
const PULL: &str = "SELECT id, kind, state FROM token_changes \
     WHERE xid >= $1::text::xid8 AND state <> 0 ORDER BY xid, seq";

/// What the feed shares with the store: the node-facing [`Feed`] and where to start (set by
/// the first load: the `xmin` of the snapshot it read).
#[derive(Default)]
pub struct FeedState {
    pub feed: Arc<Feed>,
    pub start: Mutex<Option<String>>,
}

/// Follows the feed for the store's life, reconnecting whenever the connection fails.
pub async fn follow(config: tokio_postgres::Config, state: Arc<FeedState>, where_: String) {
    state.feed.wait_for_subscriber().await;
    let mut from = state.start.lock().ok().and_then(|mut s| s.take());
    let mut reported = false;
    loop {
        let Err(e) = follow_once(&config, &state.feed, &mut from).await;
        state.feed.lost();
        if !reported {
            log::warn!("change feed from {where_} interrupted: {e}; retrying");
            reported = true;
        }
        tokio::time::sleep(RETRY).await;
        if state.feed.state() == super::shared::SyncState::Ok {
            reported = false;
        }
    }
}

/// Connects, listens and pulls until something fails.
async fn follow_once(
    config: &tokio_postgres::Config,
    feed: &Feed,
    from: &mut Option<String>,
) -> Result<std::convert::Infallible, StoreError> {
    let (mut client, mut connection) = tokio::time::timeout(PULL_TIMEOUT, config.connect(NoTls))
        .await
        .map_err(|_| StoreError::Unavailable("connecting took too long".into()))?
        .map_err(|e| StoreError::Unavailable(chain(&e)))?;
    let (ring, mut rings) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Ends with the connection; dropping `ring` then tells the puller.
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if ring.send(()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    answered(client.batch_execute(&format!("LISTEN {CHANNEL}"))).await?;
    loop {
        match tokio::time::timeout(PULL_TIMEOUT, pull(&mut client, feed, from)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "a pull of the change feed took too long".into(),
                ))
            }
        }
        tokio::select! {
            rung = rings.recv() => {
                if rung.is_none() {
                    return Err(StoreError::Unavailable("the feed's connection closed".into()));
                }
                while rings.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// One pull: the changes visible now of every transaction not yet known to have ended, applied
/// in order.
async fn pull(client: &mut Client, feed: &Feed, from: &mut Option<String>) -> Result<(), StoreError> {
    let db = |e: tokio_postgres::Error| StoreError::Unavailable(chain(&e));
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(db)?;
    let xmin: String = tx.query_one(XMIN, &[]).await.map_err(db)?.get(0);
    if let Some(start) = from.as_deref() {
        let rows = tx.query(PULL, &[&start]).await.map_err(db)?;
        let changes: Vec<Change> = rows.iter().filter_map(change).collect();
        if !changes.is_empty() {
            feed.deliver(&changes);
        }
    }
    tx.commit().await.map_err(db)?;
    *from = Some(xmin);
    feed.caught_up(crate::domain::ids::now_ms());
    Ok(())
}

fn change(row: &tokio_postgres::Row) -> Option<Change> {
    let id = <[u8; 32]>::try_from(row.get::<_, &[u8]>(0)).ok().map(TokenId)?;
    let kind = if row.get::<_, i16>(1) == REFRESH {
        TokenKind::Refresh
    } else {
        TokenKind::Access
    };
    let state = TokenState::from_u8(u8::try_from(row.get::<_, i16>(2)).ok()?);
    Some(Change { kind, id, state })
}

/// The position a load read at: the `xmin` of its snapshot (`tx` must be the load's
/// repeatable-read transaction).
pub async fn position(tx: &deadpool_postgres::Transaction<'_>) -> Result<String, StoreError> {
    let row = answered(tx.query_one(XMIN, &[])).await?;
    Ok(row.get(0))
}
