//! The embedded store: SQLite (bundled) in WAL mode with `synchronous = FULL`, owned by one
//! writer thread ([`super::writer`]) that commits whatever is queued in a single transaction
//! (group commit): N concurrent requests cost one fsync, and each caller is answered only after
//! the commit. WAL checkpoints run beside it ([`super::checkpoint`]); expired rows go in bounded
//! steps between commits ([`super::purge`]).

use std::path::Path;
use std::sync::mpsc;

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::ack::Relays;
use super::checkpoint::Checkpoints;
use super::sqlite_sql::open_writer_connection;
pub use super::sqlite_sql::read_access_state;
use super::writer::{Job, Writer};
use super::{receive_chunks, Ack, Snapshot, StoreError, StoreOp, TokenStore};

/// Handle to the writer thread; cheap to share behind an `Arc`.
pub struct SqliteStore {
    tx: mpsc::Sender<Job>,
    relays: Relays,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = open_writer_connection(path)?;
        let checkpoints = Checkpoints::start(path)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("tokengate-store".into())
            .spawn(move || Writer::new(conn, checkpoints).run(rx))
            .map_err(|e| StoreError::Db(e.to_string()))?;
        Ok(SqliteStore {
            tx,
            relays: Relays::default(),
        })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.tx.send(job).map_err(|_| StoreError::Closed)
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    fn submit(&self, ops: Vec<StoreOp>) -> Ack {
        let (tx, rx) = oneshot::channel();
        let sent = self.send(Job::Commit(ops, self.relays.waiter(tx)));
        Box::pin(async move {
            sent?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    async fn load(&self, now_ms: u64, sink: &mut (dyn FnMut(Snapshot) + Send)) -> Result<(), StoreError> {
        // Two chunks in flight: the writer reads the next while the caller indexes one.
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        self.send(Job::Load(now_ms, tx))?;
        receive_chunks(rx, sink).await
    }

    async fn purge(&self, now_ms: u64) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Purge(now_ms, tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
