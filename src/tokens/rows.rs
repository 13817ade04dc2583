//! A record as the store keeps it (the row written when a token is issued), and back.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::record::{AccessRecord, AtomicState, KeySlot, RefreshLink, RefreshRecord};
use crate::store::{AccessRow, RefreshRow};

pub(crate) fn access_row(r: &AccessRecord) -> AccessRow {
    AccessRow {
        id: r.id,
        client_id: Arc::clone(&r.key.client_id),
        subject: r.key.subject.clone(),
        scope: Arc::clone(r.key.scope.shared()),
        audience: Arc::clone(r.key.audience.shared()),
        format: r.format,
        grant: r.grant,
        issued_at_ms: r.issued_at_ms,
        expires_at_ms: r.expires_at_ms,
        state: r.state.get(),
        family: r.family().copied(),
        refresh_id: r.refresh_id(),
    }
}

pub(crate) fn refresh_row(r: &RefreshRecord) -> RefreshRow {
    RefreshRow {
        id: r.id,
        client_id: Arc::clone(&r.key.client_id),
        subject: r.key.subject.clone(),
        scope: Arc::clone(r.key.scope.shared()),
        audience: Arc::clone(r.key.audience.shared()),
        family: r.family,
        issued_at_ms: r.issued_at_ms,
        expires_at_ms: r.expires_at_ms,
        access_id: r.access_id,
        state: r.state.get(),
    }
}

/// The record of a stored access token (durable: it came from the store), under `key`.
pub(crate) fn access_record(row: &AccessRow, key: Arc<KeySlot>) -> Arc<AccessRecord> {
    Arc::new(AccessRecord {
        id: row.id,
        key,
        format: row.format,
        grant: row.grant,
        issued_at_ms: row.issued_at_ms,
        expires_at_ms: row.expires_at_ms,
        refresh: row
            .refresh_id
            .zip(row.family)
            .map(|(id, family)| Box::new(RefreshLink { id, family })),
        state: AtomicState::new(row.state),
        durable: AtomicBool::new(true),
    })
}

/// The record of a stored refresh token, under `key`.
pub(crate) fn refresh_record(row: &RefreshRow, key: Arc<KeySlot>) -> Arc<RefreshRecord> {
    Arc::new(RefreshRecord {
        id: row.id,
        key,
        family: row.family,
        issued_at_ms: row.issued_at_ms,
        expires_at_ms: row.expires_at_ms,
        access_id: row.access_id,
        state: AtomicState::new(row.state),
    })
}
