//! Shared copies of the strings that many token keys have in common: client ids and scope sets.
//!
//! There are few distinct ones (bounded by the configured clients and their scopes), so a million
//! keys point at a handful of copies instead of holding a million. Owned by the index; copies no
//! key uses any more are dropped by [`Interner::prune`] (the sweeper calls it).

use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

#[derive(Default)]
pub struct Interner(DashMap<Arc<str>, ()>);

impl Interner {
    /// The shared copy of `text`, made on first use.
    pub fn intern(&self, text: &str) -> Arc<str> {
        if let Some(e) = self.0.get(text) {
            return Arc::clone(e.key());
        }
        self.shared(Arc::from(text))
    }

    /// The shared copy of `text`; `text` itself becomes it on first use.
    pub fn shared(&self, text: Arc<str>) -> Arc<str> {
        if let Some(e) = self.0.get(&*text) {
            return Arc::clone(e.key());
        }
        match self.0.entry(text) {
            Entry::Occupied(o) => Arc::clone(o.key()),
            Entry::Vacant(v) => Arc::clone(v.insert(()).key()),
        }
    }

    /// Drops the copies nothing else holds.
    pub fn prune(&self) {
        self.0.retain(|text, _| Arc::strong_count(text) > 1);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_copy_per_text_until_unused() {
        let i = Interner::default();
        let a = i.intern("app");
        let b = i.shared(Arc::from("app"));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &i.intern("other")));
        i.prune();
        assert_eq!(i.len(), 1, "\"other\" was not held");
        drop((a, b));
        i.prune();
        assert!(i.is_empty());
    }
}
