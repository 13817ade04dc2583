//! HTTP/2 on the HTTPS listener: a client that offers `h2` (ALPN) gets it, for the OAuth
//! endpoints and proxied routes alike; the upstream is still spoken to in HTTP/1.1, with the
//! `Host` it needs; a client that offers only HTTP/1.1 keeps it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{at, write, Gateway, Setup, SECRET};
use reqwest::blocking::Client;
use reqwest::Version;
use serde_json::Value;

fn client(cert_pem: &str, http2: bool) -> Client {
    let ca = reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
    let b = Client::builder()
        .add_root_certificate(ca)
        .https_only(true)
        .timeout(Duration::from_secs(30));
    if http2 { b } else { b.http1_only() }.build().unwrap()
}

#[test]
fn clients_that_offer_http2_get_it_end_to_end() {
    let setup = common::with_refusing_route("/down");
    let (gw, cert) = Gateway::start_tls(&setup);
    let h2 = client(&cert, true);

    let r = h2
        .post(format!("{}/oauth2/token", gw.base))
        .basic_auth("opaque-app", Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert_eq!(r.version(), Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let token: Value = r.json().unwrap();

    let r = h2
        .get(format!("{}/api/orders?id=1", gw.base))
        .bearer_auth(at(&token))
        .header("X-Client-Id", "forged")
        .header("X-Forwarded-Proto", "http")
        .send()
        .unwrap();
    assert_eq!(r.version(), Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let echo: Value = r.json().unwrap();
    assert_eq!(
        echo["x-client-id"], "opaque-app",
        "the forged copy is gone over HTTP/2 too"
    );
    assert_eq!(echo["authorization_seen"], false);
    assert_eq!(echo["path"], "/api/orders?id=1");
    assert_eq!(echo["x-forwarded-proto"], "https");
    assert_eq!(echo["x-real-ip"], "127.0.0.1");
    assert_eq!(
        echo["host"],
        format!("127.0.0.1:{}", gw.port),
        "the HTTP/1.1 upstream gets a Host from the request's authority"
    );

    // Refusals keep their answers.
    let r = h2.get(format!("{}/api/orders", gw.base)).send().unwrap();
    assert_eq!((r.version(), r.status().as_u16()), (Version::HTTP_2, 401));
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let r = h2
        .get(format!("{}/.well-known/oauth-authorization-server", gw.base))
        .send()
        .unwrap();
    assert_eq!((r.version(), r.status().as_u16()), (Version::HTTP_2, 200));
    let r = h2.get(format!("{}/oauth2/token", gw.base)).send().unwrap();
    assert_eq!((r.version(), r.status().as_u16()), (Version::HTTP_2, 405));
    let r = h2
        .post(format!("{}/oauth2/token", gw.base))
        .basic_auth("opaque-app", Some(SECRET))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 100_000])
        .send()
        .unwrap();
    assert_eq!((r.version(), r.status().as_u16()), (Version::HTTP_2, 413));
    // Later requests are served as before.
    let r = h2
        .get(format!("{}/api/orders", gw.base))
        .bearer_auth(at(&token))
        .send()
        .unwrap();
    assert_eq!((r.version(), r.status().as_u16()), (Version::HTTP_2, 200));

    // An upstream that refuses: 502 in JSON, and the error line names the request's authority.
    let r = h2.get(format!("{}/down/x?k=v", gw.base)).send().unwrap();
    assert_eq!((r.version(), r.status().as_u16()), (Version::HTTP_2, 502));
    assert_eq!(r.json::<Value>().unwrap()["error"], "bad_gateway");
    let line = format!("GET /down/x, Host: 127.0.0.1:{}", gw.port);
    gw.eventually(10, "the error line of the failed request", || gw.log().contains(&line));

    // A client that offers only HTTP/1.1 keeps it.
    let r = client(&cert, false)
        .get(format!("{}/api/orders", gw.base))
        .bearer_auth(at(&token))
        .send()
        .unwrap();
    assert_eq!((r.version(), r.status().as_u16()), (Version::HTTP_11, 200));
}

/// A renewed certificate (the files rewritten, then SIGHUP, as a certbot deploy hook does) is
/// presented on new connections without a restart; a connection that trusts only the old one
/// is then refused. A broken pair leaves the one in use.
#[test]
fn a_renewed_certificate_is_served_after_a_reload() {
    let (gw, old) = Gateway::start_tls(&Setup::default());
    let metadata = |c: &Client| {
        c.get(format!("{}/.well-known/oauth-authorization-server", gw.base))
            .send()
            .map(|r| r.status().as_u16())
    };
    assert_eq!(metadata(&client(&old, false)).unwrap(), 200);
    let hangup = || {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &gw.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    // A broken key first: refused, the certificate in use stays.
    write(&gw.dir.path().join("key.pem"), "not a key");
    hangup();
    gw.eventually(5, "the refusal logged", || {
        gw.log().contains("certificate reload (SIGHUP) refused")
    });
    assert_eq!(metadata(&client(&old, false)).unwrap(), 200);

    let (new, new_key) = common::self_signed();
    write(&gw.dir.path().join("cert.pem"), &new);
    write(&gw.dir.path().join("key.pem"), &new_key);
    hangup();
    gw.eventually(5, "the new certificate served", || {
        metadata(&client(&new, false)).is_ok_and(|s| s == 200)
    });
    assert!(
        metadata(&client(&old, false)).is_err(),
        "the old certificate is no longer presented"
    );
}

/// A config that names other certificate files is served on new connections after the reload
/// picks it up (no restart); files that do not hold a usable pair refuse the whole reload.
#[test]
fn a_config_naming_other_certificate_files_is_served_after_the_reload() {
    let (gw, old) = Gateway::start_tls(&Setup::default());
    let metadata = |c: &Client| {
        c.get(format!("{}/.well-known/oauth-authorization-server", gw.base))
            .send()
            .map(|r| r.status().as_u16())
    };
    let conf = gw.conf_path();
    let text = std::fs::read_to_string(&conf).unwrap();
    write(&gw.dir.path().join("broken.pem"), "not a certificate");
    write(
        &conf,
        &text.replace("tls_cert = \"cert.pem\"", "tls_cert = \"broken.pem\""),
    );
    gw.eventually(5, "the reload refused, naming the key", || {
        gw.log().contains("server.tls_cert")
    });
    assert_eq!(metadata(&client(&old, false)).unwrap(), 200, "the pair in use stays");

    let (new, new_key) = common::self_signed();
    write(&gw.dir.path().join("renewed-cert.pem"), &new);
    write(&gw.dir.path().join("renewed-key.pem"), &new_key);
    write(
        &conf,
        &text
            .replace("tls_cert = \"cert.pem\"", "tls_cert = \"renewed-cert.pem\"")
            .replace("tls_key = \"key.pem\"", "tls_key = \"renewed-key.pem\""),
    );
    gw.eventually(5, "the new files' certificate served", || {
        metadata(&client(&new, false)).is_ok_and(|s| s == 200)
    });
    assert!(
        metadata(&client(&old, false)).is_err(),
        "the old certificate is no longer presented"
    );
    assert!(
        !gw.log()
            .contains("server.tls_cert/tls_key changed; this needs a restart"),
        "no restart asked for: {}",
        gw.log()
    );
}
