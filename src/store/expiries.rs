//! Where expired rows can be: the earliest expiry of each segment of [`SEGMENT_ROWS`] rows (by
//! `seq`) of the two tables, kept in memory by the writer.
//!
//! The tables have no index on their expiry: an index entry per row made every commit write a
//! third more bytes (docs/decisions.md). A purge instead visits only the segments whose
//! earliest expiry has passed, deletes their expired rows by `seq` range (the table's own
//! B-tree), and records the new earliest expiry of what is left. After a start the summary is
//! unknown for the rows written before: the first purge visits every segment once (skipping
//! empty ranges) and rebuilds it.

use std::collections::BTreeMap;

/// Rows per segment, by `seq`: one purge step deletes at most this many (about 1-2 ms here).
pub const SEGMENT_ROWS: i64 = 1024;

/// The two append-only tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Tokens,
    Changes,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Tokens => "tokens",
            Table::Changes => "state_changes",
        }
    }
}

/// The summary of one table.
#[derive(Debug, Default)]
pub struct Segments {
    /// Segment number (`seq / SEGMENT_ROWS`) -> no row in it expires before this.
    earliest: BTreeMap<i64, u64>,
    /// Whether `earliest` covers every row; false until the first purge after a start.
    complete: bool,
}

impl Segments {
    /// Records a row just written.
    pub fn note(&mut self, seq: i64, expires_at_ms: u64) {
        let e = self.earliest.entry(segment_of(seq)).or_insert(u64::MAX);
        *e = (*e).min(expires_at_ms);
    }

    /// The first segment from `from` on that may hold a row expired at `now_ms`, when the
    /// summary is complete; `None` once there is none. (While it is not, every segment may.)
    pub fn next_expired(&self, from: i64, now_ms: u64) -> Option<i64> {
        self.earliest
            .range(from..)
            .find(|(_, &earliest)| earliest <= now_ms)
            .map(|(&seg, _)| seg)
    }

    /// What is left in `segment` after a purge step: its earliest expiry, or `None` if empty.
    pub fn set(&mut self, segment: i64, earliest: Option<u64>) {
        match earliest {
            Some(e) => self.earliest.insert(segment, e),
            None => self.earliest.remove(&segment),
        };
    }

    pub fn is_complete(&self) -> bool {
        self.complete
    }

    pub fn mark_complete(&mut self) {
        self.complete = true;
    }

    /// Segments summarised.
    #[cfg(test)]
    pub fn segments(&self) -> usize {
        self.earliest.len()
    }
}

/// Both tables' summaries.
#[derive(Debug, Default)]
pub struct Expiries {
    pub tokens: Segments,
    pub changes: Segments,
}

impl Expiries {
    pub fn of(&mut self, table: Table) -> &mut Segments {
        match table {
            Table::Tokens => &mut self.tokens,
            Table::Changes => &mut self.changes,
        }
    }
}

pub fn segment_of(seq: i64) -> i64 {
    seq.div_euclid(SEGMENT_ROWS)
}

/// The `seq` range `[lo, hi)` of a segment.
pub fn bounds(segment: i64) -> (i64, i64) {
    (segment * SEGMENT_ROWS, (segment + 1) * SEGMENT_ROWS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_keeps_its_earliest_expiry_and_only_passed_ones_are_visited() {
        let mut s = Segments::default();
        s.note(1, 9_000);
        s.note(2, 5_000);
        s.note(SEGMENT_ROWS, 7_000);
        s.note(3 * SEGMENT_ROWS + 5, 1_000);
        assert_eq!(s.segments(), 3);
        assert_eq!(s.next_expired(0, 4_000), Some(3));
        assert_eq!(s.next_expired(0, 6_000), Some(0));
        assert_eq!(s.next_expired(1, 6_000), Some(3));
        assert_eq!(s.next_expired(4, 10_000), None);
        s.set(0, Some(9_000));
        s.set(3, None);
        assert_eq!(s.next_expired(0, 8_000), Some(1));
        assert_eq!(s.segments(), 2);
        assert_eq!(bounds(1), (SEGMENT_ROWS, 2 * SEGMENT_ROWS));
    }
}
