//! The PostgreSQL store (`store.url`), for one node: a thread of its own runs a tokio runtime
//! that owns the connection pool and a writer task. The writer folds every submission queued at
//! once into one transaction (group commit) and acks them after the commit; loads and purges run
//! beside it on pooled connections. Every connection has a connect timeout and a
//! `statement_timeout`, so a database that is gone fails requests with [`StoreError`] within
//! seconds instead of hanging them. At open the schema is migrated ([`super::postgres_sql`]) and
//! an advisory lock is taken on a connection of its own, held for the store's life: until
//! cluster mode exists, one node per database.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;

use super::ack::{self, Relays, Waiter};
use super::postgres_read::{load, purge};
use super::postgres_sql::{self as sql, Client, Failure};
use super::postgres_write::apply;
use super::{receive_chunks, Ack, Snapshot, StoreError, StoreOp, TokenStore};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one statement may run, in milliseconds (the server cancels it past that).
const STATEMENT_TIMEOUT_MS: u64 = 5_000;
/// Most submissions folded into one transaction.
const MAX_GROUP: usize = 4096;

enum Job {
    Commit(Vec<StoreOp>, Waiter),
    Load(u64, mpsc::Sender<Result<Option<Snapshot>, StoreError>>),
    Purge(u64, oneshot::Sender<Result<u64, StoreError>>),
}

/// Handle to the store's thread; cheap to share behind an `Arc`. Dropping it lets the writer
/// finish what was queued, then the thread ends and the lock is released.
pub struct PostgresStore {
    tx: mpsc::UnboundedSender<Job>,
    relays: Relays,
}

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
    let options = format!(
        "{} -c statement_timeout={STATEMENT_TIMEOUT_MS}",
        config.get_options().unwrap_or("")
    );
    config.options(options.trim()).connect_timeout(CONNECT_TIMEOUT);
    if config.get_application_name().is_none() {
        config.application_name("tokengate");
    }
    Ok(config)
}

impl PostgresStore {
    /// Connects to `url` with a pool of `pool_size` connections, migrates the schema and takes
    /// the single-node lock; fails if the database cannot be reached or another node holds it.
    pub fn open(url: &str, pool_size: usize) -> Result<PostgresStore, StoreError> {
        let config = connection_config(url)?;
        let where_ = describe(url);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Db(e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("tokengate-store".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let started = start(config, pool_size, &where_).await;
                    match started {
                        Ok((pool, lock)) => {
                            // A dropped receiver means the opener went away; there is nobody
                            // to serve, and `rx` ends at once.
                            let _ = ready_tx.send(Ok(()));
                            serve(pool, rx).await;
                            drop(lock);
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
        })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.tx.send(job).map_err(|_| StoreError::Closed)
    }
}

/// The pool, with the schema migrated, and the connection that holds the single-node lock.
async fn start(config: tokio_postgres::Config, pool_size: usize, where_: &str) -> Result<(Pool, Client), StoreError> {
    let unreachable = |e: &dyn std::error::Error| StoreError::Db(format!("{where_}: {}", sql::chain(e)));
    let manager = Manager::from_config(
        config.clone(),
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
    let (lock, connection) = config.connect(NoTls).await.map_err(|e| unreachable(&e))?;
    let held_on = where_.to_string();
    tokio::spawn(async move {
        // The connection ends with the store, or else with an error: then the lock is gone and
        // another node could take the database.
        if let Err(e) = connection.await {
            log::error!(
                "lost the connection holding the single-node lock on {held_on}: {}",
                sql::chain(&e)
            );
        }
    });
    sql::take_node_lock(&lock, where_).await?;
    let mut client = pool.get().await.map_err(|e| unreachable(&e))?;
    sql::migrate(&mut client)
        .await
        .map_err(|e| StoreError::Db(format!("{where_}: {e}")))?;
    Ok((pool, lock))
}

/// The writer: takes everything queued, commits the submissions among it in one transaction,
/// then starts the loads and purges queued after them. Ends once every sender is gone.
async fn serve(pool: Pool, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::new();
    while rx.recv_many(&mut jobs, MAX_GROUP).await > 0 {
        let mut commits = Vec::new();
        for job in jobs.drain(..) {
            match job {
                Job::Commit(ops, waiter) => commits.push((ops, waiter)),
                Job::Load(now, out) => {
                    // What was submitted before the load is in what it reads.
                    commit_group(&pool, std::mem::take(&mut commits)).await;
                    let pool = pool.clone();
                    tokio::spawn(async move { load(&pool, now, out).await });
                }
                Job::Purge(now, out) => {
                    commit_group(&pool, std::mem::take(&mut commits)).await;
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        // A purge nobody awaits any more is still worth finishing.
                        let _ = out.send(purge(&pool, now).await);
                    });
                }
            }
        }
        commit_group(&pool, commits).await;
    }
}

/// Commits `group` in one transaction and acks each submission. Should the database reject it,
/// each submission is tried in a transaction of its own, so one bad submission fails alone; a
/// database that cannot be reached fails them all at once.
async fn commit_group(pool: &Pool, group: Vec<(Vec<StoreOp>, Waiter)>) {
    let all: Vec<&StoreOp> = group.iter().flat_map(|(ops, _)| ops).collect();
    if all.is_empty() {
        return finish(group, Ok(()));
    }
    match apply(pool, &all).await {
        Ok(()) => finish(group, Ok(())),
        Err(Failure::Rejected(e)) if group.len() > 1 => {
            log::debug!("a group commit was rejected ({e}); committing its submissions one by one");
            let mut done = Vec::with_capacity(group.len());
            for (ops, waiter) in group {
                let result = if ops.is_empty() {
                    Ok(())
                } else {
                    apply(pool, &ops.iter().collect::<Vec<_>>())
                        .await
                        .map_err(StoreError::from)
                };
                done.push((waiter, result));
            }
            ack::complete(done);
        }
        Err(e) => finish(group, Err(e.into())),
    }
}

fn finish(group: Vec<(Vec<StoreOp>, Waiter)>, result: Result<(), StoreError>) {
    let done = match result {
        Ok(()) => group.into_iter().map(|(_, w)| (w, Ok(()))).collect(),
        Err(e) => {
            let message = e.to_string();
            group
                .into_iter()
                .map(|(_, w)| (w, Err(StoreError::Db(message.clone()))))
                .collect()
        }
    };
    ack::complete(done);
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
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;
