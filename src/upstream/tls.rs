//! HTTPS to a route's servers: the CA bundle and the client certificate read into what pingora's
//! peers take, and applied to each peer.
//!
//! The files are read and checked when the config loads, so a bad one is a config error naming
//! its key: pingora parses them again on every handshake and panics on a certificate or key it
//! cannot parse. Verification is on unless `insecure_skip_verify` says otherwise.

use std::path::Path;
use std::sync::Arc;

use pingora::prelude::HttpPeer;
use pingora::protocols::tls::CaType;
use pingora::tls::{version, CertificateDer, ClientConfig, PrivateKeyDer, RootCertStore};
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use sha2::{Digest, Sha256};

/// Why a TLS file of a route cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    #[error("cannot read {path}: {source}")]
    Unreadable { path: String, source: std::io::Error },
    #[error("{0}: no PEM certificate found")]
    NoCertificate(String),
    #[error("{path}: certificate {index} cannot be parsed: {reason}")]
    BadCertificate { path: String, index: usize, reason: String },
    #[error("{0}: no PEM private key (PKCS#8, PKCS#1 or SEC1) found")]
    NoKey(String),
    #[error("{0}")]
    Unusable(String),
}

/// The PEM blocks of a file, and the SHA-256 of its bytes.
fn read_pem(path: &Path) -> Result<(Vec<pem::Pem>, [u8; 32]), TlsFileError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| TlsFileError::Unreadable {
        path: shown.clone(),
        source,
    })?;
    let blocks = pem::parse_many(&bytes).map_err(|e| TlsFileError::Unusable(format!("{shown}: {e}")))?;
    Ok((blocks, Sha256::digest(&bytes).into()))
}

/// The certificates of a PEM file, each checked with the parser pingora uses on them.
fn certificates(path: &Path) -> Result<(Vec<Vec<u8>>, [u8; 32]), TlsFileError> {
    let (blocks, digest) = read_pem(path)?;
    let shown = path.display().to_string();
    let ders: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if ders.is_empty() {
        return Err(TlsFileError::NoCertificate(shown));
    }
    for (i, der) in ders.iter().enumerate() {
        x509_parser::parse_x509_certificate(der).map_err(|e| TlsFileError::BadCertificate {
            path: shown.clone(),
            index: i + 1,
            reason: e.to_string(),
        })?;
        // What the handshake does with a CA: refused here rather than on every connection.
        RootCertStore::empty()
            .add(CertificateDer::from(der.as_slice()))
            .map_err(|e| TlsFileError::BadCertificate {
                path: shown.clone(),
                index: i + 1,
                reason: e.to_string(),
            })?;
    }
    Ok((ders, digest))
}

/// `upstream_ca`: the CAs a route's servers are verified against, instead of the system's.
#[derive(Clone)]
pub struct CaBundle {
    certs: Arc<CaType>,
    digest: [u8; 32],
}

impl CaBundle {
    pub fn load(path: &Path) -> Result<CaBundle, TlsFileError> {
        let (ders, digest) = certificates(path)?;
        let certs: Vec<WrappedX509> = ders.into_iter().map(|d| WrappedX509::new(d, parse_x509)).collect();
        Ok(CaBundle {
            certs: Arc::from(certs),
            digest,
        })
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// Which file of a client certificate is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ClientCertError {
    #[error("{0}")]
    Cert(TlsFileError),
    #[error("{0}")]
    Key(TlsFileError),
    #[error("{0}")]
    Pair(String),
}

/// `upstream_client_cert` and `upstream_client_key`: what the gateway presents for mutual TLS.
#[derive(Clone)]
pub struct ClientCert {
    cert_key: Arc<CertKey>,
    digest: [u8; 32],
}

impl ClientCert {
    pub fn load(cert: &Path, key: &Path) -> Result<ClientCert, ClientCertError> {
        let (chain, cert_digest) = certificates(cert).map_err(ClientCertError::Cert)?;
        let (blocks, key_digest) = read_pem(key).map_err(ClientCertError::Key)?;
        let key_der = blocks
            .into_iter()
            .find(|b| matches!(b.tag(), "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY"))
            .map(pem::Pem::into_contents)
            .ok_or_else(|| ClientCertError::Key(TlsFileError::NoKey(key.display().to_string())))?;
        // pingora turns the key back into this on every handshake, and panics if it cannot.
        let private_key = PrivateKeyDer::try_from(key_der.clone())
            .map_err(|e| ClientCertError::Key(TlsFileError::Unusable(format!("{}: {e}", key.display()))))?;
        let der_chain: Vec<CertificateDer<'static>> = chain.iter().map(|c| CertificateDer::from(c.clone())).collect();
        pingora::tls::install_default_crypto_provider();
        ClientConfig::builder_with_protocol_versions(&[&version::TLS12, &version::TLS13])
            .with_root_certificates(RootCertStore::empty())
            .with_client_auth_cert(der_chain, private_key)
            .map_err(|e| ClientCertError::Pair(e.to_string()))?;
        let mut digest = Sha256::new();
        digest.update(cert_digest);
        digest.update(key_digest);
        Ok(ClientCert {
            cert_key: Arc::new(CertKey::new(chain, key_der)),
            digest: digest.finalize().into(),
        })
    }
}

/// How a route speaks TLS to its servers.
#[derive(Clone)]
pub struct UpstreamTls {
    /// The name sent and verified instead of each server's host.
    pub sni: Option<String>,
    pub ca: Option<CaBundle>,
    pub client: Option<ClientCert>,
    pub insecure_skip_verify: bool,
}

impl UpstreamTls {
    /// The name to send to, and verify of, a server written with `host`.
    pub fn sni_for<'a>(&'a self, host: &'a str) -> &'a str {
        self.sni.as_deref().unwrap_or(host)
    }

    /// A key for the connections made with these settings. pingora reuses a pooled connection
    /// for any peer with the same address, SNI, client certificate and verification flags, but
    /// not the CA: a connection verified against one route's CA must not serve a route that
    /// trusts another one, nor outlive a reload that changed the CA.
    pub fn pool_key(&self) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        BuildHasherDefault::<DefaultHasher>::default().hash_one((
            &self.sni,
            self.insecure_skip_verify,
            self.ca.as_ref().map(|c| c.digest),
            self.client.as_ref().map(|c| c.digest),
        ))
    }

    /// Sets the CA, the client certificate and verification on a peer made with TLS on.
    pub fn apply(&self, peer: &mut HttpPeer) {
        peer.options.ca = self.ca.as_ref().map(|c| Arc::clone(&c.certs));
        peer.client_cert_key = self.client.as_ref().map(|c| Arc::clone(&c.cert_key));
        peer.options.verify_cert = !self.insecure_skip_verify;
        peer.options.verify_hostname = !self.insecure_skip_verify;
    }
}

/// Equal when the settings and the files' contents are: a reload with a renewed file is a change.
impl PartialEq for UpstreamTls {
    fn eq(&self, other: &UpstreamTls) -> bool {
        self.sni == other.sni
            && self.insecure_skip_verify == other.insecure_skip_verify
            && self.ca.as_ref().map(|c| c.digest) == other.ca.as_ref().map(|c| c.digest)
            && self.client.as_ref().map(|c| c.digest) == other.client.as_ref().map(|c| c.digest)
    }
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("sni", &self.sni)
            .field("ca_certificates", &self.ca.as_ref().map(CaBundle::len))
            .field("client_cert", &self.client.is_some())
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")));
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn a_ca_bundle_and_a_client_pair_load_and_go_on_the_peer() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a");
        let tls = UpstreamTls {
            sni: None,
            ca: Some(CaBundle::load(&cert).unwrap()),
            client: Some(ClientCert::load(&cert, &key).unwrap()),
            insecure_skip_verify: false,
        };
        let mut peer = HttpPeer::new("127.0.0.1:443", true, tls.sni_for("orders.internal").to_string());
        tls.apply(&mut peer);
        assert_eq!(peer.sni, "orders.internal");
        assert_eq!(peer.options.ca.as_ref().map(|c| c.len()), Some(1));
        assert!(peer.client_cert_key.is_some());
        assert!(peer.options.verify_cert && peer.options.verify_hostname);
    }

    #[test]
    fn bad_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "a");
        let (_, other_key) = write_pair(dir.path(), "b");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        assert!(matches!(
            CaBundle::load(&dir.path().join("missing.pem")),
            Err(TlsFileError::Unreadable { .. })
        ));
        assert!(matches!(CaBundle::load(&key), Err(TlsFileError::NoCertificate(_))));
        assert!(matches!(
            CaBundle::load(&junk),
            Err(TlsFileError::BadCertificate { .. })
        ));
        assert!(matches!(ClientCert::load(&cert, &cert), Err(ClientCertError::Key(_))));
        assert!(matches!(ClientCert::load(&key, &key), Err(ClientCertError::Cert(_))));
        let mismatched = ClientCert::load(&cert, &other_key);
        assert!(
            mismatched.is_err(),
            "a key that does not match the certificate is refused"
        );
    }

    #[test]
    fn a_renewed_file_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = write_pair(dir.path(), "a");
        let with = |ca: CaBundle| UpstreamTls {
            sni: None,
            ca: Some(ca),
            client: None,
            insecure_skip_verify: false,
        };
        let before = with(CaBundle::load(&cert).unwrap());
        let again = with(CaBundle::load(&cert).unwrap());
        assert_eq!(before, again);
        assert_eq!(before.pool_key(), again.pool_key());
        write_pair(dir.path(), "a");
        let renewed = with(CaBundle::load(&cert).unwrap());
        assert_ne!(before, renewed);
        assert_ne!(
            before.pool_key(),
            renewed.pool_key(),
            "connections verified by the old CA are not reused"
        );
    }
}
