//! Audiences: where a token may be used (RFC 8707 resource indicators, RFC 9068 `aud`).
//!
//! A token carries a set of audiences, asked for with `resource` or the issuer's default. The set
//! is part of the token's key (two audiences are two keys for the renewal policy), kept like a
//! scope set: sorted, de-duplicated, as one canonical text (the URIs joined by one space, which no
//! URI contains). The empty set is the audience of tokens stored before audiences existed: no
//! route that names an audience accepts them.

use std::fmt;
use std::sync::Arc;

/// A set of audience URIs, kept sorted and de-duplicated, stored as its canonical text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct AudienceSet(Arc<str>);

/// A `resource` value that is not an absolute URI without a fragment (RFC 8707 section 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an absolute URI without a fragment")]
pub struct BadResource(pub String);

impl AudienceSet {
    /// The set of the given URIs, each checked as RFC 8707 asks of a `resource`.
    pub fn from_uris<'a>(uris: impl IntoIterator<Item = &'a str>) -> Result<AudienceSet, BadResource> {
        let mut v = Vec::new();
        for u in uris {
            if !is_resource_uri(u) {
                return Err(BadResource(u.to_string()));
            }
            v.push(u);
        }
        v.sort_unstable();
        v.dedup();
        Ok(AudienceSet(Arc::from(v.join(" "))))
    }

    /// The set of one audience.
    pub fn one(uri: &str) -> Result<AudienceSet, BadResource> {
        AudienceSet::from_uris([uri])
    }

    /// A set from text that is already canonical (as stored): no check but the split.
    pub fn from_canonical(text: Arc<str>) -> AudienceSet {
        AudienceSet(text)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The audiences, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ').filter(|s| !s.is_empty())
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn contains(&self, uri: &str) -> bool {
        self.iter().any(|a| a == uri)
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared canonical text (what the index interns).
    pub fn shared(&self) -> &Arc<str> {
        &self.0
    }

    /// The JSON form of `aud` (RFC 7519 section 4.1.3): a string for one audience, an array for
    /// several, absent for none.
    pub fn claim(&self) -> Option<serde_json::Value> {
        match self.len() {
            0 => None,
            1 => Some(serde_json::Value::from(self.as_str())),
            _ => Some(self.iter().collect::<Vec<_>>().into()),
        }
    }
}

impl fmt::Display for AudienceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 8707 section 2: "an absolute URI, as specified by Section 4.3 of RFC3986 ... MUST NOT
/// include a fragment component". A scheme, then something, and nothing outside printable ASCII.
pub fn is_resource_uri(u: &str) -> bool {
    let Some((scheme, rest)) = u.split_once(':') else {
        return false;
    };
    let mut scheme_bytes = scheme.bytes();
    scheme_bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme_bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && !rest.is_empty()
        && !u.contains('#')
        && u.bytes().all(|b| b.is_ascii_graphic())
        && u.len() <= 2048
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_duplicates_do_not_matter() {
        let a = AudienceSet::from_uris(["https://b.example", "https://a.example"]).unwrap();
        let b = AudienceSet::from_uris(["https://a.example", "https://b.example", "https://a.example"]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "https://a.example https://b.example");
        assert!(a.contains("https://b.example"));
        assert!(!a.contains("https://c.example"));
        assert!(!a.contains("https://a.example https://b.example"));
    }

    #[test]
    fn resources_must_be_absolute_uris_without_fragment() {
        for good in [
            "https://api.example.com",
            "urn:example:orders",
            "http://127.0.0.1:8080/x?y=1",
        ] {
            assert!(is_resource_uri(good), "{good}");
        }
        for bad in [
            "",
            "orders",
            "/api/orders",
            "https://a.example#frag",
            "https://a example",
            "1http://x",
            "https:",
            "https://caf\u{e9}.example",
        ] {
            assert!(!is_resource_uri(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_claim_is_a_string_for_one_and_an_array_for_several() {
        assert_eq!(AudienceSet::default().claim(), None);
        let one = AudienceSet::one("https://a.example").unwrap();
        assert_eq!(one.claim(), Some(serde_json::json!("https://a.example")));
        let two = AudienceSet::from_uris(["https://b.example", "https://a.example"]).unwrap();
        assert_eq!(
            two.claim(),
            Some(serde_json::json!(["https://a.example", "https://b.example"]))
        );
    }
}
