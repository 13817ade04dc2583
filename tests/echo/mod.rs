//! Upstreams that say which server answered: a plain HTTP/1.1 one that can be killed (its port then
//! refuses connections and its open connections close) and started again on the same port, and an
//! HTTPS one with a certificate from a CA made at test time.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Reads one request head; `None` when the connection ends first.
fn read_head(stream: &mut impl Read) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// The answer to `head` from the server `name`: 200 with its name as the body.
fn answer(name: &str, head: &str) -> String {
    let path = head.split(' ').nth(1).unwrap_or("/");
    let body = if path == "/healthz" { "ok" } else { name };
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Server: {name}\r\n\r\n{body}",
        body.len()
    )
}

/// A held-back answer: requests for a path ending in `/slow` wait until [`Gate::open`].
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
    /// Requests waiting at the gate.
    waiting: Mutex<usize>,
}

impl Gate {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }

    pub fn waiting(&self) -> usize {
        *self.waiting.lock().unwrap()
    }

    fn pass(&self) {
        *self.waiting.lock().unwrap() += 1;
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.changed.wait(open).unwrap();
        }
    }
}

/// A plain HTTP/1.1 upstream named `name`, keep-alive, that can be killed and restarted.
pub struct Echo {
    pub name: String,
    pub addr: SocketAddr,
    pub gate: Arc<Gate>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Echo {
    pub fn start(name: &str) -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut echo = Echo {
            name: name.to_string(),
            addr: listener.local_addr().unwrap(),
            gate: Arc::new(Gate::default()),
            stop: Arc::new(AtomicBool::new(false)),
            conns: Arc::default(),
            acceptor: None,
        };
        echo.serve(listener);
        echo
    }

    fn serve(&mut self, listener: TcpListener) {
        let (name, stop, conns, gate) = (
            self.name.clone(),
            Arc::clone(&self.stop),
            Arc::clone(&self.conns),
            Arc::clone(&self.gate),
        );
        self.acceptor = Some(std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                conns.lock().unwrap().push(stream.try_clone().unwrap());
                let (name, gate) = (name.clone(), Arc::clone(&gate));
                std::thread::spawn(move || {
                    while let Some(head) = read_head(&mut stream) {
                        if head.split(' ').nth(1).is_some_and(|p| p.ends_with("/slow")) {
                            gate.pass();
                        }
                        if stream.write_all(answer(&name, &head).as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        }));
    }

    /// Closes the listener (the port refuses connections from now on) and every open connection.
    pub fn kill(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked accept, which then sees `stop` and drops the listener.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.join().unwrap();
        }
        for conn in self.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    /// Listens on the same port again.
    pub fn restart(&mut self) {
        self.stop.store(false, Ordering::SeqCst);
        let listener = TcpListener::bind(self.addr).unwrap();
        self.serve(listener);
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.kill();
        }
    }
}

/// A CA made at test time, and certificates it signs.
pub struct TestCa {
    pub pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            pem,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (host names or IP addresses), for a server or a client: (cert PEM,
    /// key PEM).
    pub fn issue(&self, names: &[&str], client: bool) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
        params.use_authority_key_identifier_extension = true;
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// An HTTPS upstream named `name` with the certificate `cert`/`key` (PEM); with `client_ca`, it
/// asks for a client certificate that CA signed and refuses connections without one.
pub fn tls_echo(name: &str, cert: &str, key: &str, client_ca: Option<&str>) -> SocketAddr {
    use pingora::tls::{CertificateDer, PrivateKeyDer, RootCertStore, ServerConfig, TlsAcceptor, WebPkiClientVerifier};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pingora::tls::install_default_crypto_provider();
    let certs: Vec<CertificateDer<'static>> = pem::parse_many(cert)
        .unwrap()
        .into_iter()
        .map(|p| CertificateDer::from(p.into_contents()))
        .collect();
    let key = PrivateKeyDer::try_from(pem::parse(key).unwrap().into_contents()).unwrap();
    let builder = ServerConfig::builder();
    let config = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots
                .add(CertificateDer::from(pem::parse(ca).unwrap().into_contents()))
                .unwrap();
            builder.with_client_cert_verifier(WebPkiClientVerifier::builder(Arc::new(roots)).build().unwrap())
        }
    }
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let name = name.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, name) = (acceptor.clone(), name.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    loop {
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            if tls.read(&mut byte).await.map_or(true, |n| n == 0) {
                                return;
                            }
                            head.push(byte[0]);
                        }
                        let reply = answer(&name, &String::from_utf8_lossy(&head));
                        if tls.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    });
    addr
}
