use super::*;
use crate::domain::ids::{TokenId, TokenState};
use crate::store::expiries::Expiries;
use crate::store::sqlite_sql::{apply, load, LOAD_CHUNK_ROWS, SCHEMA};
use crate::store::{AccessRow, RefreshRow};
use rusqlite::Connection;

fn row(id: u8, exp: u64) -> AccessRow {
    crate::store::test_row(TokenId([id; 32]), exp)
}

#[tokio::test]
async fn committed_rows_survive_reopen_and_purge_removes_dead_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.commit(vec![
            StoreOp::InsertAccess(row(1, 10_000)),
            StoreOp::InsertAccess(row(2, 10_000)),
            StoreOp::InsertAccess(row(3, 2_000)),
        ])
        .await
        .unwrap();
        s.commit(vec![StoreOp::SetAccessState {
            id: TokenId([2; 32]),
            state: TokenState::Revoked,
            expires_at_ms: 10_000,
        }])
        .await
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let snap = s.load_all(5_000).await.unwrap();
    let ids: Vec<u8> = snap.access.iter().map(|r| r.id.0[0]).collect();
    assert_eq!(ids, vec![1], "revoked and expired rows are not loaded");
    assert_eq!(snap.access[0], row(1, 10_000));
    assert_eq!(
        read_access_state(&path, &TokenId([2; 32])).unwrap(),
        Some(TokenState::Revoked)
    );
    // Only the expired token's row goes now; the revoked one goes with its expiry.
    assert_eq!(s.purge(5_000).await.unwrap(), 1);
    assert_eq!(read_access_state(&path, &TokenId([3; 32])).unwrap(), None);
    assert_eq!(
        read_access_state(&path, &TokenId([1; 32])).unwrap(),
        Some(TokenState::Active)
    );
    assert_eq!(
        s.purge(10_000).await.unwrap(),
        3,
        "two tokens and one state change expire at 10 s"
    );
    assert_eq!(read_access_state(&path, &TokenId([2; 32])).unwrap(), None);
}

#[tokio::test]
async fn concurrent_commits_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let s = std::sync::Arc::new(SqliteStore::open(&path).unwrap());
    let mut tasks = Vec::new();
    for i in 0..200u8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.commit(vec![StoreOp::InsertAccess(row(i, 10_000))]).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.load_all(0).await.unwrap().access.len(), 200);
}

#[tokio::test]
async fn refresh_rows_round_trip_and_spent_ones_load() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let r = RefreshRow {
        id: TokenId([7; 32]),
        client_id: "c".into(),
        subject: "alice".into(),
        scope: "a".into(),
        audience: "".into(),
        family: [9; 16],
        issued_at_ms: 1,
        expires_at_ms: 10_000,
        access_id: TokenId([8; 32]),
        state: TokenState::Active,
    };
    s.commit(vec![StoreOp::InsertRefresh(r.clone())]).await.unwrap();
    s.commit(vec![StoreOp::SetRefreshState {
        id: r.id,
        state: TokenState::Inactive,
        expires_at_ms: r.expires_at_ms,
    }])
    .await
    .unwrap();
    let snap = s.load_all(5).await.unwrap();
    assert_eq!(snap.refresh.len(), 1);
    assert_eq!(snap.refresh[0].state, TokenState::Inactive);
    assert_eq!(snap.refresh[0].family, [9; 16]);
}

#[test]
fn a_failed_batch_is_rolled_back_and_the_next_one_lands() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("t.db")).unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER boom BEFORE INSERT ON tokens WHEN NEW.client_id = 'boom'
         BEGIN SELECT RAISE(ABORT, 'boom'); END;",
    )
    .unwrap();
    let bad = AccessRow {
        client_id: "boom".into(),
        ..row(2, 10_000)
    };
    let (good, next) = (
        StoreOp::InsertAccess(row(1, 10_000)),
        StoreOp::InsertAccess(row(3, 10_000)),
    );
    assert!(apply(&conn, &[&good, &StoreOp::InsertAccess(bad)], &mut Expiries::default()).is_err());
    assert!(conn.is_autocommit(), "no transaction left open");
    apply(&conn, &[&next], &mut Expiries::default()).unwrap();
    let mut ids: Vec<u8> = Vec::new();
    load(&conn, 0, LOAD_CHUNK_ROWS, |chunk| {
        ids.extend(chunk.access.iter().map(|r| r.id.0[0]));
        true
    })
    .unwrap();
    assert_eq!(ids, vec![3], "nothing of the failed batch, all of the next");
}

/// A restart reads the store a chunk at a time, in issue order, and stops when nobody reads on.
#[test]
fn the_live_tokens_are_read_in_chunks_in_issue_order() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_writer_connection(&dir.path().join("t.db")).unwrap();
    let ops: Vec<StoreOp> = (1..=8u8)
        .map(|i| StoreOp::InsertAccess(row(i, if i == 4 { 10 } else { 10_000 })))
        .collect();
    apply(&conn, &ops.iter().collect::<Vec<_>>(), &mut Expiries::default()).unwrap();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    load(&conn, 100, 3, |chunk| {
        chunks.push(chunk.access.iter().map(|r| r.id.0[0]).collect());
        true
    })
    .unwrap();
    assert_eq!(
        chunks,
        vec![vec![1, 2, 3], vec![5, 6, 7], vec![8]],
        "the expired token 4 is left out"
    );

    let mut read = 0;
    load(&conn, 100, 3, |_| {
        read += 1;
        false
    })
    .unwrap();
    assert_eq!(read, 1, "no chunk after the reader has gone");
}

/// A store from before the segments summary loses its expiry indexes at open, keeps its rows,
/// and its expired rows are still purged.
#[tokio::test]
async fn the_old_expiry_indexes_are_dropped_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let conn = open_writer_connection(&path).unwrap();
        conn.execute_batch(
            "CREATE INDEX tokens_expiry ON tokens (expires_at_ms);
             CREATE INDEX state_changes_expiry ON state_changes (expires_at_ms);",
        )
        .unwrap();
        let ops = [
            StoreOp::InsertAccess(row(1, 2_000)),
            StoreOp::InsertAccess(row(2, 9_000)),
        ];
        apply(&conn, &ops.iter().collect::<Vec<_>>(), &mut Expiries::default()).unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let indexes: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'index'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(indexes, 0);
    assert_eq!(
        s.purge(5_000).await.unwrap(),
        1,
        "the expired row, found without the index"
    );
    assert_eq!(s.load_all(5_000).await.unwrap().access.len(), 1);
}

/// A store from before audiences gets the column at open; its tokens load with no audience.
#[tokio::test]
async fn a_store_from_before_audiences_keeps_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE tokens (
                seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, id BLOB NOT NULL, client_id TEXT NOT NULL,
                subject TEXT NOT NULL, scope TEXT NOT NULL, format TEXT NOT NULL, grant_type TEXT NOT NULL,
                issued_at_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL, family BLOB, link BLOB);
             INSERT INTO tokens (kind, id, client_id, subject, scope, format, grant_type, issued_at_ms,
                expires_at_ms) VALUES (0, zeroblob(32), 'c', '', 'a', 'opaque', 'client_credentials', 1, 9000);",
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let live = s.load_all(5_000).await.unwrap().access;
    assert_eq!(live.len(), 1);
    assert_eq!(&*live[0].audience, "");
    s.commit(vec![StoreOp::InsertAccess(row(2, 9_000))]).await.unwrap();
    let live = s.load_all(5_000).await.unwrap().access;
    assert_eq!(&*live[1].audience, "https://api.example", "new rows keep theirs");
}

#[tokio::test]
async fn conforms() {
    crate::store::conformance::run_all(|| {
        let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
        Box::new(move || -> std::sync::Arc<dyn TokenStore> {
            std::sync::Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap())
        })
    })
    .await;
}
