use std::path::Path;

use rusqlite::Connection;

use super::*;
use crate::domain::ids::TokenId;
use crate::store::ack::Relays;
use crate::store::expiries::SEGMENT_ROWS;
use crate::store::purge;
use crate::store::sqlite::SqliteStore;
use crate::store::sqlite_sql::open_writer_connection;
use crate::store::{AccessRow, TokenStore};

fn row(n: u32, expires_at_ms: u64) -> AccessRow {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&n.to_le_bytes());
    crate::store::test_row(TokenId(id), expires_at_ms)
}

fn inserts(ns: std::ops::Range<u32>, expires_at_ms: u64) -> Vec<StoreOp> {
    ns.map(|n| StoreOp::InsertAccess(row(n, expires_at_ms))).collect()
}

fn rows_in(path: &Path) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row("SELECT count(*) FROM tokens", [], |r| r.get(0)).unwrap()
}

/// A writer on a new database in a temporary folder, and the channel that feeds it.
struct Setup {
    dir: tempfile::TempDir,
    w: Writer,
    tx: mpsc::Sender<Job>,
    rx: mpsc::Receiver<Job>,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = Writer::new(
            open_writer_connection(&path).unwrap(),
            Checkpoints::start(&path).unwrap(),
        );
        let (tx, rx) = mpsc::channel();
        Setup { dir, w, tx, rx }
    }
}

/// A purge of many rows used to be one `DELETE`: every commit queued behind it waited for all of
/// it. Driven turn by turn here, so the order is the writer's, not the scheduler's.
#[test]
fn a_commit_queued_during_a_purge_lands_between_two_of_its_steps() {
    let Setup { dir, mut w, tx, rx } = Setup::new();
    let path = dir.path().join("t.db");
    let relays = Relays::default();
    let expired = 2 * SEGMENT_ROWS as u32 + 500;

    let (ack, mut acked) = oneshot::channel();
    tx.send(Job::Commit(inserts(0..expired, 5_000), relays.waiter(ack)))
        .unwrap();
    tx.send(Job::Commit(
        inserts(expired..expired + 10, 99_000),
        relays.waiter(oneshot::channel().0),
    ))
    .unwrap();
    assert!(w.turn(&rx));
    assert!(matches!(acked.try_recv(), Ok(Ok(()))));

    let (reply, mut purged) = oneshot::channel();
    tx.send(Job::Purge(10_000, reply)).unwrap();
    assert!(w.turn(&rx), "the purge's first step");
    assert!(purged.try_recv().is_err(), "one step does not finish it");
    // Segment 0 holds seq 1 to SEGMENT_ROWS - 1 (seq starts at 1).
    assert_eq!(rows_in(&path), i64::from(expired) + 10 - (SEGMENT_ROWS - 1));

    // An already expired token, committed while the purge is under way.
    let (ack, mut acked) = oneshot::channel();
    tx.send(Job::Commit(inserts(900_000..900_001, 5_000), relays.waiter(ack)))
        .unwrap();
    assert!(w.turn(&rx));
    assert!(
        matches!(acked.try_recv(), Ok(Ok(()))),
        "committed before the purge's next step"
    );
    assert!(purged.try_recv().is_err(), "the purge is still under way");

    let mut turns = 0;
    let deleted = loop {
        match purged.try_recv() {
            Ok(result) => break result.unwrap(),
            Err(_) => {
                assert!(w.turn(&rx));
                turns += 1;
                assert!(turns < 100, "the purge never ended");
            }
        }
    };
    assert_eq!(
        deleted,
        u64::from(expired) + 1,
        "the later steps took the row committed between them"
    );
    assert_eq!(rows_in(&path), 10, "the live rows stay");
}

#[test]
fn a_purge_gives_the_free_pages_back() {
    // The folder lives as long as `_dir`.
    let Setup {
        dir: _dir,
        mut w,
        tx,
        rx,
    } = Setup::new();
    tx.send(Job::Commit(
        inserts(0..20_000, 5_000),
        Relays::default().waiter(oneshot::channel().0),
    ))
    .unwrap();
    assert!(w.turn(&rx));
    let pages = |conn: &Connection| -> i64 { conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap() };
    let full = pages(&w.conn);

    let (reply, mut purged) = oneshot::channel();
    tx.send(Job::Purge(10_000, reply)).unwrap();
    while purged.try_recv().is_err() {
        assert!(w.turn(&rx));
    }
    assert_eq!(purge::free_pages(&w.conn).unwrap(), 0);
    assert!(pages(&w.conn) * 10 < full, "{} of {full} pages left", pages(&w.conn));
}

/// A database from before incremental vacuum is rebuilt once at open, and keeps its tokens.
#[tokio::test]
async fn an_older_database_is_made_shrinkable_and_keeps_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(crate::store::sqlite_sql::SCHEMA).unwrap();
        let ops = inserts(0..3, 99_000);
        let refs: Vec<&StoreOp> = ops.iter().collect();
        crate::store::sqlite_sql::apply(&conn, &refs, &mut crate::store::expiries::Expiries::default()).unwrap();
        let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, 0, "SQLite's default: the file never shrinks");
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.load_all(0).await.unwrap().access.len(), 3);
    let conn = Connection::open(&path).unwrap();
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, 2, "incremental");
}

#[test]
fn an_idle_store_cuts_its_wal_to_nothing() {
    let Setup { dir, mut w, tx, rx } = Setup::new();
    let path = dir.path().join("t.db");
    w.idle_after = Duration::from_millis(10);
    let (ack, mut acked) = oneshot::channel();
    tx.send(Job::Commit(inserts(0..1000, 99_000), Relays::default().waiter(ack)))
        .unwrap();
    assert!(w.turn(&rx));
    assert!(matches!(acked.try_recv(), Ok(Ok(()))));
    let wal = |p: &Path| std::fs::metadata(p.with_extension("db-wal")).unwrap().len();
    assert!(wal(&path) > 0);

    assert!(w.turn(&rx), "nothing comes: the store is idle");
    assert_eq!(wal(&path), 0);
    assert_eq!(rows_in(&path), 1000, "every row is in the database file");
}

/// Runs a purge of the rows expired at `now` to its end: (rows deleted, turns it took).
fn purge_all(w: &mut Writer, tx: &mpsc::Sender<Job>, rx: &mpsc::Receiver<Job>, now: u64) -> (u64, u32) {
    let (reply, mut purged) = oneshot::channel();
    tx.send(Job::Purge(now, reply)).unwrap();
    let mut turns = 0;
    loop {
        if let Ok(result) = purged.try_recv() {
            return (result.unwrap(), turns);
        }
        assert!(w.turn(rx));
        turns += 1;
        assert!(turns < 1000, "the purge never ended");
    }
}

/// Without an expiry index, expired rows are found through the writer's summary of each
/// segment's earliest expiry. Rows written before a restart are found by the first purge, which
/// visits every segment; later purges visit only the segments with something expired.
#[test]
fn purges_find_expired_rows_through_the_segments_summary() {
    let Setup { dir, mut w, tx, rx } = Setup::new();
    let path = dir.path().join("t.db");
    let commit = |tx: &mpsc::Sender<Job>, ops| {
        tx.send(Job::Commit(ops, Relays::default().waiter(oneshot::channel().0)))
            .unwrap()
    };
    let seg = SEGMENT_ROWS as u32;
    // Before the restart: three segments' worth, short- and long-lived rows interleaved.
    for n in 0..3 * seg {
        commit(&tx, inserts(n..n + 1, if n % 2 == 0 { 5_000 } else { 50_000 }));
    }
    while w.turn(&rx) && rows_in(&path) < i64::from(3 * seg) {}
    drop(w);
    let mut w = Writer::new(
        open_writer_connection(&path).unwrap(),
        Checkpoints::start(&path).unwrap(),
    );
    // After it: rows the new writer noted itself.
    commit(&tx, inserts(3 * seg..3 * seg + 10, 5_000));
    commit(&tx, inserts(3 * seg + 10..20 * seg, 99_000));
    assert!(w.turn(&rx));

    let (deleted, turns) = purge_all(&mut w, &tx, &rx, 10_000);
    assert_eq!(deleted, u64::from(3 * seg / 2 + 10), "every expired row, old and new");
    assert!(turns >= 20, "the first purge visits every segment ({turns} turns)");
    let (deleted, turns) = purge_all(&mut w, &tx, &rx, 10_000);
    assert_eq!(deleted, 0);
    assert!(turns <= 4, "nothing expired: no segment visited ({turns} turns)");

    // The old long-lived rows expire, and the new ones after them.
    let (deleted, _) = purge_all(&mut w, &tx, &rx, 60_000);
    assert_eq!(deleted, u64::from(3 * seg / 2));
    assert_eq!(rows_in(&path), i64::from(17 * seg - 10));
    let (deleted, _) = purge_all(&mut w, &tx, &rx, 100_000);
    assert_eq!(deleted, u64::from(17 * seg - 10));
    assert_eq!(rows_in(&path), 0);
}
