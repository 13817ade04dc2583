//! Durable token storage behind a small trait, so the embedded SQLite store and a shared
//! database for cluster mode are interchangeable. The request path never reads it: the index is
//! loaded from it at start, and every change is written to it before the answer is sent.

pub(crate) mod ack;
pub(crate) mod checkpoint;
#[cfg(test)]
#[path = "conformance_tests.rs"]
pub(crate) mod conformance;
pub(crate) mod expiries;
#[cfg(test)]
pub(crate) mod memory;
pub mod postgres;
mod postgres_feed;
mod postgres_groups;
mod postgres_read;
mod postgres_sql;
mod postgres_turns;
mod postgres_write;
pub(crate) mod purge;
pub mod shared;
pub mod sqlite;
mod sqlite_sql;
pub(crate) mod timed;
pub(crate) mod writer;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

use compact_str::CompactString;

use crate::domain::format::TokenFormat;
use crate::domain::grant_type::GrantType;
use crate::domain::ids::{FamilyId, TokenId, TokenState};
use shared::{Feed, KeyFingerprint, KeyName, Turn};

/// One access token as stored: no token text, only its id (see [`TokenId`]). The client id and
/// scope are shared copies and the subject is inline up to 24 bytes, so a row costs no allocation
/// of its own: none on the request path, and a restart that reads a million rows holds a million
/// rows' bytes, not five strings per row.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessRow {
    pub id: TokenId,
    pub client_id: Arc<str>,
    pub subject: CompactString,
    /// Canonical scope string.
    pub scope: Arc<str>,
    /// Canonical audience string (empty for tokens stored before audiences).
    pub audience: Arc<str>,
    pub format: TokenFormat,
    pub grant: GrantType,
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
    pub state: TokenState,
    pub family: Option<FamilyId>,
    pub refresh_id: Option<TokenId>,
}

/// One refresh token as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshRow {
    pub id: TokenId,
    pub client_id: Arc<str>,
    pub subject: CompactString,
    pub scope: Arc<str>,
    pub audience: Arc<str>,
    pub family: FamilyId,
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
    pub access_id: TokenId,
    pub state: TokenState,
}

/// One change; a batch of them is committed atomically.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    InsertAccess(AccessRow),
    InsertRefresh(RefreshRow),
    /// A state change of an access token; `expires_at_ms` is the token's, so the record of the
    /// change can be dropped with the token.
    SetAccessState {
        id: TokenId,
        state: TokenState,
        expires_at_ms: u64,
    },
    /// A state change of a refresh token.
    SetRefreshState {
        id: TokenId,
        state: TokenState,
        expires_at_ms: u64,
    },
}

/// What is loaded into the index at start.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Active, unexpired access tokens.
    pub access: Vec<AccessRow>,
    /// Unexpired refresh tokens that are active or spent (spent ones detect reuse).
    pub refresh: Vec<RefreshRow>,
}

/// A store failure. The request that caused it gets a 500 `server_error`, or a 503
/// `temporarily_unavailable` when the database cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Db(String),
    /// The database cannot be reached, or did not answer in time.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store writer has stopped")]
    Closed,
}

/// Resolves once a submitted batch is durable (or failed).
pub type Ack = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'static>>;

/// A durable token store.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Queues `ops` to be applied atomically. Submissions are applied in the order they were
    /// made, so a caller may submit under a lock and await the returned [`Ack`] after releasing
    /// it. An empty submission is a barrier: its ack means everything submitted before it is
    /// durable.
    fn submit(&self, ops: Vec<StoreOp>) -> Ack;

    /// Applies `ops` atomically; returns once they are durable.
    async fn commit(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        self.submit(ops).await
    }
    /// Reads what the index must hold at start, in issue order, handing it to `sink` a chunk at
    /// a time as it is read: a restart holds a chunk of rows beside the index, not all of them
    /// (reading every row first would hold them all beside the index; docs/decisions.md).
    async fn load(&self, now_ms: u64, sink: &mut (dyn FnMut(Snapshot) + Send)) -> Result<(), StoreError>;

    /// Everything [`Self::load`] reads, in one snapshot.
    async fn load_all(&self, now_ms: u64) -> Result<Snapshot, StoreError> {
        let mut all = Snapshot::default();
        self.load(now_ms, &mut |chunk: Snapshot| {
            all.access.extend(chunk.access);
            all.refresh.extend(chunk.refresh);
        })
        .await?;
        Ok(all)
    }
    /// Deletes tokens that can never be valid again; returns how many rows went.
    async fn purge(&self, now_ms: u64) -> Result<u64, StoreError>;

    /// Whether other nodes share this store (cluster mode).
    fn is_shared(&self) -> bool {
        false
    }

    /// A turn to decide for `key` ([`Turn`]). A shared store locks the key in the database and
    /// reads its live rows; `None` asks only for a place in the next commit (a decision that
    /// needs no truth from other nodes: it only inserts).
    async fn turn(&self, key: Option<&KeyName>) -> Result<Turn, StoreError> {
        let _ = key;
        Ok(Turn::direct())
    }

    /// An access token's row, whatever its state (a shared store: a token another node issued).
    async fn find_access(&self, id: &TokenId) -> Result<Option<AccessRow>, StoreError> {
        let _ = id;
        Ok(None)
    }

    /// A refresh token's row, whatever its state.
    async fn find_refresh(&self, id: &TokenId) -> Result<Option<RefreshRow>, StoreError> {
        let _ = id;
        Ok(None)
    }

    /// The feed of changes other nodes commit (a shared store only).
    fn feed(&self) -> Option<Arc<Feed>> {
        None
    }

    /// Checks that this node's keys are the ones the other nodes use (recording them when no
    /// node has yet); fails naming the key that differs.
    async fn check_keys(&self, keys: &[KeyFingerprint]) -> Result<(), StoreError> {
        let _ = keys;
        Ok(())
    }
}

/// Hands the chunks a backend's loader sends to `sink` until it says it is done (`Ok(None)`).
/// A loader that goes before saying so has not sent all there is: that is an error.
pub(crate) async fn receive_chunks(
    mut chunks: tokio::sync::mpsc::Receiver<Result<Option<Snapshot>, StoreError>>,
    sink: &mut (dyn FnMut(Snapshot) + Send),
) -> Result<(), StoreError> {
    loop {
        match chunks.recv().await {
            Some(Ok(Some(chunk))) => sink(chunk),
            Some(Ok(None)) => return Ok(()),
            Some(Err(e)) => return Err(e),
            None => return Err(StoreError::Closed),
        }
    }
}

/// One shared copy of each client id and scope text a load reads (they repeat across rows).
#[derive(Default)]
pub(crate) struct SharedNames(std::collections::HashSet<Arc<str>>);

impl SharedNames {
    pub(crate) fn share(&mut self, text: &str) -> Arc<str> {
        if let Some(name) = self.0.get(text) {
            return Arc::clone(name);
        }
        let name: Arc<str> = Arc::from(text);
        self.0.insert(Arc::clone(&name));
        name
    }
}

/// The store backing a gateway (`[store]`): the one place a backend is chosen. Its `Debug`
/// shows [`Backend::describe`], never a url's password.
#[derive(Clone, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite database at `path` (`store.path`).
    Sqlite { path: PathBuf },
    /// A PostgreSQL database (`store.url`) with a pool of `pool_size` connections
    /// (`store.pool_size`), shared by the nodes of a cluster.
    Postgres { url: String, pool_size: usize },
}

impl Backend {
    /// Where the tokens are, for log lines.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite { path } => path.display().to_string(),
            // Host, port and database only: the url may hold a password.
            Backend::Postgres { url, .. } => postgres::describe(url),
        }
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            Backend::Postgres { pool_size, .. } => f
                .debug_struct("Postgres")
                .field("database", &self.describe())
                .field("pool_size", pool_size)
                .finish(),
        }
    }
}

/// Opens the store `backend` names: the only code that knows the backends apart.
pub fn open(backend: &Backend) -> Result<Arc<dyn TokenStore>, StoreError> {
    match backend {
        Backend::Sqlite { path } => Ok(Arc::new(sqlite::SqliteStore::open(path)?)),
        Backend::Postgres { url, pool_size } => Ok(Arc::new(postgres::PostgresStore::open(url, *pool_size)?)),
    }
}

/// An active access token's row, for tests of the stores.
#[cfg(test)]
pub(crate) fn test_row(id: TokenId, expires_at_ms: u64) -> AccessRow {
    AccessRow {
        id,
        client_id: "c".into(),
        subject: CompactString::default(),
        scope: "a b".into(),
        audience: "https://api.example".into(),
        format: TokenFormat::Opaque,
        grant: GrantType::ClientCredentials,
        issued_at_ms: 1000,
        expires_at_ms,
        state: TokenState::Active,
        family: None,
        refresh_id: None,
    }
}
