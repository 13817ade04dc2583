//! The PostgreSQL store's schema (versioned, migrated at open), and the
//! errors and conversions its writes ([`super::postgres_write`]) and reads
//! ([`super::postgres_read`]) share. Knows nothing of tasks or acks.

use std::time::Duration;

use deadpool_postgres::PoolError;

use super::shared::KeyFingerprint;
use super::StoreError;

/// The schema, one migration per version, oldest first: version `n` is the first `n` applied.
/// A migration is never edited once released; a change is a new one at the end.
///
/// Tokens are stored by id (a digest, never token text) with their latest state. Access and
/// refresh tokens share one sequence, so the live tokens are read back in issue order.
/// `token_changes` records every state change (and, before version 2, every insert), in the
/// transaction that makes it, with that transaction's id (`xid`): the change feed reads them in
/// `xid` order ([`super::postgres_feed`]). Version 2 added `xid`, each token's `key_hash` (its
/// key's lock number, which a decision reads the key's live tokens by), and the fingerprints of
/// the keys every node must share. Version 3 added each token's audience set (empty for the
/// tokens stored before: their `key_hash` stays right, as the audience counts only when set).
const MIGRATIONS: &[&str] = &[
    "
CREATE SEQUENCE token_seq;
CREATE TABLE access_tokens (
    seq bigint PRIMARY KEY DEFAULT nextval('token_seq'), id bytea NOT NULL UNIQUE,
    client_id text NOT NULL, subject text NOT NULL, scope text NOT NULL, format text NOT NULL,
    grant_type text NOT NULL, issued_at_ms bigint NOT NULL, expires_at_ms bigint NOT NULL,
    state smallint NOT NULL, family bytea, refresh_id bytea
);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at_ms);
CREATE TABLE refresh_tokens (
    seq bigint PRIMARY KEY DEFAULT nextval('token_seq'), id bytea NOT NULL UNIQUE,
    client_id text NOT NULL, subject text NOT NULL, scope text NOT NULL, family bytea NOT NULL,
    issued_at_ms bigint NOT NULL, expires_at_ms bigint NOT NULL, access_id bytea NOT NULL,
    state smallint NOT NULL
);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at_ms);
CREATE TABLE token_changes (
    seq bigserial PRIMARY KEY, id bytea NOT NULL, kind smallint NOT NULL,
    state smallint NOT NULL, expires_at_ms bigint NOT NULL
);
CREATE INDEX token_changes_expiry ON token_changes (expires_at_ms);
",
    "
ALTER TABLE token_changes ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX token_changes_feed ON token_changes (xid, seq);
ALTER TABLE access_tokens ADD COLUMN key_hash bigint;
ALTER TABLE refresh_tokens ADD COLUMN key_hash bigint;
UPDATE access_tokens SET key_hash = tokengate_key_hash(client_id, subject, scope);
UPDATE refresh_tokens SET key_hash = tokengate_key_hash(client_id, subject, scope);
CREATE INDEX access_tokens_key ON access_tokens (key_hash) WHERE state = 0;
CREATE INDEX refresh_tokens_key ON refresh_tokens (key_hash) WHERE state IN (0, 3);
CREATE TABLE tokengate_keys (name text PRIMARY KEY, fingerprint text NOT NULL);
",
    "
ALTER TABLE access_tokens ADD COLUMN audience text NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN audience text NOT NULL DEFAULT '';
",
];

/// `tokengate_key_hash(client_id, subject, scope)`: [`super::shared::lock_id`] in SQL (the
/// first 8 bytes of a SHA-256 over the length-prefixed parts), for rows written before the
/// column existed. Created before the migrations run.
const KEY_HASH_FUNCTION: &str = "CREATE OR REPLACE FUNCTION tokengate_key_hash(c text, s text, sc text)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT ('x' || encode(substring(sha256(
    int8send(octet_length(c)::int8) || convert_to(c, 'UTF8') ||
    int8send(octet_length(s)::int8) || convert_to(s, 'UTF8') ||
    int8send(octet_length(sc)::int8) || convert_to(sc, 'UTF8')) FROM 1 FOR 8), 'hex'))::bit(64)::bigint
$$";

/// Longest wait for one statement's answer. The server cancels a statement at its
/// `statement_timeout` (4 s); this bounds a server that went silent (a cut network sends no
/// answer at all).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// `kind` values in `token_changes` and in the rows of a load.
pub const ACCESS: i16 = 0;
pub const REFRESH: i16 = 1;

/// Why a transaction failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The database refused it (a constraint, bad data): other work may still succeed.
    #[error("{0}")]
    Rejected(String),
    /// The database could not be reached, or did not answer in time.
    #[error("{0}")]
    Unavailable(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        match e.as_db_error() {
            // A cancelled statement (the timeout) says the database is slow, not the data bad.
            Some(db) if db.code() != &tokio_postgres::error::SqlState::QUERY_CANCELED => {
                Failure::Rejected(db.to_string())
            }
            _ => Failure::Unavailable(chain(&e)),
        }
    }
}

impl From<PoolError> for Failure {
    fn from(e: PoolError) -> Failure {
        Failure::Unavailable(chain(&e))
    }
}

impl From<Failure> for StoreError {
    fn from(e: Failure) -> StoreError {
        match e {
            Failure::Rejected(m) => StoreError::Db(m),
            Failure::Unavailable(m) => StoreError::Unavailable(m),
        }
    }
}

pub fn db_err(e: tokio_postgres::Error) -> StoreError {
    Failure::from(e).into()
}

/// `query`'s answer, or an error once [`ANSWER_TIMEOUT`] has passed without one.
pub async fn answered<T>(
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(ANSWER_TIMEOUT, query).await {
        Ok(answer) => answer.map_err(db_err),
        Err(_) => Err(StoreError::Unavailable("the database did not answer in time".into())),
    }
}

/// `e` and its causes, joined: the driver's own message alone ("error connecting to server")
/// leaves out why. None of them quotes the url.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

/// Brings the schema to the latest version, in one transaction.
pub async fn migrate(client: &mut deadpool_postgres::Client) -> Result<(), StoreError> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS tokengate_schema (version integer NOT NULL)")
        .await
        .map_err(db_err)?;
    let tx = client.transaction().await.map_err(db_err)?;
    tx.batch_execute("LOCK TABLE tokengate_schema IN EXCLUSIVE MODE")
        .await
        .map_err(db_err)?;
    let row = tx
        .query_opt("SELECT version FROM tokengate_schema", &[])
        .await
        .map_err(db_err)?;
    let version = match row {
        Some(row) => usize::try_from(row.get::<_, i32>(0)).unwrap_or(0),
        None => {
            tx.execute("INSERT INTO tokengate_schema (version) VALUES (0)", &[])
                .await
                .map_err(db_err)?;
            0
        }
    };
    if version > MIGRATIONS.len() {
        return Err(StoreError::Db(format!(
            "the database's schema is version {version}, newer than this tokengate knows ({})",
            MIGRATIONS.len()
        )));
    }
    if version < MIGRATIONS.len() {
        tx.batch_execute(KEY_HASH_FUNCTION).await.map_err(db_err)?;
    }
    for migration in &MIGRATIONS[version..] {
        tx.batch_execute(migration).await.map_err(db_err)?;
    }
    let latest = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    tx.execute("UPDATE tokengate_schema SET version = $1", &[&latest])
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

/// Milliseconds as PostgreSQL's `bigint` (times past its range are clamped, never wrapped).
pub fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Records `keys` when no node has yet, or checks them against the record; a key listed with
/// the recorded fingerprint among its `previous` ones replaces it (a rotation).
pub async fn check_keys(client: &mut deadpool_postgres::Client, keys: &[KeyFingerprint]) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(db_err)?;
    tx.batch_execute("LOCK TABLE tokengate_keys IN EXCLUSIVE MODE")
        .await
        .map_err(db_err)?;
    for key in keys {
        let row = tx
            .query_opt("SELECT fingerprint FROM tokengate_keys WHERE name = $1", &[&key.name])
            .await
            .map_err(db_err)?;
        let recorded: Option<String> = row.map(|r| r.get(0));
        match recorded {
            None => {
                tx.execute(
                    "INSERT INTO tokengate_keys (name, fingerprint) VALUES ($1, $2)",
                    &[&key.name, &key.fingerprint],
                )
                .await
                .map_err(db_err)?;
            }
            Some(fp) if fp == key.fingerprint => {}
            Some(fp) if key.previous.contains(&fp) => {
                tx.execute(
                    "UPDATE tokengate_keys SET fingerprint = $2 WHERE name = $1",
                    &[&key.name, &key.fingerprint],
                )
                .await
                .map_err(db_err)?;
                log::info!(
                    "{}: this node's key replaces the cluster's previous one (listed as a previous key)",
                    key.name
                );
            }
            Some(_) => {
                return Err(StoreError::Db(format!(
                    "{}: this node's key differs from the one the other nodes of this cluster use \
                     (the database keeps its fingerprint); give every node the same key file",
                    key.name
                )))
            }
        }
    }
    tx.commit().await.map_err(db_err)
}
