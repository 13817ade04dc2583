//! The PostgreSQL store as several nodes share it: turns serialise decisions for a key across
//! stores, the feed delivers every change to another store (none skipped, even one whose
//! transaction commits after later ones), and keys are checked against their fingerprints.

use std::sync::Mutex;

use super::*;
use crate::store::shared::{Change, KeyFingerprint, KeyName};

fn key() -> KeyName {
    KeyName {
        client_id: "c".into(),
        subject: "".into(),
        scope: "a b".into(),
        audience: "https://api.example".into(),
    }
}

fn revoke(id: [u8; 32]) -> StoreOp {
    StoreOp::SetAccessState {
        id: TokenId(id),
        state: TokenState::Revoked,
        expires_at_ms: u64::MAX / 2,
    }
}

fn long_row(id: [u8; 32]) -> StoreOp {
    StoreOp::InsertAccess(test_row(TokenId(id), u64::MAX / 2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_sees_what_another_store_decided_for_the_key() {
    let db = TestDb::create();
    let a = Arc::new(PostgresStore::open(&db.url, 2).unwrap());
    let b = Arc::new(PostgresStore::open(&db.url, 2).unwrap());
    for store in [&a, &b] {
        store.feed().unwrap().subscribe(Box::new(|_: &[Change]| {}));
        wait_caught_up(store).await;
    }
    // Each store inserts a token when the key has none: only the first to decide does.
    let decide = |store: Arc<PostgresStore>, id: u8| async move {
        let turn = store.turn(Some(&key())).await.unwrap();
        let live = turn.live.clone().unwrap();
        let ops = if live.access.is_empty() {
            vec![long_row([id; 32])]
        } else {
            Vec::new()
        };
        turn.submit(&*store, ops).await.unwrap();
        live.access.len()
    };
    let (x, y) = tokio::join!(decide(Arc::clone(&a), 1), decide(Arc::clone(&b), 2));
    assert_eq!(x + y, 1, "one of the two saw the other's token");
    let turn = a.turn(Some(&key())).await.unwrap();
    assert_eq!(
        turn.live.as_ref().unwrap().access.len(),
        1,
        "exactly one token for the key"
    );
}

async fn wait_caught_up(store: &PostgresStore) {
    let feed = store.feed().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while feed.caught_up_at_ms() == 0 {
        assert!(Instant::now() < deadline, "the feed never caught up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_skips_no_change_even_one_committed_late() {
    let db = TestDb::create();
    let writer = PostgresStore::open(&db.url, 4).unwrap();
    let reader = PostgresStore::open(&db.url, 2).unwrap();
    let seen: Arc<Mutex<Vec<[u8; 32]>>> = Arc::default();
    let sink = Arc::clone(&seen);
    reader.feed().unwrap().subscribe(Box::new(move |changes: &[Change]| {
        sink.lock().unwrap().extend(changes.iter().map(|c| c.id.0));
    }));
    wait_caught_up(&reader).await;
    // A transaction that takes its change's sequence number first and commits last.
    let mut late = connect(&db).await;
    let tx = late.transaction().await.unwrap();
    tx.execute(
        "INSERT INTO token_changes (id, kind, state, expires_at_ms) VALUES ($1, 0, 2, $2)",
        &[&&[0xEEu8; 32][..], &i64::MAX],
    )
    .await
    .unwrap();
    // Many writers meanwhile, each revoking tokens of its own.
    let mut expected = vec![[0xEE; 32]];
    let mut acks = Vec::new();
    for i in 0..40u8 {
        let id = [i; 32];
        expected.push(id);
        acks.push(writer.submit(vec![long_row(id), revoke(id)]));
    }
    for ack in acks {
        ack.await.unwrap();
    }
    // The later transactions reach the reader while the early one is still open.
    wait_until(&seen, &expected[1..]).await;
    assert!(!seen.lock().unwrap().contains(&[0xEE; 32]));
    tx.commit().await.unwrap();
    wait_until(&seen, &expected).await;
}

async fn wait_until(seen: &Mutex<Vec<[u8; 32]>>, ids: &[[u8; 32]]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let missing = {
            let seen = seen.lock().unwrap();
            ids.iter().filter(|id| !seen.contains(id)).count()
        };
        if missing == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{missing} changes never reached the feed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_node_whose_key_differs_is_refused_naming_the_key() {
    let db = TestDb::create();
    let store = PostgresStore::open(&db.url, 1).unwrap();
    let key = |fp: &str, previous: &[&str]| KeyFingerprint {
        name: "oauth.server_key",
        fingerprint: fp.into(),
        previous: previous.iter().map(|p| p.to_string()).collect(),
    };
    store.check_keys(&[key("one", &[])]).await.unwrap();
    store.check_keys(&[key("one", &[])]).await.unwrap();
    let e = store.check_keys(&[key("two", &[])]).await.unwrap_err().to_string();
    assert!(e.contains("oauth.server_key"), "{e}");
    // A rotation: the recorded key is listed as a previous one.
    store.check_keys(&[key("two", &["one"])]).await.unwrap();
    assert!(store.check_keys(&[key("one", &[])]).await.is_err());
}

#[tokio::test]
async fn the_key_hash_of_older_rows_is_the_one_nodes_lock_by() {
    let db = TestDb::create();
    drop(PostgresStore::open(&db.url, 1).unwrap());
    let client = connect(&db).await;
    for (c, s, sc) in [("c", "", "a b"), ("orders-app", "alice", "orders:read"), ("é", "ü", "")] {
        let row = client
            .query_one("SELECT tokengate_key_hash($1, $2, $3)", &[&c, &s, &sc])
            .await
            .unwrap();
        assert_eq!(
            row.get::<_, i64>(0),
            crate::store::shared::lock_id(c, s, sc, ""),
            "{c} {s} {sc}"
        );
    }
}

#[tokio::test]
async fn one_node_purges_at_a_time() {
    let db = TestDb::create();
    let store = PostgresStore::open(&db.url, 2).unwrap();
    store
        .commit(vec![StoreOp::InsertAccess(test_row(TokenId([1; 32]), 2_000))])
        .await
        .unwrap();
    // Another node purging holds the lock: this one skips the round.
    let other = connect(&db).await;
    other
        .execute(
            "SELECT pg_advisory_lock($1)",
            &[&crate::store::postgres_read::PURGE_LOCK],
        )
        .await
        .unwrap();
    assert_eq!(
        store.purge(5_000).await.unwrap(),
        0,
        "skipped while another node purges"
    );
    other
        .execute(
            "SELECT pg_advisory_unlock($1)",
            &[&crate::store::postgres_read::PURGE_LOCK],
        )
        .await
        .unwrap();
    assert_eq!(store.purge(5_000).await.unwrap(), 1, "purged once the other is done");
}
