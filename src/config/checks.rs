//! What every conversion of the config shares: the error naming the key at fault, paths resolved
//! against the config file's folder, and grant type lists.

use std::path::{Path, PathBuf};

use crate::domain::grant_type::{GrantSet, GrantType};

/// Quotes a word processor puts in place of `"`: a config pasted from a document has them.
pub(super) const TYPOGRAPHIC_QUOTES: [char; 4] = ['\u{201C}', '\u{201D}', '\u{2018}', '\u{2019}'];

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Syntax(String),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

pub(super) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

pub(super) fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

pub(super) fn grant_list(key: &str, names: &[String]) -> Result<GrantSet, ConfigError> {
    let mut set = GrantSet::EMPTY;
    for name in names {
        let grant = GrantType::parse(name).ok_or_else(|| {
            let mut msg = format!("unknown grant type {name:?} (known: client_credentials, password, refresh_token)");
            if name.contains(TYPOGRAPHIC_QUOTES) {
                msg.push_str("; use straight quotes \" instead of typographic ones");
            }
            invalid(key, msg)
        })?;
        set.insert(grant);
    }
    Ok(set)
}
