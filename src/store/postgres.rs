//! The PostgreSQL store (`store.url`), shared by the nodes of a cluster: a thread of its own
//! runs a tokio runtime that owns the connection pool, a writer task and the change feed
//! ([`super::postgres_feed`]). The writer folds every submission and decision queued at once
//! into one transaction (group commit; decisions lock their keys in the database,
//! [`super::postgres_turns`]) and acks them after the commit; loads, look-ups and purges run
//! beside it on pooled connections. Every connection has a connect timeout and a
//! `statement_timeout`, so a database that is gone fails requests with
//! [`StoreError::Unavailable`] within seconds instead of hanging them; while the feed cannot
//! reach the database, decisions fail at once. At open the schema is migrated
//! ([`super::postgres_sql`]).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;

use std::sync::Arc;

use super::ack::{Relays, Waiter};
use super::postgres_feed::{follow, FeedState};
use super::postgres_groups::Pipeline;
use super::postgres_read::{find, find_live, first_use, load, purge};
use super::postgres_sql::{self as sql};
use super::postgres_turns::{Granted, TurnJob};
use super::shared::{Feed, KeyFingerprint, KeyName, SyncState, Turn};
use super::{receive_chunks, AccessRow, Ack, RefreshRow, Snapshot, StoreError, StoreOp, TokenStore};
use crate::domain::filter::TokenFilter;
use crate::domain::ids::TokenId;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one statement may run, in milliseconds (the server cancels it past that).
const STATEMENT_TIMEOUT_MS: u64 = 4_000;
/// How long a connection may sit idle inside a transaction before the server ends it.
const IDLE_IN_TRANSACTION_MS: u64 = 10_000;
/// Most submissions folded into one transaction.
const MAX_GROUP: usize = 4096;

enum Job {
    Commit(Vec<StoreOp>, Waiter),
    Turn(TurnJob),
    Load(u64, mpsc::Sender<Result<Option<Snapshot>, StoreError>>),
    Purge(u64, oneshot::Sender<Result<u64, StoreError>>),
    Find(bool, TokenId, oneshot::Sender<Result<Snapshot, StoreError>>),
    CheckKeys(Vec<KeyFingerprint>, oneshot::Sender<Result<(), StoreError>>),
    FirstUse([u8; 16], u64, u64, oneshot::Sender<Result<bool, StoreError>>),
    FindLive(
        Box<(TokenFilter, u64, usize)>,
        oneshot::Sender<Result<Snapshot, StoreError>>,
    ),
}

/// Handle to the store's thread; cheap to share behind an `Arc`. Dropping it lets the writer
/// finish what was queued, then the thread ends.
pub struct PostgresStore {
    tx: mpsc::UnboundedSender<Job>,
    relays: Relays,
    feed: Arc<FeedState>,
}

/// Longest a look-up of one token may take (one indexed read).
const FIND_TIMEOUT: Duration = Duration::from_secs(2);

/// Said while the feed cannot reach the database.
const CUT_OFF: &str = "the database cannot be reached; this node is waiting to catch up";

/// `url` without its password or parameters: `host:port/database`, for log lines and messages.
pub fn describe(url: &str) -> String {
    match tokio_postgres::Config::from_str(url) {
        Ok(config) => {
            let host = match config.get_hosts().first() {
                Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
                Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
                None => "localhost".into(),
            };
            let port = config.get_ports().first().copied().unwrap_or(5432);
            let db = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
            format!("postgresql://{host}:{port}/{db}")
        }
        Err(_) => "postgresql (an unreadable url)".into(),
    }
}

/// Whether `url` is a PostgreSQL url this store can use; the error never quotes it (it may hold
/// a password). Nothing connects.
pub fn check_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must be a postgres:// url".into());
    }
    tokio_postgres::Config::from_str(url)
        .map(drop)
        .map_err(|e| format!("not a valid PostgreSQL url: {e}"))
}

/// The connection settings of `url`, with the timeouts added.
fn connection_config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config = tokio_postgres::Config::from_str(url)
        // The parser's message never quotes the url, so no password reaches the log.
        .map_err(|e| StoreError::Db(format!("store.url: {e}")))?;
    // A node cut off in the middle of a transaction leaves it open on the server, holding its
    // keys' locks and making every feed re-read from it: the server ends it past this.
    let options = format!(
        "{} -c statement_timeout={STATEMENT_TIMEOUT_MS} -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}",
        config.get_options().unwrap_or("")
    );
    config.options(options.trim()).connect_timeout(CONNECT_TIMEOUT);
    if config.get_application_name().is_none() {
        config.application_name("tokengate");
    }
    Ok(config)
}

impl PostgresStore {
    /// Connects to `url` with a pool of `pool_size` connections and migrates the schema; fails
    /// if the database cannot be reached.
    pub fn open(url: &str, pool_size: usize) -> Result<PostgresStore, StoreError> {
        let config = connection_config(url)?;
        let where_ = describe(url);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Db(e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let feed = Arc::new(FeedState::default());
        let feed_state = Arc::clone(&feed);
        std::thread::Builder::new()
            .name("tokengate-store".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match start(config.clone(), pool_size, &where_).await {
                        Ok(pool) => {
                            // A dropped receiver means the opener went away; there is nobody
                            // to serve, and `rx` ends at once.
                            let _ = ready_tx.send(Ok(()));
                            let feed = tokio::spawn(follow(config, Arc::clone(&feed_state), where_));
                            serve(pool, rx, feed_state, pool_size).await;
                            feed.abort();
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })
            })
            .map_err(|e| StoreError::Db(e.to_string()))?;
        ready_rx.recv().map_err(|_| StoreError::Closed)??;
        Ok(PostgresStore {
            tx,
            relays: Relays::default(),
            feed,
        })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.tx.send(job).map_err(|_| StoreError::Closed)
    }
}

/// The pool, with the schema migrated.
async fn start(config: tokio_postgres::Config, pool_size: usize, where_: &str) -> Result<Pool, StoreError> {
    let unreachable = |e: &dyn std::error::Error| StoreError::Unavailable(format!("{where_}: {}", sql::chain(e)));
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(CONNECT_TIMEOUT))
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| unreachable(&e))?;
    let mut client = pool.get().await.map_err(|e| unreachable(&e))?;
    sql::migrate(&mut client)
        .await
        .map_err(|e| StoreError::Db(format!("{where_}: {e}")))?;
    Ok(pool)
}

/// The writer: takes everything queued, commits the submissions and decisions among it in one
/// transaction, and starts the other jobs beside it. Ends once every sender is gone.
async fn serve(pool: Pool, mut rx: mpsc::UnboundedReceiver<Job>, feed: Arc<FeedState>, pool_size: usize) {
    let mut pipeline = Pipeline::new(pool_size);
    let mut jobs = Vec::new();
    while rx.recv_many(&mut jobs, MAX_GROUP).await > 0 {
        let mut commits = Vec::new();
        let mut turns = Vec::new();
        for job in jobs.drain(..) {
            match job {
                Job::Commit(ops, waiter) => commits.push((ops, waiter)),
                Job::Turn(turn) => turns.push(turn),
                Job::Load(now, out) => {
                    // What was submitted before the load is in what it reads.
                    let (c, t) = (std::mem::take(&mut commits), std::mem::take(&mut turns));
                    pipeline.start(&pool, &feed, c, t).await;
                    pipeline.drain().await;
                    let (pool, feed) = (pool.clone(), Arc::clone(&feed));
                    tokio::spawn(async move { load(&pool, now, out, feed).await });
                }
                Job::Purge(now, out) => {
                    let (c, t) = (std::mem::take(&mut commits), std::mem::take(&mut turns));
                    pipeline.start(&pool, &feed, c, t).await;
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        // A purge nobody awaits any more is still worth finishing.
                        let _ = out.send(purge(&pool, now).await);
                    });
                }
                Job::Find(refresh, id, out) => {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let _ = out.send(find(&pool, refresh, id).await);
                    });
                }
                Job::FirstUse(digest, forget_at, now, out) => {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let _ = out.send(first_use(&pool, digest, forget_at, now).await);
                    });
                }
                Job::FindLive(asked, out) => {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let (filter, now, limit) = *asked;
                        let _ = out.send(find_live(&pool, &filter, now, limit).await);
                    });
                }
                Job::CheckKeys(keys, out) => {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let result = match pool.get().await {
                            Ok(mut client) => sql::check_keys(&mut client, &keys).await,
                            Err(e) => Err(StoreError::Unavailable(sql::chain(&e))),
                        };
                        let _ = out.send(result);
                    });
                }
            }
        }
        pipeline.start(&pool, &feed, commits, turns).await;
    }
    pipeline.drain().await;
}

#[async_trait]
impl TokenStore for PostgresStore {
    fn submit(&self, ops: Vec<StoreOp>) -> Ack {
        let (tx, rx) = oneshot::channel();
        let sent = self.send(Job::Commit(ops, self.relays.waiter(tx)));
        Box::pin(async move {
            sent?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    async fn load(&self, now_ms: u64, sink: &mut (dyn FnMut(Snapshot) + Send)) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::channel(2);
        self.send(Job::Load(now_ms, tx))?;
        receive_chunks(rx, sink).await
    }

    async fn purge(&self, now_ms: u64) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Purge(now_ms, tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn turn(&self, key: Option<&KeyName>) -> Result<Turn, StoreError> {
        if self.feed.feed.state() != SyncState::Ok {
            return Err(StoreError::Unavailable(CUT_OFF.into()));
        }
        let Some(key) = key else {
            return Ok(Turn::direct());
        };
        let (ack_tx, ack_rx) = oneshot::channel();
        let (reply, granted) = oneshot::channel::<Result<Granted, StoreError>>();
        self.send(Job::Turn(TurnJob {
            key: key.clone(),
            reply,
            waiter: self.relays.waiter(ack_tx),
        }))?;
        // A group that failed before this turn was handed out drops the reply.
        let (rows, changes) = granted.await.map_err(|_| StoreError::Unavailable(CUT_OFF.into()))??;
        let ack: Ack = Box::pin(async move { ack_rx.await.map_err(|_| StoreError::Unavailable(CUT_OFF.into()))? });
        Ok(Turn::shared(rows, changes, ack))
    }

    async fn find_access(&self, id: &TokenId) -> Result<Option<AccessRow>, StoreError> {
        Ok(self.find(false, *id).await?.access.pop())
    }

    async fn find_refresh(&self, id: &TokenId) -> Result<Option<RefreshRow>, StoreError> {
        Ok(self.find(true, *id).await?.refresh.pop())
    }

    async fn first_use(&self, digest: [u8; 16], forget_at_secs: u64, now_secs: u64) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.ask(Job::FirstUse(digest, forget_at_secs, now_secs, tx), rx).await
    }

    async fn find_live(&self, filter: &TokenFilter, now_ms: u64, limit: usize) -> Result<Option<Snapshot>, StoreError> {
        if self.feed.feed.state() != SyncState::Ok {
            return Err(StoreError::Unavailable(CUT_OFF.into()));
        }
        let (tx, rx) = oneshot::channel();
        self.send(Job::FindLive(Box::new((filter.clone(), now_ms, limit)), tx))?;
        Ok(Some(rx.await.map_err(|_| StoreError::Closed)??))
    }

    fn feed(&self) -> Option<Arc<Feed>> {
        Some(Arc::clone(&self.feed.feed))
    }

    async fn check_keys(&self, keys: &[KeyFingerprint]) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::CheckKeys(keys.to_vec(), tx))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

impl PostgresStore {
    /// A token's row. Refused at once while the feed cannot reach the database; a look-up that
    /// takes longer than [`FIND_TIMEOUT`] takes the database for gone too.
    async fn find(&self, refresh: bool, id: TokenId) -> Result<Snapshot, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.ask(Job::Find(refresh, id, tx), rx).await
    }

    /// Sends a read, and waits for its answer: refused at once while the feed cannot reach the
    /// database; one that takes longer than [`FIND_TIMEOUT`] takes the database for gone too.
    async fn ask<T>(&self, job: Job, rx: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
        if self.feed.feed.state() != SyncState::Ok {
            return Err(StoreError::Unavailable(CUT_OFF.into()));
        }
        self.send(job)?;
        let found = match tokio::time::timeout(FIND_TIMEOUT, rx).await {
            Ok(answer) => answer.map_err(|_| StoreError::Closed)?,
            Err(_) => Err(StoreError::Unavailable("a look-up took too long".into())),
        };
        if matches!(found, Err(StoreError::Unavailable(_))) {
            self.feed.feed.lost();
        }
        found
    }
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
pub(crate) mod tests;
