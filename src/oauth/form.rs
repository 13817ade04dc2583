//! `application/x-www-form-urlencoded` request bodies of the OAuth endpoints.

use std::borrow::Cow;
use std::collections::HashMap;

use super::errors::OAuthError;

/// Largest body the OAuth endpoints read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_PARAMS: usize = 32;
const MAX_VALUE_BYTES: usize = 16 * 1024;

/// Parameters that may appear more than once: RFC 8707's `resource`.
const REPEATABLE: &[&str] = &["resource"];

/// Parsed parameters. Each name appears once (RFC 6749 section 3.2) but the [`REPEATABLE`]
/// ones; empty values count as omitted (section 3.1).
#[derive(Debug, Default)]
pub struct Form {
    params: HashMap<String, String>,
    /// The values of the repeatable parameters, in order.
    repeated: Vec<(String, String)>,
}

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// Every value of a repeatable parameter, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.repeated
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A parameter that must be present.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::InvalidRequest(format!("missing parameter {name}")))
    }
}

/// Checks the request's `Content-Type` names a form body.
pub fn check_content_type(content_type: Option<&[u8]>) -> Result<(), OAuthError> {
    let ok = content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(OAuthError::InvalidRequest(
            "Content-Type must be application/x-www-form-urlencoded".into(),
        ))
    }
}

/// `application/x-www-form-urlencoded` decoding of one name or value: `+` is a space, then
/// percent-decoding, and the result must be UTF-8 (strictly: a lossy decoder would turn bad
/// bytes into U+FFFD, which a well-formed value may also contain).
pub(crate) fn decode_component(part: &[u8]) -> Result<String, OAuthError> {
    let spaced: Vec<u8> = part.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| OAuthError::InvalidRequest("parameters must be UTF-8".into()))
}

/// Parses a form body, refusing repeated parameters, non-UTF-8 text and oversized input.
pub fn parse(body: &[u8]) -> Result<Form, OAuthError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(OAuthError::PayloadTooLarge);
    }
    let mut params = HashMap::new();
    let mut repeated = Vec::new();
    let mut count = 0;
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        count += 1;
        if count > MAX_PARAMS {
            return Err(OAuthError::InvalidRequest("too many parameters".into()));
        }
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        let (name, value) = (decode_component(name)?, decode_component(value)?);
        if value.len() > MAX_VALUE_BYTES {
            return Err(OAuthError::InvalidRequest(format!("parameter {name} is too long")));
        }
        if REPEATABLE.contains(&name.as_str()) {
            if !value.is_empty() {
                repeated.push((name, value));
            }
            continue;
        }
        if params.contains_key(&name) {
            return Err(OAuthError::InvalidRequest(format!("parameter {name} is repeated")));
        }
        params.insert(name, value);
    }
    params.retain(|_, v| !v.is_empty());
    Ok(Form { params, repeated })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_may_be_repeated() {
        let f = parse(b"grant_type=client_credentials&resource=https%3A%2F%2Fa&resource=urn%3Ab&resource=").unwrap();
        assert_eq!(f.all("resource").collect::<Vec<_>>(), ["https://a", "urn:b"]);
        assert_eq!(f.get("resource"), None);
        assert!(parse(b"scope=a&scope=b").is_err(), "other parameters still may not");
    }

    #[test]
    fn parses_and_decodes() {
        let f = parse(b"grant_type=client_credentials&scope=a+b%3Ac").unwrap();
        assert_eq!(f.get("grant_type"), Some("client_credentials"));
        assert_eq!(f.get("scope"), Some("a b:c"));
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(matches!(parse(b"scope=a&scope=b"), Err(OAuthError::InvalidRequest(_))));
        assert!(matches!(parse(b"scope=&scope="), Err(OAuthError::InvalidRequest(_))));
    }

    #[test]
    fn empty_values_are_omitted() {
        let f = parse(b"scope=&grant_type=password").unwrap();
        assert_eq!(f.get("scope"), None);
        assert!(f.require("scope").is_err());
    }

    #[test]
    fn oversized_and_non_utf8_bodies_are_refused() {
        assert_eq!(
            parse(&vec![b'a'; MAX_BODY_BYTES + 1]).unwrap_err(),
            OAuthError::PayloadTooLarge
        );
        assert!(parse(b"a=%FF").is_err());
        assert!(parse(b"%C3=a").is_err());
        assert!(parse(b"a=\xff").is_err());
    }

    #[test]
    fn a_replacement_character_written_as_utf8_is_fine() {
        assert_eq!(parse(b"a=%EF%BF%BD").unwrap().get("a"), Some("\u{FFFD}"));
    }

    #[test]
    fn empty_pairs_and_bare_names_are_as_in_the_whatwg_parser() {
        let f = parse(b"&&a=1&&b&c==2").unwrap();
        assert_eq!(f.get("a"), Some("1"));
        assert_eq!(f.get("b"), None, "a bare name has an empty value");
        assert_eq!(f.get("c"), Some("=2"));
    }

    #[test]
    fn content_type_must_be_a_form() {
        assert!(check_content_type(Some(b"application/x-www-form-urlencoded; charset=UTF-8")).is_ok());
        assert!(check_content_type(Some(b"Application/X-WWW-Form-Urlencoded")).is_ok());
        assert!(check_content_type(Some(b"application/json")).is_err());
        assert!(check_content_type(None).is_err());
    }
}
