//! The PostgreSQL store's groups: what the writer queued, written as one transaction (plain
//! submissions, or decisions with their keys locked, [`super::postgres_turns`]), several groups
//! at once, their acks given in the order the groups started.

use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::oneshot;

use super::ack::{self, AckResult, Waiter};
use super::postgres_feed::FeedState;
use super::postgres_sql::Failure;
use super::postgres_turns::{run_group, Done, TurnJob};
use super::postgres_write::apply;
use super::shared::{Feed, SyncState};
use super::{StoreError, StoreOp};

/// One transaction for what was queued: decisions with their keys locked, or plain submissions
/// alone. A write that could not reach the database tells the feed, so later decisions fail at
/// once until it has caught up again.
async fn write_group(
    pool: &Pool,
    feed: &Feed,
    commits: Vec<(Vec<StoreOp>, Waiter)>,
    turns: Vec<TurnJob>,
) -> Vec<(Waiter, AckResult)> {
    let (done, lost) = if turns.is_empty() {
        commit_group(pool, commits).await
    } else {
        run_group(pool, commits, turns, crate::domain::ids::now_ms()).await
    };
    if lost {
        feed.lost();
        // Connections that may hang on a cut network are not handed out again.
        pool.retain(|_, _| false);
    }
    done
}

/// Groups written at once, each on a connection of its own: while one waits for its commit's
/// flush, the next is written. Their acks are given in the order the groups started, so a
/// submission's ack still means everything submitted before it is durable.
pub(super) struct Pipeline {
    permits: Arc<tokio::sync::Semaphore>,
    size: u32,
    /// Resolves once the latest group's acks have been given.
    last: Option<oneshot::Receiver<()>>,
}

impl Pipeline {
    pub(super) fn new(pool_size: usize) -> Pipeline {
        let size = u32::try_from((pool_size / 4).clamp(1, 2)).unwrap_or(1);
        Pipeline {
            permits: Arc::new(tokio::sync::Semaphore::new(size as usize)),
            size,
            last: None,
        }
    }

    /// Starts writing a group once one of the pipeline's places is free.
    pub(super) async fn start(
        &mut self,
        pool: &Pool,
        feed: &Arc<FeedState>,
        commits: Vec<(Vec<StoreOp>, Waiter)>,
        turns: Vec<TurnJob>,
    ) {
        if commits.is_empty() && turns.is_empty() {
            return;
        }
        let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
            return;
        };
        if feed.feed.state() != SyncState::Ok {
            // A group before this one found the database gone while this one waited: fail it
            // now rather than after timeouts of its own.
            let gone = || StoreError::Unavailable("the database cannot be reached".into());
            for turn in turns {
                // A requester that went away needs no answer.
                let _ = turn.reply.send(Err(gone()));
            }
            ack::complete(commits.into_iter().map(|(_, w)| (w, Err(gone()))).collect());
            return;
        }
        let before = self.last.take();
        let (done_tx, done_rx) = oneshot::channel();
        self.last = Some(done_rx);
        let (pool, feed) = (pool.clone(), Arc::clone(feed));
        tokio::spawn(async move {
            let done = write_group(&pool, &feed.feed, commits, turns).await;
            drop(permit);
            if let Some(before) = before {
                // A group that went away has given its acks (or never will): go on.
                let _ = before.await;
            }
            ack::complete(done);
            let _ = done_tx.send(());
        });
    }

    /// Waits until every group started has been written and acked.
    pub(super) async fn drain(&mut self) {
        if let Some(last) = self.last.take() {
            let _ = last.await;
        }
        let _ = self.permits.acquire_many(self.size).await;
    }
}

/// Commits `group` in one transaction and acks each submission. Should the database reject it,
/// each submission is tried in a transaction of its own, so one bad submission fails alone; a
/// database that cannot be reached fails them all at once.
async fn commit_group(pool: &Pool, group: Vec<(Vec<StoreOp>, Waiter)>) -> Done {
    let all: Vec<&StoreOp> = group.iter().flat_map(|(ops, _)| ops).collect();
    if all.is_empty() {
        return (finish(group, Ok(())), false);
    }
    match apply(pool, &all).await {
        Ok(()) => (finish(group, Ok(())), false),
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
            (done, false)
        }
        Err(e) => {
            let lost = matches!(e, Failure::Unavailable(_));
            (finish(group, Err(e.into())), lost)
        }
    }
}

fn finish(group: Vec<(Vec<StoreOp>, Waiter)>, result: Result<(), StoreError>) -> Vec<(Waiter, AckResult)> {
    match result {
        Ok(()) => group.into_iter().map(|(_, w)| (w, Ok(()))).collect(),
        Err(e) => {
            let unavailable = matches!(e, StoreError::Unavailable(_) | StoreError::Closed);
            let message = e.to_string();
            let again = |m: &str| match unavailable {
                true => StoreError::Unavailable(m.to_string()),
                false => StoreError::Db(m.to_string()),
            };
            group.into_iter().map(|(_, w)| (w, Err(again(&message)))).collect()
        }
    }
}
