//! Tests of the PostgreSQL store against a real server: `TOKENGATE_TEST_PG` (a url), else the
//! local one scripts/test.sh provides. Each test works in a database of its own, dropped after.
//! A server that cannot be reached fails the test; it is never skipped.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::domain::ids::{TokenId, TokenState};
use crate::store::{test_row, StoreOp, TokenStore};

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/test";

fn server_url() -> String {
    std::env::var("TOKENGATE_TEST_PG").unwrap_or_else(|_| DEFAULT_SERVER.into())
}

/// `url` naming the database `db` instead of its own.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let host_at = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[host_at..].find('/').map_or(base.len(), |i| host_at + i);
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{}/{db}{query}", &base[..host_end])
}

/// Runs `sql` on the test server, from a thread and runtime of its own (so it can run from
/// `Drop` and from inside a test's runtime alike).
fn admin(sql: String) {
    let url = server_url();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut config = tokio_postgres::Config::from_str(&url).unwrap();
            config.connect_timeout(Duration::from_secs(5));
            let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap_or_else(|e| {
                panic!(
                    "cannot reach the test PostgreSQL at {} ({e}); run scripts/test.sh, which \
                     starts one, or set TOKENGATE_TEST_PG to a server's url",
                    describe(&url)
                )
            });
            tokio::spawn(conn);
            client.batch_execute(&sql).await.unwrap();
        })
    })
    .join()
    .unwrap();
}

/// A database of its own, dropped with this value.
struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    fn create() -> TestDb {
        let name = format!("tokengate_test_{:016x}", rand::random::<u64>());
        admin(format!("CREATE DATABASE {name}"));
        TestDb {
            url: with_database(&server_url(), &name),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        admin(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

#[path = "postgres_cluster_tests.rs"]
mod cluster;

fn row(id: u8) -> StoreOp {
    StoreOp::InsertAccess(test_row(TokenId([id; 32]), 10_000))
}

/// A client of `db`, driven on the current runtime.
async fn connect(db: &TestDb) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms() {
    crate::store::conformance::run_all(|| {
        let db = Arc::new(TestDb::create());
        Box::new(move || -> Arc<dyn TokenStore> { Arc::new(PostgresStore::open(&db.url, 4).unwrap()) })
    })
    .await;
}

#[tokio::test]
async fn the_schema_is_versioned_and_every_state_change_is_recorded() {
    let db = TestDb::create();
    let store = PostgresStore::open(&db.url, 2).unwrap();
    store
        .commit(vec![
            row(1),
            row(2),
            StoreOp::SetAccessState {
                id: TokenId([1; 32]),
                state: TokenState::Revoked,
                expires_at_ms: 10_000,
            },
        ])
        .await
        .unwrap();
    drop(store);
    // Opening again migrates nothing more.
    drop(PostgresStore::open(&db.url, 2).unwrap());
    let client = connect(&db).await;
    let version: i32 = client
        .query_one("SELECT version FROM tokengate_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 3);
    let changes: Vec<(Vec<u8>, i16)> = client
        .query("SELECT id, state FROM token_changes ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        changes,
        [(vec![1; 32], TokenState::Revoked as i16)],
        "a state change leaves a record; an insert none (the feed carries state changes only)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_share_transactions() {
    let db = TestDb::create();
    let store = PostgresStore::open(&db.url, 2).unwrap();
    let acks: Vec<_> = (0..200u8).map(|i| store.submit(vec![row(i)])).collect();
    for ack in acks {
        ack.await.unwrap();
    }
    let client = connect(&db).await;
    let transactions: i64 = client
        .query_one("SELECT count(DISTINCT xmin::text) FROM access_tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert!(transactions < 50, "200 submissions took {transactions} transactions");
}

#[tokio::test]
async fn one_bad_submission_fails_alone() {
    let db = TestDb::create();
    let store = PostgresStore::open(&db.url, 2).unwrap();
    store.commit(vec![row(1)]).await.unwrap();
    let duplicate = store.submit(vec![row(1)]);
    let fine = store.submit(vec![row(2)]);
    assert!(duplicate.await.is_err(), "a token id is stored once");
    fine.await.unwrap();
    assert_eq!(store.load_all(0).await.unwrap().access.len(), 2);
}

#[tokio::test]
async fn an_unreachable_database_fails_fast_without_its_password() {
    let started = Instant::now();
    let Err(e) = PostgresStore::open("postgres://someone:hunter2secret@127.0.0.1:9/nowhere", 1) else {
        panic!("opened a store on a port nothing listens on");
    };
    assert!(started.elapsed() < Duration::from_secs(10));
    let message = e.to_string();
    assert!(!message.contains("hunter2secret"), "{message}");
    assert!(message.contains("127.0.0.1:9/nowhere"), "{message}");
    assert_eq!(
        describe("postgres://someone:hunter2secret@db.example:6543/tokens?sslmode=disable"),
        "postgresql://db.example:6543/tokens"
    );
}

#[tokio::test]
async fn a_write_the_database_cannot_take_fails_within_the_statement_timeout() {
    let db = TestDb::create();
    let store = PostgresStore::open(&db.url, 2).unwrap();
    let mut blocker = connect(&db).await;
    let tx = blocker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE access_tokens IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(15), store.commit(vec![row(1)]))
        .await
        .expect("a blocked write never hangs");
    assert!(result.is_err(), "the write gave up");
    assert!(started.elapsed() < Duration::from_secs(10));
    tx.rollback().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_load_comes_in_chunks_in_issue_order() {
    let db = TestDb::create();
    let store = PostgresStore::open(&db.url, 2).unwrap();
    let id = |i: u32| {
        let mut id = [7u8; 32];
        id[..4].copy_from_slice(&i.to_be_bytes());
        TokenId(id)
    };
    let ops = (0..70_000u32)
        .map(|i| StoreOp::InsertAccess(test_row(id(i), 10_000)))
        .collect();
    store.commit(ops).await.unwrap();
    let (mut chunks, mut next) = (0, 0u32);
    store
        .load(0, &mut |chunk: crate::store::Snapshot| {
            chunks += 1;
            for row in chunk.access {
                assert_eq!(row.id, id(next), "issue order");
                next += 1;
            }
        })
        .await
        .unwrap();
    assert_eq!(next, 70_000);
    assert_eq!(chunks, 2, "65,536 rows a chunk");
}

#[tokio::test]
async fn a_purge_takes_the_change_records_of_expired_tokens_too() {
    let db = TestDb::create();
    let store = PostgresStore::open(&db.url, 2).unwrap();
    let short = StoreOp::InsertAccess(test_row(TokenId([1; 32]), 2_000));
    let revoked = |id: u8, expires_at_ms: u64| StoreOp::SetAccessState {
        id: TokenId([id; 32]),
        state: TokenState::Revoked,
        expires_at_ms,
    };
    store
        .commit(vec![short, row(2), revoked(1, 2_000), revoked(2, 10_000)])
        .await
        .unwrap();
    assert_eq!(store.purge(5_000).await.unwrap(), 2, "the token and its record");
    let client = connect(&db).await;
    let left: Vec<Vec<u8>> = client
        .query("SELECT id FROM token_changes", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, [vec![2; 32]]);
}
