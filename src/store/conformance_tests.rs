//! The contract of [`TokenStore`], as tests every backend must pass (`conforms` in each backend's
//! tests calls [`run_all`]). A backend is given as a function that makes fresh, empty storage and
//! returns its opener: opening again after the store was dropped must find what was committed.

use std::sync::Arc;

use super::{test_row, AccessRow, RefreshRow, StoreOp, TokenStore};
use crate::domain::ids::{TokenId, TokenState};

/// Opens a store on one piece of storage; called again, opens the same storage anew.
pub type Opener = Box<dyn Fn() -> Arc<dyn TokenStore> + Send + Sync>;

fn row(id: u8, expires_at_ms: u64) -> AccessRow {
    test_row(TokenId([id; 32]), expires_at_ms)
}

fn refresh_row(id: u8, expires_at_ms: u64) -> RefreshRow {
    RefreshRow {
        id: TokenId([id; 32]),
        client_id: "c".into(),
        subject: "alice".into(),
        scope: "a".into(),
        audience: "https://api.example https://orders.example".into(),
        family: [9; 16],
        issued_at_ms: 1,
        expires_at_ms,
        access_id: TokenId([id.wrapping_add(100); 32]),
        state: TokenState::Active,
    }
}

fn revoke(id: u8, expires_at_ms: u64) -> StoreOp {
    StoreOp::SetAccessState {
        id: TokenId([id; 32]),
        state: TokenState::Revoked,
        expires_at_ms,
    }
}

fn ids(rows: &[AccessRow]) -> Vec<u8> {
    rows.iter().map(|r| r.id.0[0]).collect()
}

/// Runs every test of the contract, each on fresh storage from `fresh`.
pub async fn run_all(fresh: impl Fn() -> Opener) {
    committed_rows_survive_a_reopen(fresh()).await;
    only_live_tokens_are_loaded_in_issue_order(fresh()).await;
    refresh_rows_round_trip_and_spent_ones_load(fresh()).await;
    concurrent_submissions_all_land(fresh()).await;
    an_empty_submission_is_a_barrier(fresh()).await;
    purge_removes_only_what_can_never_be_valid_again(fresh()).await;
}

async fn committed_rows_survive_a_reopen(open: Opener) {
    {
        let s = open();
        s.commit(vec![StoreOp::InsertAccess(row(1, 10_000))]).await.unwrap();
        s.commit(vec![StoreOp::InsertAccess(row(2, 10_000)), revoke(1, 10_000)])
            .await
            .unwrap();
    }
    let s = open();
    let snap = s.load_all(5_000).await.unwrap();
    assert_eq!(ids(&snap.access), [2], "the revocation survived with the tokens");
    assert_eq!(snap.access[0], row(2, 10_000), "every field round-trips");
}

async fn only_live_tokens_are_loaded_in_issue_order(open: Opener) {
    let s = open();
    let batch: Vec<StoreOp> = [5u8, 3, 9, 1, 7]
        .iter()
        .map(|&i| StoreOp::InsertAccess(row(i, if i == 9 { 2_000 } else { 10_000 })))
        .collect();
    s.commit(batch).await.unwrap();
    s.commit(vec![revoke(3, 10_000)]).await.unwrap();
    let snap = s.load_all(5_000).await.unwrap();
    assert_eq!(ids(&snap.access), [5, 1, 7], "revoked and expired ones are left out");
}

async fn refresh_rows_round_trip_and_spent_ones_load(open: Opener) {
    let s = open();
    let (spent, revoked) = (refresh_row(7, 10_000), refresh_row(8, 10_000));
    s.commit(vec![
        StoreOp::InsertRefresh(spent.clone()),
        StoreOp::InsertRefresh(revoked.clone()),
    ])
    .await
    .unwrap();
    s.commit(vec![
        StoreOp::SetRefreshState {
            id: spent.id,
            state: TokenState::Inactive,
            expires_at_ms: spent.expires_at_ms,
        },
        StoreOp::SetRefreshState {
            id: revoked.id,
            state: TokenState::Revoked,
            expires_at_ms: revoked.expires_at_ms,
        },
    ])
    .await
    .unwrap();
    drop(s);
    let snap = open().load_all(5).await.unwrap();
    assert_eq!(
        snap.refresh.len(),
        1,
        "a spent refresh token loads (to detect its reuse)"
    );
    assert_eq!(
        snap.refresh[0],
        RefreshRow {
            state: TokenState::Inactive,
            ..spent
        }
    );
}

async fn concurrent_submissions_all_land(open: Opener) {
    let s = open();
    let acks: Vec<_> = (0..200u8)
        .map(|i| s.submit(vec![StoreOp::InsertAccess(row(i, 10_000))]))
        .collect();
    for ack in acks {
        ack.await.unwrap();
    }
    assert_eq!(s.load_all(0).await.unwrap().access.len(), 200);
}

async fn an_empty_submission_is_a_barrier(open: Opener) {
    let s = open();
    let first = s.submit(vec![StoreOp::InsertAccess(row(1, 10_000))]);
    s.submit(Vec::new()).await.unwrap();
    drop(s);
    assert_eq!(ids(&open().load_all(0).await.unwrap().access), [1]);
    first.await.unwrap();
}

async fn purge_removes_only_what_can_never_be_valid_again(open: Opener) {
    let s = open();
    s.commit(vec![
        StoreOp::InsertAccess(row(1, 10_000)),
        StoreOp::InsertAccess(row(2, 2_000)),
        StoreOp::InsertRefresh(refresh_row(3, 2_000)),
    ])
    .await
    .unwrap();
    assert!(
        s.purge(5_000).await.unwrap() >= 2,
        "the expired access and refresh rows"
    );
    assert_eq!(s.purge(5_000).await.unwrap(), 0, "nothing more to purge");
    let snap = s.load_all(0).await.unwrap();
    assert_eq!(ids(&snap.access), [1], "the live token stays");
    assert!(snap.refresh.is_empty());
}
