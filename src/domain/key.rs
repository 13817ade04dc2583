//! The token identity: which tokens count as "the same token" for the renewal policy.
//!
//! `key = (client_id, subject, scope set, audience set)` (docs/renewal-policy.md, section 1). The scope set is de-duplicated
//! and sorted, so `"b a"` and `"a b a"` are one key; the token format is not part of the key.

use std::fmt;
use std::sync::Arc;

use compact_str::CompactString;

use super::audience::AudienceSet;

/// A set of scope tokens, kept sorted and de-duplicated (case-sensitive), stored as its
/// canonical text (`"a b c"`), which is also the `X-Scope` header value as is. The text is shared:
/// a clone costs no allocation, and the index interns it so that every key with the same scope
/// set points at one copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ScopeSet(Arc<str>);

/// A scope string that is not a valid RFC 6749 section 3.3 scope list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope token {0:?}")]
pub struct BadScope(pub String);

impl ScopeSet {
    /// Parses a space-delimited `scope` parameter (RFC 6749 section 3.3).
    pub fn parse(text: &str) -> Result<ScopeSet, BadScope> {
        ScopeSet::from_tokens(text.split(' ').filter(|s| !s.is_empty()))
    }

    /// Builds a set from individual tokens, checking each one.
    pub fn from_tokens<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Result<ScopeSet, BadScope> {
        let mut v = Vec::new();
        for t in tokens {
            if !is_scope_token(t) {
                return Err(BadScope(t.to_string()));
            }
            v.push(t);
        }
        v.sort_unstable();
        v.dedup();
        Ok(ScopeSet(Arc::from(v.join(" "))))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The scopes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ').filter(|s| !s.is_empty())
    }

    /// The canonical text: sorted scopes joined by one space.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared canonical text (what the index interns).
    pub fn shared(&self) -> &Arc<str> {
        &self.0
    }

    /// A set from text that is already canonical (sorted, de-duplicated, valid): the interned
    /// copy of another set's text.
    pub(crate) fn from_canonical(text: Arc<str>) -> ScopeSet {
        ScopeSet(text)
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }

    /// Whether every scope of `other` is in `self`. Checked on every proxied request: the same
    /// text (a token asking for exactly the route's scopes) or an empty `other` answers at once;
    /// otherwise one merge walk over the two sorted lists.
    pub fn is_superset(&self, other: &ScopeSet) -> bool {
        if other.0.is_empty() || self.0 == other.0 {
            return true;
        }
        // Both lists are sorted: each wanted scope must be the first of ours not below it.
        let mut mine = self.iter();
        other.iter().all(|want| mine.find(|have| *have >= want) == Some(want))
    }
}

impl fmt::Display for ScopeSet {
    /// The canonical form: sorted scopes joined by one space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 6749 section 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn is_scope_token(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// The identity that the renewal policy groups tokens by. The client id and the scope set are
/// shared with every other key of the same client or scope set (the index interns them: see
/// [`super::index::TokenIndex::key`]); only the subject is the key's own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub client_id: Arc<str>,
    /// The resource owner for `password` (and refreshes of it); empty for `client_credentials`.
    /// Kept inline up to 24 bytes (most user names): no allocation of its own.
    pub subject: CompactString,
    pub scope: ScopeSet,
    /// Where the token may be used (`aud`): two audiences are two keys.
    pub audience: AudienceSet,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_order_and_duplicates_do_not_matter() {
        let a = ScopeSet::parse("b a").unwrap();
        let b = ScopeSet::parse("a b a").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "a b");
        assert_ne!(ScopeSet::parse("a").unwrap(), a);
    }

    #[test]
    fn scope_is_case_sensitive_and_empty_is_valid() {
        assert_ne!(ScopeSet::parse("A").unwrap(), ScopeSet::parse("a").unwrap());
        assert!(ScopeSet::parse("").unwrap().is_empty());
        assert!(ScopeSet::parse("  ").unwrap().is_empty());
    }

    #[test]
    fn bad_scope_characters_are_refused() {
        assert!(ScopeSet::parse("a\"b").is_err());
        assert!(ScopeSet::parse("a\\b").is_err());
        assert!(ScopeSet::parse("caf\u{e9}").is_err());
        assert!(ScopeSet::parse("orders:read").is_ok());
    }

    #[test]
    fn superset_is_every_scope_of_the_other() {
        let set = |t: &str| ScopeSet::parse(t).unwrap();
        let cases = [
            ("a b c", "", true),
            ("", "", true),
            ("", "a", false),
            ("a b c", "a b c", true),
            ("a b c", "b", true),
            ("a b c", "a c", true),
            ("a b c", "c", true),
            ("a b c", "d", false),
            ("a b c", "a d", false),
            ("a c", "b", false),
            ("b", "a b", false),
            ("ab", "a", false),
            ("a", "ab", false),
            ("orders:read orders:write", "orders:read", true),
            ("orders:read", "orders:read orders:write", false),
        ];
        for (have, want, expected) in cases {
            assert_eq!(set(have).is_superset(&set(want)), expected, "{have:?} >= {want:?}");
            // The definition the fast paths must agree with.
            assert_eq!(set(want).iter().all(|s| set(have).contains(s)), expected);
        }
    }

    proptest::proptest! {
        #[test]
        fn superset_agrees_with_its_definition(
            have in proptest::collection::vec(proptest::sample::select(vec!["a", "ab", "b", "b:x", "c", "~"]), 0..6),
            want in proptest::collection::vec(proptest::sample::select(vec!["a", "ab", "b", "b:x", "c", "~"]), 0..4),
        ) {
            let (have, want) = (ScopeSet::from_tokens(have).unwrap(), ScopeSet::from_tokens(want).unwrap());
            proptest::prop_assert_eq!(have.is_superset(&want), want.iter().all(|s| have.contains(s)));
        }
    }

    #[test]
    fn keys_differ_by_each_part() {
        let s = ScopeSet::parse("a").unwrap();
        let k = |c: &str, u: &str| TokenKey {
            client_id: c.into(),
            subject: u.into(),
            scope: s.clone(),
            audience: AudienceSet::default(),
        };
        assert_ne!(k("c", "alice"), k("c", "bob"));
        assert_ne!(k("c1", ""), k("c2", ""));
        assert_eq!(k("c", "alice"), k("c", "alice"));
        let mut other = k("c", "alice");
        other.audience = AudienceSet::one("https://orders.example").unwrap();
        assert_ne!(other, k("c", "alice"), "the audience is part of the key");
    }
}
