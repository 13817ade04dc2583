//! Which tokens an operator means (the admin API's listing and bulk revocation): every token
//! whose key and issue time match all the parts given. A store reads its live rows by it, the
//! engine picks a key's tokens by it under the key's lock.

use super::ids::TokenId;
use super::key::{ScopeSet, TokenKey};

/// Parts of a token an operator can name; a token matches when every part given matches. A
/// filter with no part matches nothing ([`TokenFilter::is_empty`]): a bulk revocation must name
/// what it revokes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFilter {
    pub client_id: Option<String>,
    /// The resource owner; `Some("")` is the tokens of no user (`client_credentials`).
    pub subject: Option<String>,
    /// The whole scope set (with `client_id` and `subject`: one token key).
    pub scope: Option<ScopeSet>,
    /// An access or refresh token's id.
    pub token_id: Option<TokenId>,
    /// Tokens issued strictly before this instant (milliseconds since the epoch).
    pub issued_before_ms: Option<u64>,
}

impl TokenFilter {
    /// Whether no part is given.
    pub fn is_empty(&self) -> bool {
        self.client_id.is_none()
            && self.subject.is_none()
            && self.scope.is_none()
            && self.token_id.is_none()
            && self.issued_before_ms.is_none()
    }

    /// Whether tokens of `key` can match (the parts about the key).
    pub fn matches_key(&self, key: &TokenKey) -> bool {
        self.client_id.as_deref().is_none_or(|c| c == &*key.client_id)
            && self.subject.as_deref().is_none_or(|s| s == key.subject.as_str())
            && self.scope.as_ref().is_none_or(|s| s == &key.scope)
    }

    /// Whether a token of a matching key, with this id and issue time, matches (the other parts).
    pub fn matches_token(&self, id: &TokenId, issued_at_ms: u64) -> bool {
        self.token_id.as_ref().is_none_or(|t| t == id) && self.issued_before_ms.is_none_or(|t| issued_at_ms < t)
    }

    /// The parts given, by their API names joined with `+` (`client_id+subject`): a metrics
    /// label and a log field with at most 32 values.
    pub fn parts(&self) -> String {
        let given = [
            ("client_id", self.client_id.is_some()),
            ("subject", self.subject.is_some()),
            ("scope", self.scope.is_some()),
            ("token_id", self.token_id.is_some()),
            ("issued_before", self.issued_before_ms.is_some()),
        ];
        let names: Vec<&str> = given.iter().filter(|(_, g)| *g).map(|(n, _)| *n).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join("+")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(client: &str, subject: &str, scope: &str) -> TokenKey {
        TokenKey {
            client_id: client.into(),
            subject: subject.into(),
            scope: ScopeSet::parse(scope).unwrap(),
            aim: Default::default(),
        }
    }

    #[test]
    fn every_given_part_must_match() {
        let f = TokenFilter {
            client_id: Some("app".into()),
            subject: Some("".into()),
            ..TokenFilter::default()
        };
        assert!(f.matches_key(&key("app", "", "a")));
        assert!(
            !f.matches_key(&key("app", "alice", "a")),
            "a user's token is not the client's own"
        );
        assert!(!f.matches_key(&key("other", "", "a")));
        let by_key = TokenFilter {
            scope: Some(ScopeSet::parse("b a").unwrap()),
            ..f.clone()
        };
        assert!(by_key.matches_key(&key("app", "", "a b")));
        assert!(!by_key.matches_key(&key("app", "", "a")));
        assert_eq!(by_key.parts(), "client_id+subject+scope");
    }

    #[test]
    fn ids_and_issue_times_match_strictly() {
        let f = TokenFilter {
            token_id: Some(TokenId([7; 32])),
            issued_before_ms: Some(5_000),
            ..TokenFilter::default()
        };
        assert!(f.matches_key(&key("any", "one", "")));
        assert!(f.matches_token(&TokenId([7; 32]), 4_999));
        assert!(
            !f.matches_token(&TokenId([7; 32]), 5_000),
            "issued at the instant: not before it"
        );
        assert!(!f.matches_token(&TokenId([8; 32]), 1_000));
        assert!(!f.is_empty());
        assert!(TokenFilter::default().is_empty());
        assert_eq!(TokenFilter::default().parts(), "none");
    }
}
