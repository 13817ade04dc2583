//! Overlapping group commit for the SQLite store.
//!
//! SQLite with `synchronous = FULL` makes the writer wait in `fsync` after every transaction, so a
//! request that arrives during one commit waits for the rest of it and then for a whole second
//! one (about 1.5 fsyncs on average), and the disk never has more than one flush in flight. Here
//! the writer commits with `synchronous = OFF` (frames go to the page cache, checksummed by the
//! WAL format) and hands each committed batch to this pipeline; [`SYNCERS`] threads call
//! `fdatasync` on the WAL file, overlapping, and a batch is acknowledged once a sync that
//! *started after it was written* has returned. `fdatasync` flushes every page of the file
//! written before the call, so that is exactly "durable": the same guarantee as `FULL`, with one
//! fsync of latency instead of one and a half, and two flushes in flight (this disk completes
//! two overlapping flushes in the time of one).
//!
//! What `synchronous = OFF` would otherwise lose is kept by the store: automatic checkpoints are
//! off, and the store checkpoints with `FULL` (WAL synced before copying, database synced before
//! the WAL is reused), so frames are never overwritten before their pages are durable in the
//! database file.
//!
//! A failed `fdatasync` poisons the pipeline: the kernel may have dropped the dirty pages, so
//! nothing written since can be promised durable. Every waiting and later batch gets an error
//! (the engine withdraws those tokens) until the gateway restarts and reloads from disk.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::StoreError;

/// Threads syncing the WAL at once.
pub const SYNCERS: usize = 2;

/// Whoever waits for a batch to become durable.
pub type Waiter = oneshot::Sender<Result<(), StoreError>>;

#[derive(Default)]
struct Progress {
    /// Sequence number of the last batch handed over (written to the WAL).
    written: u64,
    /// Highest sequence number some sync has started for.
    claimed: u64,
    /// Batches waiting for a sync, in sequence order.
    pending: VecDeque<(u64, Vec<Waiter>)>,
    /// Set after a failed sync: why the store can promise nothing any more.
    poisoned: Option<String>,
    closing: bool,
}

struct Shared {
    progress: Mutex<Progress>,
    work: Condvar,
    wal_path: PathBuf,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The writer's handle; dropping it stops the sync threads once they have synced what is left.
pub struct WalSync {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl WalSync {
    /// Starts the sync threads for the WAL file at `wal_path` (SQLite's `<database>-wal`).
    pub fn start(wal_path: PathBuf) -> Result<WalSync, StoreError> {
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress::default()),
            work: Condvar::new(),
            wal_path,
        });
        let mut threads = Vec::with_capacity(SYNCERS);
        for i in 0..SYNCERS {
            let shared = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("tokengate-sync{i}"))
                .spawn(move || syncer(&shared))
                .map_err(|e| StoreError::Db(e.to_string()))?;
            threads.push(handle);
        }
        Ok(WalSync { shared, threads })
    }

    /// Hands over a batch that the writer has just committed to the WAL: its waiters are answered
    /// once it is durable. With no waiters this is a barrier that still waits its turn.
    pub fn written(&self, waiters: Vec<Waiter>) {
        let mut p = self.shared.lock();
        if let Some(why) = &p.poisoned {
            fail(waiters, why);
            return;
        }
        p.written += 1;
        let seq = p.written;
        p.pending.push_back((seq, waiters));
        drop(p);
        self.shared.work.notify_one();
    }

    /// Answers `waiters` once everything handed over so far is durable (a barrier).
    pub fn after_pending(&self, waiters: Vec<Waiter>) {
        let mut p = self.shared.lock();
        if let Some(why) = &p.poisoned {
            fail(waiters, why);
            return;
        }
        if p.pending.is_empty() {
            drop(p);
            for w in waiters {
                let _ = w.send(Ok(()));
            }
            return;
        }
        // Joins the newest pending batch: answered with it.
        let seq = p.written;
        p.pending.push_back((seq, waiters));
    }

    /// Whether a failed sync has stopped the store from promising anything.
    pub fn poisoned(&self) -> Option<String> {
        self.shared.lock().poisoned.clone()
    }
}

impl Drop for WalSync {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.work.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn fail(waiters: Vec<Waiter>, why: &str) {
    for w in waiters {
        let _ = w.send(Err(StoreError::Db(format!(
            "store unavailable after a failed sync: {why}"
        ))));
    }
}

/// The WAL file, reopened if SQLite replaced it (a stale descriptor would sync the wrong file).
struct WalFile {
    file: Option<File>,
}

impl WalFile {
    fn sync(&mut self, path: &PathBuf) -> std::io::Result<()> {
        let stale = match &self.file {
            Some(f) => f.metadata()?.nlink() == 0,
            None => true,
        };
        if stale {
            self.file = Some(File::open(path)?);
        }
        match &self.file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }
}

fn syncer(shared: &Shared) {
    let mut wal = WalFile { file: None };
    loop {
        let target = {
            let mut p = shared.lock();
            while p.claimed >= p.written && !p.closing {
                p = shared.work.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if p.claimed >= p.written {
                return; // closing and nothing left
            }
            p.claimed = p.written;
            p.written
        };
        let result = wal.sync(&shared.wal_path);
        let mut done = Vec::new();
        {
            let mut p = shared.lock();
            match result {
                Ok(()) if p.poisoned.is_none() => {
                    while p.pending.front().is_some_and(|(seq, _)| *seq <= target) {
                        if let Some((_, waiters)) = p.pending.pop_front() {
                            done.extend(waiters);
                        }
                    }
                    drop(p);
                    for w in done {
                        let _ = w.send(Ok(()));
                    }
                    continue;
                }
                Ok(()) => {}
                Err(e) => {
                    log::error!("syncing the token store's WAL failed: {e}; refusing further writes");
                    p.poisoned = Some(e.to_string());
                }
            }
            let why = p.poisoned.clone().unwrap_or_default();
            for (_, waiters) in p.pending.drain(..) {
                done.extend(waiters);
            }
            drop(p);
            fail(done, &why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter() -> (Waiter, oneshot::Receiver<Result<(), StoreError>>) {
        oneshot::channel()
    }

    #[tokio::test]
    async fn written_batches_and_barriers_are_answered_once_synced() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let sync = WalSync::start(wal).unwrap();
        let (early_barrier, early) = waiter();
        sync.after_pending(vec![early_barrier]);
        assert!(early.await.unwrap().is_ok(), "nothing pending: answered at once");
        let mut acks = Vec::new();
        for _ in 0..100 {
            let (a, ra) = waiter();
            let (b, rb) = waiter();
            sync.written(vec![a, b]);
            acks.push(ra);
            acks.push(rb);
        }
        let (barrier, rbarrier) = waiter();
        sync.after_pending(vec![barrier]);
        for ack in acks {
            assert!(ack.await.unwrap().is_ok());
        }
        assert!(rbarrier.await.unwrap().is_ok());
        assert!(sync.poisoned().is_none());
    }

    #[tokio::test]
    async fn a_failed_sync_fails_its_batch_and_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        // No WAL file to open: the sync fails like an I/O error would.
        let sync = WalSync::start(dir.path().join("missing-wal")).unwrap();
        let (a, ra) = waiter();
        sync.written(vec![a]);
        assert!(matches!(ra.await.unwrap(), Err(StoreError::Db(_))));
        assert!(sync.poisoned().is_some());
        let (b, rb) = waiter();
        sync.written(vec![b]);
        assert!(matches!(rb.await.unwrap(), Err(StoreError::Db(_))));
        let (c, rc) = waiter();
        sync.after_pending(vec![c]);
        assert!(matches!(rc.await.unwrap(), Err(StoreError::Db(_))));
    }
}
