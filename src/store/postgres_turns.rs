//! Decisions of several nodes serialised in the database (cluster mode). A group of turns runs
//! in one transaction: it takes a transaction-scoped advisory lock per key (in ascending lock
//! number, so two nodes never wait on each other in a cycle), reads the keys' live rows, hands
//! each requester its key's rows, gathers the changes each decided, writes them with the
//! group's plain submissions, and commits. Only then are the acks given, so an answer is sent
//! after its truth is in the database, and no other node decides for a key in between.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use compact_str::CompactString;
use deadpool_postgres::{Pool, Transaction};
use tokio::sync::oneshot;

use super::ack::{AckResult, Waiter};
use super::postgres_read::snapshot_of;
use super::postgres_sql::{ms, Failure};
use super::postgres_write::{write, GROUP_TIMEOUT};
use super::shared::{KeyName, KeyRows};
use super::{StoreError, StoreOp};

/// How long a requester may take to decide once it has its turn (it only takes an in-memory
/// lock): past it, its changes are left out and its ack fails.
const DECIDE_TIMEOUT: Duration = Duration::from_secs(2);

/// A group's acks, and whether the database could not be reached.
pub type Done = (Vec<(Waiter, AckResult)>, bool);

/// A key's rows and where the requester's changes go.
pub type Granted = (KeyRows, oneshot::Sender<Vec<StoreOp>>);

/// One requester waiting for its turn.
pub struct TurnJob {
    pub key: KeyName,
    pub reply: oneshot::Sender<Result<Granted, StoreError>>,
    pub waiter: Waiter,
}

const LOCK_KEYS: &str = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::int8[]) AS k";

/// The live rows of the keys whose lock numbers are `$1` (a row of another key with the same
/// number is read too, and left out by its name), in the layout [`push_row`] reads.
const LIVE_ROWS: &str = "SELECT t.seq, 0::int2, t.id, t.client_id, t.subject, t.scope, t.format, \
     t.grant_type, t.issued_at_ms, t.expires_at_ms, t.state, t.family, t.refresh_id, t.audience
     FROM access_tokens t WHERE t.key_hash = ANY($1::int8[]) AND t.state = 0 AND t.expires_at_ms > $2
   UNION ALL
     SELECT t.seq, 1::int2, t.id, t.client_id, t.subject, t.scope, 'refresh', 'refresh_token', \
     t.issued_at_ms, t.expires_at_ms, t.state, t.family, t.access_id, t.audience
     FROM refresh_tokens t WHERE t.key_hash = ANY($1::int8[]) AND t.state IN (0, 3) \
       AND t.expires_at_ms > $2
   ORDER BY 1";

/// Runs `turns` and the plain submissions `commits` in one transaction; returns their acks and
/// whether the database could not be reached.
pub async fn run_group(pool: &Pool, commits: Vec<(Vec<StoreOp>, Waiter)>, turns: Vec<TurnJob>, now: u64) -> Done {
    let mut group = Group {
        ops: Vec::new(),
        waiters: Vec::new(),
        late: Vec::new(),
    };
    for (ops, waiter) in commits {
        group.ops.extend(ops);
        group.waiters.push(waiter);
    }
    let result = match tokio::time::timeout(GROUP_TIMEOUT, group.run(pool, turns, now)).await {
        Ok(result) => result.map_err(StoreError::from),
        Err(_) => Err(StoreError::Unavailable("the database did not answer in time".into())),
    };
    let lost = matches!(result, Err(StoreError::Unavailable(_)));
    let failed = || StoreError::Unavailable("a decision took too long".into());
    let mut done: Vec<_> = group.late.into_iter().map(|w| (w, Err(failed()))).collect();
    match result {
        Ok(()) => done.extend(group.waiters.into_iter().map(|w| (w, Ok(())))),
        Err(e) => {
            let message = e.to_string();
            let again = |m: &str| match e {
                StoreError::Db(_) => StoreError::Db(m.to_string()),
                _ => StoreError::Unavailable(m.to_string()),
            };
            done.extend(group.waiters.into_iter().map(|w| (w, Err(again(&message)))));
        }
    }
    (done, lost)
}

struct Group {
    ops: Vec<StoreOp>,
    /// Acked with the commit's outcome.
    waiters: Vec<Waiter>,
    /// Requesters that did not hand in their changes in time: failed whatever the commit does.
    late: Vec<Waiter>,
}

impl Group {
    async fn run(&mut self, pool: &Pool, turns: Vec<TurnJob>, now: u64) -> Result<(), Failure> {
        // A requester still waiting for its turn when this fails is told by its dropped reply.
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        let keys = lock_keys(&tx, &turns).await?;
        let mut live = live_rows(&tx, &keys, now).await?;
        // Each waiter joins the group as its turn is handed out, so a failure from here on
        // fails it with the database's reason.
        let mut handed = Vec::with_capacity(turns.len());
        for turn in turns {
            let (changes_tx, changes_rx) = oneshot::channel();
            let rows = live.get(&turn.key).cloned().unwrap_or_default();
            let delivered = turn.reply.send(Ok((rows, changes_tx))).is_ok();
            self.waiters.push(turn.waiter);
            if delivered {
                handed.push((changes_rx, self.waiters.len() - 1));
            }
        }
        live.clear();
        let deadline = tokio::time::Instant::now() + DECIDE_TIMEOUT;
        let mut late = Vec::new();
        for (changes, at) in handed {
            match tokio::time::timeout_at(deadline, changes).await {
                Ok(Ok(ops)) => self.ops.extend(ops),
                // A turn dropped without changes (or a requester gone) decides nothing.
                Ok(Err(_)) => {}
                Err(_) => late.push(at),
            }
        }
        for at in late.into_iter().rev() {
            self.late.push(self.waiters.swap_remove(at));
        }
        let refs: Vec<&StoreOp> = self.ops.iter().collect();
        write(&tx, &refs).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Locks the turns' keys in ascending lock number; returns the distinct keys.
async fn lock_keys(tx: &Transaction<'_>, turns: &[TurnJob]) -> Result<Vec<KeyName>, Failure> {
    let mut keys: Vec<(i64, &KeyName)> = turns.iter().map(|t| (t.key.lock_id(), &t.key)).collect();
    keys.sort_by_key(|(id, _)| *id);
    keys.dedup_by(|a, b| a.1 == b.1);
    let mut ids: Vec<i64> = keys.iter().map(|(id, _)| *id).collect();
    ids.dedup();
    let stmt = tx.prepare_cached(LOCK_KEYS).await?;
    tx.query(&stmt, &[&ids]).await?;
    Ok(keys.into_iter().map(|(_, k)| k.clone()).collect())
}

/// The live rows of `keys`, by key.
async fn live_rows(tx: &Transaction<'_>, keys: &[KeyName], now: u64) -> Result<HashMap<KeyName, KeyRows>, Failure> {
    let mut ids: Vec<i64> = keys.iter().map(KeyName::lock_id).collect();
    ids.dedup();
    let stmt = tx.prepare_cached(LIVE_ROWS).await?;
    let rows = tx.query(&stmt, &[&ids, &ms(now)]).await?;
    let snap = snapshot_of(&rows);
    let mut by_key: HashMap<KeyName, KeyRows> = HashMap::new();
    let name = |client_id: &Arc<str>, subject: &CompactString, scope: &Arc<str>, audience: &Arc<str>| KeyName {
        client_id: client_id.clone(),
        subject: subject.clone(),
        scope: scope.clone(),
        audience: audience.clone(),
    };
    for a in snap.access {
        by_key
            .entry(name(&a.client_id, &a.subject, &a.scope, &a.audience))
            .or_default()
            .access
            .push(a);
    }
    for r in snap.refresh {
        by_key
            .entry(name(&r.client_id, &r.subject, &r.scope, &r.audience))
            .or_default()
            .refresh
            .push(r);
    }
    Ok(by_key)
}
