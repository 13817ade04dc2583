//! The HTTPS listener's certificate and key. They are checked here, before the listener uses
//! them, so `--check` and the start report a one-line reason naming the setting. The listener
//! asks [`Certificates`] for the pair on every handshake, so a reload that finds new files
//! (certbot or cert-manager renewed them) serves them on new connections without a restart.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{
    load_certs_and_key_files, load_pem_file_ca, load_pem_file_private_key, ClientHello, CryptoProvider,
    ResolvesServerCert, ServerConfig,
};

use crate::config::model::TlsFiles;

/// Why the certificate or key cannot serve HTTPS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: {path}: {source}")]
    Unreadable {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{key}: {path}: the path is not valid UTF-8")]
    NotUtf8 { key: &'static str, path: String },
    #[error("server.tls_cert: {0}: no PEM certificate found")]
    NoCertificate(String),
    #[error("server.tls_key: {0}: no PEM private key (PKCS#8, PKCS#1 or SEC1) found")]
    NoKey(String),
    #[error("server.tls_cert/tls_key: {0}")]
    Unusable(String),
}

fn utf8_path<'a>(key: &'static str, path: &'a Path) -> Result<&'a str, TlsError> {
    let text = path.to_str().ok_or_else(|| TlsError::NotUtf8 {
        key,
        path: path.display().to_string(),
    })?;
    std::fs::metadata(path)
        .and_then(|m| {
            if m.is_file() {
                Ok(())
            } else {
                Err(std::io::Error::other("not a file"))
            }
        })
        .map_err(|source| TlsError::Unreadable {
            key,
            path: text.to_string(),
            source,
        })?;
    Ok(text)
}

/// The certificate the HTTPS listener presents, swapped whole when its files change.
pub struct Certificates {
    files: ArcSwap<TlsFiles>,
    current: ArcSwap<CertifiedKey>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates").field("files", &self.files).finish()
    }
}

impl Certificates {
    /// Loads the pair `files` name; fails naming the setting at fault.
    pub fn load(files: &TlsFiles) -> Result<Certificates, TlsError> {
        Ok(Certificates {
            files: ArcSwap::from_pointee(files.clone()),
            current: ArcSwap::from_pointee(certified_key(files)?),
        })
    }

    /// Reads the files again: `Ok(true)` when they hold a new pair, now presented on new
    /// connections; `Ok(false)` when unchanged; an error (the pair in use stays) when they do
    /// not hold a usable pair.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let fresh = certified_key(&self.files.load())?;
        if fresh.cert == self.current.load().cert {
            return Ok(false);
        }
        self.current.store(Arc::new(fresh));
        Ok(true)
    }
}

impl Certificates {
    /// Presents the pair of other files from now on (a reload of a config naming new paths);
    /// `Ok(false)` when `files` are the ones in use. An error leaves the pair in use.
    pub fn switch(&self, files: &TlsFiles) -> Result<bool, TlsError> {
        if **self.files.load() == *files {
            return Ok(false);
        }
        let fresh = certified_key(files)?;
        self.files.store(Arc::new(files.clone()));
        self.current.store(Arc::new(fresh));
        Ok(true)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The checked pair `files` name, ready to present.
fn certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let (cert, key) = check(files)?;
    let (chain, private_key) = load_certs_and_key_files(&cert, &key)
        .map_err(|e| TlsError::Unusable(e.to_string()))?
        .ok_or_else(|| TlsError::Unusable("no certificate and key pair found".into()))?;
    let provider =
        CryptoProvider::get_default().ok_or_else(|| TlsError::Unusable("no TLS crypto provider installed".into()))?;
    CertifiedKey::from_der(chain, private_key, provider).map_err(|e| TlsError::Unusable(e.to_string()))
}

/// Checks that the PEM files hold a certificate chain and the private key that matches it.
/// Returns the (certificate, key) paths as the strings pingora takes.
pub fn check(files: &TlsFiles) -> Result<(String, String), TlsError> {
    let cert = utf8_path("server.tls_cert", &files.cert)?.to_string();
    let key = utf8_path("server.tls_key", &files.key)?.to_string();
    if load_pem_file_ca(&cert).map_or(true, |c| c.is_empty()) {
        return Err(TlsError::NoCertificate(cert));
    }
    if load_pem_file_private_key(&key).map_or(true, |k| k.is_empty()) {
        return Err(TlsError::NoKey(key));
    }
    let (chain, private_key) = load_certs_and_key_files(&cert, &key)
        .map_err(|e| TlsError::Unusable(e.to_string()))?
        .ok_or_else(|| TlsError::Unusable("no certificate and key pair found".into()))?;
    // The same provider pingora installs when it builds the listener.
    pingora::tls::install_default_crypto_provider();
    ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| TlsError::Unusable(e.to_string()))?;
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> TlsFiles {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}-cert.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&files.cert, c.cert.pem()).unwrap();
        std::fs::write(&files.key, c.signing_key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn accepts_a_matching_pair() {
        let dir = tempfile::tempdir().unwrap();
        let files = pair(dir.path(), "a");
        assert!(check(&files).is_ok());
    }

    #[test]
    fn names_the_setting_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a");
        let b = pair(dir.path(), "b");

        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: a.key.clone(),
        };
        assert!(check(&missing)
            .unwrap_err()
            .to_string()
            .starts_with("server.tls_cert: "));

        let swapped = TlsFiles {
            cert: a.key.clone(),
            key: a.cert.clone(),
        };
        assert!(matches!(check(&swapped), Err(TlsError::NoCertificate(_))));

        let no_key = TlsFiles {
            cert: a.cert.clone(),
            key: a.cert.clone(),
        };
        assert!(matches!(check(&no_key), Err(TlsError::NoKey(_))));

        let mismatched = TlsFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        assert!(
            matches!(check(&mismatched), Err(TlsError::Unusable(_))),
            "{:?}",
            check(&mismatched)
        );
    }
}
