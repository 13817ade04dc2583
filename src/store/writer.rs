//! The store's writer thread: it owns the connection that writes, folds every commit queued at
//! once into one transaction (group commit), answers loads, and runs purges one bounded step at a
//! time between commits ([`super::purge`]).

use std::collections::VecDeque;
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::ack::{self, Waiter};
use super::checkpoint::Checkpoints;
use super::expiries::Expiries;
use super::purge::Purge;
use super::sqlite_sql::{apply, db_err, load, LOAD_CHUNK_ROWS};
use super::{Snapshot, StoreError, StoreOp};

/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 4096;

/// How long the store goes without a job before its WAL is emptied and cut to nothing.
const IDLE_AFTER: Duration = Duration::from_secs(1);

pub(super) enum Job {
    Commit(Vec<StoreOp>, Waiter),
    /// Chunks of the live tokens, then `None` once all were sent.
    Load(u64, tokio::sync::mpsc::Sender<Result<Option<Snapshot>, StoreError>>),
    Purge(u64, oneshot::Sender<Result<u64, StoreError>>),
}

pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) checkpoints: Checkpoints,
    /// Purges under way, oldest first; only the first one steps.
    purges: VecDeque<Purge>,
    /// Where expired rows can be (the tables have no expiry index).
    expiries: Expiries,
    /// Whether anything was written since the WAL was last cut to nothing.
    wal_written: bool,
    idle_after: Duration,
}

impl Writer {
    pub(super) fn new(conn: Connection, checkpoints: Checkpoints) -> Writer {
        Writer {
            conn,
            checkpoints,
            purges: VecDeque::new(),
            expiries: Expiries::default(),
            wal_written: false,
            idle_after: IDLE_AFTER,
        }
    }

    /// Serves jobs until every sender is gone.
    pub(super) fn run(mut self, rx: mpsc::Receiver<Job>) {
        while self.turn(&rx) {}
    }

    /// One turn: the jobs queued now (waiting for one if there is nothing else to do), then one
    /// step of the oldest purge. Returns `false` once every sender is gone.
    pub(super) fn turn(&mut self, rx: &mpsc::Receiver<Job>) -> bool {
        let first = if !self.purges.is_empty() {
            match rx.try_recv() {
                Ok(job) => Some(job),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => return false,
            }
        } else if self.wal_written {
            match rx.recv_timeout(self.idle_after) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => {
                    self.when_idle();
                    return true;
                }
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        } else {
            match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => return false,
            }
        };
        if let Some(first) = first {
            self.serve(rx, first);
        }
        if let Some(purge) = self.purges.front_mut() {
            let more = purge.step(&self.conn, &mut self.expiries);
            // A step is a commit too: the WAL it grew needs checkpointing like any other.
            self.checkpoints.after_commit(&self.conn);
            self.wal_written = true;
            if !more {
                self.purges.pop_front();
            }
        }
        true
    }

    /// `first` and whatever else is queued (up to [`MAX_BATCH`]): the commits in one transaction.
    fn serve(&mut self, rx: &mpsc::Receiver<Job>, first: Job) {
        let mut commits = Vec::new();
        let mut loads = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next {
            match job {
                Job::Commit(ops, reply) => commits.push((ops, reply)),
                Job::Load(now, reply) => loads.push((now, reply)),
                Job::Purge(now, reply) => self.purges.push_back(Purge::new(now, reply)),
            }
            next = if commits.len() + loads.len() < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !commits.is_empty() {
            self.commit(commits);
        }
        for (now, reply) in loads {
            // The writer is a thread of its own, outside any runtime: it may block on the reader.
            let read = load(&self.conn, now, LOAD_CHUNK_ROWS, |chunk| {
                reply.blocking_send(Ok(Some(chunk))).is_ok()
            });
            let _ = reply.blocking_send(read.map(|()| None).map_err(db_err));
        }
    }

    /// Nothing came for a while: copy the whole WAL into the database and cut it to nothing, so
    /// that an idle gateway's disk holds its live tokens only. Under load the WAL is only ever
    /// restarted, never cut (a file that grows again makes every sync write its size too).
    fn when_idle(&mut self) {
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0))
        {
            // 0: done; 1: another connection was in the way (the next idle spell retries).
            Ok(0) => self.wal_written = false,
            Ok(_) => {}
            Err(e) => log::warn!("WAL checkpoint of an idle store failed: {e}"),
        }
    }

    fn commit(&mut self, commits: Vec<(Vec<StoreOp>, Waiter)>) {
        let all: Vec<&StoreOp> = commits.iter().flat_map(|(ops, _)| ops.iter()).collect();
        // Barriers alone need no transaction: everything before them is already committed.
        let wrote = !all.is_empty();
        let result = if wrote {
            apply(&self.conn, &all, &mut self.expiries)
        } else {
            Ok(())
        };
        match result {
            Ok(()) => {
                ack::complete(commits.into_iter().map(|(_, w)| (w, Ok(()))).collect());
                if wrote {
                    self.checkpoints.after_commit(&self.conn);
                    self.wal_written = true;
                }
            }
            Err(_) => {
                // One bad batch member must not fail the others: retry each on its own.
                let done = commits
                    .into_iter()
                    .map(|(ops, w)| {
                        let refs: Vec<&StoreOp> = ops.iter().collect();
                        (w, apply(&self.conn, &refs, &mut self.expiries).map_err(db_err))
                    })
                    .collect();
                ack::complete(done);
            }
        }
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
