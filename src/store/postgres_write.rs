//! The PostgreSQL store's writes: a group of submissions applied in one transaction, as one
//! multi-row statement per table over arrays (`unnest`), so a thousand tokens cost the same
//! round trips and one commit as one token. Every state change also leaves a row in
//! `token_changes`, in the same transaction, for the change feed (inserts need none: a node
//! learns of a new token when it is first used there).

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};

use super::postgres_sql::{ms, Failure, ACCESS, REFRESH};
use super::shared::lock_id;
use super::StoreOp;
use crate::domain::ids::TokenId;

const INSERT_ACCESS: &str = "INSERT INTO access_tokens (id, client_id, subject, scope, format, \
     grant_type, issued_at_ms, expires_at_ms, state, family, refresh_id, key_hash, audience)
     SELECT a, b, c, d, e, f, g, h, i, j, k, l, m FROM unnest($1::bytea[], $2::text[], $3::text[], \
     $4::text[], $5::text[], $6::text[], $7::int8[], $8::int8[], $9::int2[], $10::bytea[], \
     $11::bytea[], $12::int8[], $13::text[]) \
     WITH ORDINALITY AS u(a, b, c, d, e, f, g, h, i, j, k, l, m, n) ORDER BY n";
const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (id, client_id, subject, scope, family, \
     issued_at_ms, expires_at_ms, access_id, state, key_hash, audience)
     SELECT a, b, c, d, e, f, g, h, i, j, k FROM unnest($1::bytea[], $2::text[], $3::text[], \
     $4::text[], $5::bytea[], $6::int8[], $7::int8[], $8::bytea[], $9::int2[], $10::int8[], \
     $11::text[]) WITH ORDINALITY AS u(a, b, c, d, e, f, g, h, i, j, k, n) ORDER BY n";
const UPDATE_ACCESS: &str = "UPDATE access_tokens t SET state = u.state \
     FROM unnest($1::bytea[], $2::int2[]) AS u(id, state) WHERE t.id = u.id";
const UPDATE_REFRESH: &str = "UPDATE refresh_tokens t SET state = u.state \
     FROM unnest($1::bytea[], $2::int2[]) AS u(id, state) WHERE t.id = u.id";
const INSERT_CHANGES: &str = "INSERT INTO token_changes (id, kind, state, expires_at_ms)
     SELECT a, b, c, d FROM unnest($1::bytea[], $2::int2[], $3::int2[], $4::int8[]) \
     WITH ORDINALITY AS u(a, b, c, d, n) ORDER BY n";

/// The columns of one group, as arrays: one statement per table, whatever the number of rows.
#[derive(Default)]
struct Columns<'a> {
    access: AccessColumns<'a>,
    refresh: RefreshColumns<'a>,
    /// The latest state each token is set to in the group, by kind, in first-change order.
    states: [Vec<(&'a TokenId, i16)>; 2],
    changes: ChangeColumns<'a>,
}

/// The rows of `token_changes`, in submission order.
#[derive(Default)]
struct ChangeColumns<'a> {
    id: Vec<&'a [u8]>,
    kind: Vec<i16>,
    state: Vec<i16>,
    expires: Vec<i64>,
}

#[derive(Default)]
struct AccessColumns<'a> {
    id: Vec<&'a [u8]>,
    client_id: Vec<&'a str>,
    subject: Vec<&'a str>,
    scope: Vec<&'a str>,
    format: Vec<&'static str>,
    grant: Vec<&'static str>,
    issued: Vec<i64>,
    expires: Vec<i64>,
    state: Vec<i16>,
    family: Vec<Option<&'a [u8]>>,
    refresh_id: Vec<Option<&'a [u8]>>,
    key_hash: Vec<i64>,
    audience: Vec<&'a str>,
}

#[derive(Default)]
struct RefreshColumns<'a> {
    id: Vec<&'a [u8]>,
    client_id: Vec<&'a str>,
    subject: Vec<&'a str>,
    scope: Vec<&'a str>,
    family: Vec<&'a [u8]>,
    issued: Vec<i64>,
    expires: Vec<i64>,
    access_id: Vec<&'a [u8]>,
    state: Vec<i16>,
    key_hash: Vec<i64>,
    audience: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn of(ops: &[&'a StoreOp]) -> Columns<'a> {
        let mut c = Columns::default();
        let mut seen: [HashMap<&TokenId, usize>; 2] = Default::default();
        for op in ops {
            let (kind, id, state, expires) = match op {
                StoreOp::InsertAccess(r) => {
                    let a = &mut c.access;
                    a.id.push(&r.id.0);
                    a.client_id.push(&r.client_id);
                    a.subject.push(r.subject.as_str());
                    a.scope.push(&r.scope);
                    a.format.push(r.format.as_str());
                    a.grant.push(r.grant.as_str());
                    a.issued.push(ms(r.issued_at_ms));
                    a.expires.push(ms(r.expires_at_ms));
                    a.state.push(r.state as i16);
                    a.family.push(r.family.as_ref().map(|f| &f[..]));
                    a.refresh_id.push(r.refresh_id.as_ref().map(|i| &i.0[..]));
                    a.key_hash
                        .push(lock_id(&r.client_id, &r.subject, &r.scope, &r.audience));
                    a.audience.push(&r.audience);
                    (ACCESS, &r.id, r.state, r.expires_at_ms)
                }
                StoreOp::InsertRefresh(r) => {
                    let f = &mut c.refresh;
                    f.id.push(&r.id.0);
                    f.client_id.push(&r.client_id);
                    f.subject.push(r.subject.as_str());
                    f.scope.push(&r.scope);
                    f.family.push(&r.family);
                    f.issued.push(ms(r.issued_at_ms));
                    f.expires.push(ms(r.expires_at_ms));
                    f.access_id.push(&r.access_id.0);
                    f.state.push(r.state as i16);
                    f.key_hash
                        .push(lock_id(&r.client_id, &r.subject, &r.scope, &r.audience));
                    f.audience.push(&r.audience);
                    (REFRESH, &r.id, r.state, r.expires_at_ms)
                }
                StoreOp::SetAccessState {
                    id,
                    state,
                    expires_at_ms,
                } => (ACCESS, id, *state, *expires_at_ms),
                StoreOp::SetRefreshState {
                    id,
                    state,
                    expires_at_ms,
                } => (REFRESH, id, *state, *expires_at_ms),
            };
            if matches!(op, StoreOp::SetAccessState { .. } | StoreOp::SetRefreshState { .. }) {
                // One UPDATE row per token: a later change in the group wins.
                let k = kind as usize;
                match seen[k].get(id) {
                    Some(&i) => c.states[k][i].1 = state as i16,
                    None => {
                        seen[k].insert(id, c.states[k].len());
                        c.states[k].push((id, state as i16));
                    }
                }
                c.changes.id.push(&id.0);
                c.changes.kind.push(kind);
                c.changes.state.push(state as i16);
                c.changes.expires.push(ms(expires));
            }
        }
        c
    }
}

/// Longest a group's transaction may take, its connection included: past it the database is
/// taken for gone (statements are cancelled by the server sooner; a cut network answers never).
pub const GROUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies `ops` in one transaction: inserts, then state changes, then their records in
/// `token_changes`, each a single statement over arrays.
pub async fn apply(pool: &Pool, ops: &[&StoreOp]) -> Result<(), Failure> {
    match tokio::time::timeout(GROUP_TIMEOUT, apply_now(pool, ops)).await {
        Ok(result) => result,
        Err(_) => Err(Failure::Unavailable("the database did not answer in time".into())),
    }
}

async fn apply_now(pool: &Pool, ops: &[&StoreOp]) -> Result<(), Failure> {
    let mut client = pool.get().await?;
    if ops.iter().all(|op| matches!(op, StoreOp::InsertAccess(_))) {
        // One statement, atomic by itself: no BEGIN and COMMIT round trips (multi-mode issuance
        // writes nothing else).
        return write(&client, ops).await;
    }
    let tx = client.transaction().await?;
    write(&tx, ops).await?;
    tx.commit().await?;
    Ok(())
}

/// The channel whose notification tells the other nodes to pull the feed.
pub const CHANNEL: &str = "tokengate_changes";

/// Writes `ops` through `tx` (a transaction, unless they are one statement): inserts, then
/// state changes, then their records in `token_changes` (state changes only); rings the feed's
/// doorbell (delivered at commit) when a token changed state.
pub async fn write(tx: &impl GenericClient, ops: &[&StoreOp]) -> Result<(), Failure> {
    if ops.is_empty() {
        return Ok(());
    }
    let c = Columns::of(ops);
    let a = &c.access;
    if !a.id.is_empty() {
        let stmt = tx.prepare_cached(INSERT_ACCESS).await?;
        tx.execute(
            &stmt,
            &[
                &a.id,
                &a.client_id,
                &a.subject,
                &a.scope,
                &a.format,
                &a.grant,
                &a.issued,
                &a.expires,
                &a.state,
                &a.family,
                &a.refresh_id,
                &a.key_hash,
                &a.audience,
            ],
        )
        .await?;
    }
    let r = &c.refresh;
    if !r.id.is_empty() {
        let stmt = tx.prepare_cached(INSERT_REFRESH).await?;
        tx.execute(
            &stmt,
            &[
                &r.id,
                &r.client_id,
                &r.subject,
                &r.scope,
                &r.family,
                &r.issued,
                &r.expires,
                &r.access_id,
                &r.state,
                &r.key_hash,
                &r.audience,
            ],
        )
        .await?;
    }
    for (states, update) in c.states.iter().zip([UPDATE_ACCESS, UPDATE_REFRESH]) {
        if states.is_empty() {
            continue;
        }
        let ids: Vec<&[u8]> = states.iter().map(|(id, _)| &id.0[..]).collect();
        let values: Vec<i16> = states.iter().map(|(_, s)| *s).collect();
        let stmt = tx.prepare_cached(update).await?;
        tx.execute(&stmt, &[&ids, &values]).await?;
    }
    let ch = &c.changes;
    if !ch.id.is_empty() {
        let stmt = tx.prepare_cached(INSERT_CHANGES).await?;
        tx.execute(&stmt, &[&ch.id, &ch.kind, &ch.state, &ch.expires]).await?;
        tx.batch_execute(&format!("NOTIFY {CHANNEL}")).await?;
    }
    Ok(())
}
