//! A record as the store keeps it: the row written when a token is issued.

use std::sync::Arc;

use super::record::{AccessRecord, RefreshRecord};
use crate::store::{AccessRow, RefreshRow};

pub(crate) fn access_row(r: &AccessRecord) -> AccessRow {
    AccessRow {
        id: r.id,
        client_id: Arc::clone(&r.key.client_id),
        subject: r.key.subject.clone(),
        scope: Arc::clone(r.key.scope.shared()),
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
        family: r.family,
        issued_at_ms: r.issued_at_ms,
        expires_at_ms: r.expires_at_ms,
        access_id: r.access_id,
        state: r.state.get(),
    }
}
