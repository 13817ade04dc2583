//! A steady load on a running gateway, for tests of what must not fail under traffic: threads
//! that request a token and call a bearer route with it, again and again, and count every
//! answer that is not a 2xx and every connection error.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::Value;

use super::SECRET;

/// An HTTP/1.1 client; with `pems`, over HTTPS only, trusting those certificates. `reuse`:
/// keep-alive, one connection at a time (else a new connection per request).
pub fn client(pems: &[&str], reuse: bool) -> Client {
    let mut b = Client::builder().http1_only().timeout(Duration::from_secs(120));
    if !pems.is_empty() {
        b = b.https_only(true);
    }
    for pem in pems {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    b = if reuse {
        b.pool_max_idle_per_host(1)
    } else {
        b.pool_max_idle_per_host(0)
    };
    b.build().unwrap()
}

/// A client over HTTPS trusting the certificates `pems` that offers HTTP/2 (ALPN): one
/// connection, many streams.
pub fn client_h2(pems: &[&str]) -> Client {
    let mut b = Client::builder().https_only(true).timeout(Duration::from_secs(120));
    for pem in pems {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// What the load saw.
#[derive(Default)]
pub struct Tally {
    pub ok: AtomicU64,
    pub failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }

    /// Waits until `more` requests succeeded after this call (the load goes on through a step);
    /// panics with the failures when it does not within two minutes.
    pub fn wait_for_more(&self, more: u64, step: &str) {
        let target = self.ok.load(Ordering::SeqCst) + more;
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.ok.load(Ordering::SeqCst) < target {
            assert!(
                Instant::now() < deadline,
                "the load made no progress {step}; failures: {:?}",
                self.failures.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// One load client of [`Load`].
pub struct LoadClient {
    pub client_id: &'static str,
    /// Its own scope, so its key is its own: single mode revokes only its earlier token.
    pub scope: &'static str,
    pub http: Client,
}

/// Load threads running until [`Load::stop`].
pub struct Load {
    stop: Arc<AtomicBool>,
    pub tally: Arc<Tally>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// A thread per client, each requesting a token at `base` and calling `/api/load` with it.
    pub fn start(base: &str, clients: Vec<LoadClient>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let threads = clients
            .into_iter()
            .map(|c| {
                let (base, stop, tally) = (base.to_string(), stop.clone(), tally.clone());
                std::thread::spawn(move || run(&base, &c, &stop, &tally))
            })
            .collect();
        Load { stop, tally, threads }
    }

    /// Stops the threads; returns the failures and the count of good answers.
    pub fn stop(self) -> (Vec<String>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let failures = std::mem::take(&mut *self.tally.failures.lock().unwrap());
        (failures, self.tally.ok.load(Ordering::SeqCst))
    }
}

fn run(base: &str, c: &LoadClient, stop: &AtomicBool, tally: &Tally) {
    let who = format!("{} ({})", c.client_id, c.scope);
    while !stop.load(Ordering::SeqCst) {
        let answer = c
            .http
            .post(format!("{base}/oauth2/token"))
            .basic_auth(c.client_id, Some(SECRET))
            .form(&[("grant_type", "client_credentials"), ("scope", c.scope)])
            .send();
        let token = match answer.map(|r| (r.status(), r.json::<Value>())) {
            Ok((status, Ok(v))) if status == 200 => v["access_token"].as_str().unwrap().to_string(),
            Ok((status, body)) => {
                tally.fail(format!("token request of {who}: {status} {body:?}"));
                continue;
            }
            Err(e) => {
                tally.fail(format!("token request of {who}: {e:?}"));
                continue;
            }
        };
        tally.ok.fetch_add(1, Ordering::SeqCst);
        let answer = c.http.get(format!("{base}/api/load")).bearer_auth(&token).send();
        match answer.map(|r| (r.status(), r.bytes())) {
            Ok((status, Ok(_))) if status == 200 => {
                tally.ok.fetch_add(1, Ordering::SeqCst);
            }
            Ok((status, body)) => tally.fail(format!("api call of {who}: {status} {body:?}")),
            Err(e) => tally.fail(format!("api call of {who}: {e:?}")),
        }
    }
}
