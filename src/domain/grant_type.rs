//! The OAuth2 grant types tokengate serves, and small sets of them.

use std::fmt;

/// A grant type of RFC 6749 that the token endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    ClientCredentials,
    Password,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::RefreshToken,
    ];

    /// The wire and config name (`client_credentials`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
        }
    }

    /// Parses a wire or config name; `None` for anything else.
    pub fn parse(name: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == name)
    }

    fn bit(self) -> u8 {
        match self {
            GrantType::ClientCredentials => 1,
            GrantType::Password => 2,
            GrantType::RefreshToken => 4,
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of grant types (a bit set: copying and testing it costs nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GrantSet(u8);

impl GrantSet {
    pub const EMPTY: GrantSet = GrantSet(0);

    pub fn of(grants: &[GrantType]) -> GrantSet {
        GrantSet(grants.iter().fold(0, |acc, g| acc | g.bit()))
    }

    pub fn contains(self, grant: GrantType) -> bool {
        self.0 & grant.bit() != 0
    }

    pub fn insert(&mut self, grant: GrantType) {
        self.0 |= grant.bit();
    }

    pub fn iter(self) -> impl Iterator<Item = GrantType> {
        GrantType::ALL.into_iter().filter(move |g| self.contains(*g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for g in GrantType::ALL {
            assert_eq!(GrantType::parse(g.as_str()), Some(g));
        }
        assert_eq!(GrantType::parse("authorization_code"), None);
        assert_eq!(GrantType::parse("Password"), None);
    }

    #[test]
    fn set_membership() {
        let s = GrantSet::of(&[GrantType::Password]);
        assert!(s.contains(GrantType::Password));
        assert!(!s.contains(GrantType::ClientCredentials));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![GrantType::Password]);
    }
}
