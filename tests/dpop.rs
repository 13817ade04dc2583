//! DPoP (RFC 9449) end to end: tokens bound at the token endpoint, proofs checked on every
//! proxied request, a Python client built on PyJWT and `cryptography`, and hostile proofs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::{at, Gateway, Setup, SECRET, SECRET_SHA256};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokengate::domain::format::JwtAlgorithm;
use tokengate::oauth::dpop_client::{ProofClaims, ProofKey};

/// A client's DPoP key ([`ProofKey`]), with the test's own RFC 7638 thumbprint to check the
/// gateway's against.
struct Prover {
    key: ProofKey,
}

impl Prover {
    fn new(alg: JwtAlgorithm) -> Prover {
        Prover {
            key: ProofKey::generate(alg).unwrap(),
        }
    }

    fn sign(&self, claims: Value) -> String {
        self.key.sign(&self.key.header(), &claims).unwrap()
    }

    /// A fresh proof for `method` on `url`, naming `token` when given.
    fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        self.proof_with(method, url, token, None)
    }

    /// The same, carrying a server nonce when given.
    fn proof_with(&self, method: &str, url: &str, token: Option<&str>, nonce: Option<&str>) -> String {
        let jti = uuid_like();
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = ProofClaims {
            method,
            url,
            iat,
            jti: &jti,
            access_token: token,
            nonce,
        };
        self.key.proof(&claims).unwrap()
    }

    /// The RFC 7638 thumbprint of the key, as `jkt`.
    fn jkt(&self) -> String {
        let members: &[&str] = match self.key.public_jwk()["kty"].as_str().unwrap() {
            "EC" => &["crv", "kty", "x", "y"],
            "RSA" => &["e", "kty", "n"],
            _ => &["crv", "kty", "x"],
        };
        let canonical: serde_json::Map<String, Value> = members
            .iter()
            .map(|m| (m.to_string(), self.key.public_jwk()[*m].clone()))
            .collect();
        B64.encode(Sha256::digest(Value::Object(canonical).to_string().as_bytes()))
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn setup() -> Setup {
    Setup {
        oauth: String::new(),
        extra: format!(
            "[[clients]]\nid = \"must-app\"\nsecret_sha256 = \"{SECRET_SHA256}\"\ntoken_type = \"opaque\"\n\
             grant_types = [\"client_credentials\"]\nscopes = [\"a\"]\ndpop = \"required\"\n"
        ),
    }
}

fn token_url(gw: &Gateway) -> String {
    format!("{}/oauth2/token", gw.base)
}

/// A token request with an optional proof.
fn token(gw: &Gateway, client: &str, form: &[(&str, &str)], proof: Option<&str>) -> (u16, Value) {
    let mut req = gw.http.post(token_url(gw)).basic_auth(client, Some(SECRET)).form(form);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let r = req.send().unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

fn cc(gw: &Gateway, client: &str, prover: Option<&Prover>) -> (u16, Value) {
    let proof = prover.map(|p| p.proof("POST", &token_url(gw), None));
    token(gw, client, &[("grant_type", "client_credentials")], proof.as_deref())
}

/// GET /api/x with `Authorization: <scheme> <token>` and the given proof; status and challenge.
fn call(gw: &Gateway, scheme: &str, token: &str, proof: Option<&str>) -> (u16, String) {
    let mut req = gw
        .http
        .get(format!("{}/api/x", gw.base))
        .header("Authorization", format!("{scheme} {token}"));
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let r = req.send().unwrap();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), challenge)
}

fn api_url(gw: &Gateway) -> String {
    format!("{}/api/x", gw.base)
}

#[test]
fn a_bound_token_passes_only_with_a_fresh_proof_of_its_key() {
    let gw = Gateway::start(setup());
    let key = Prover::new(JwtAlgorithm::ES256);
    let (status, body) = cc(&gw, "jwt-app", Some(&key));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let t = at(&body).to_string();
    let payload: Value = serde_json::from_slice(&B64.decode(t.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(
        payload["cnf"]["jkt"],
        key.jkt(),
        "JWT cnf.jkt is the key's RFC 7638 thumbprint"
    );
    let info = gw.introspect("jwt-app", &t);
    assert_eq!(info["cnf"]["jkt"], key.jkt());
    assert_eq!(info["token_type"], "DPoP");

    let proof = key.proof("GET", &api_url(&gw), Some(&t));
    assert_eq!(call(&gw, "DPoP", &t, Some(&proof)).0, 200);
    let (status, challenge) = call(&gw, "DPoP", &t, Some(&proof));
    assert_eq!(status, 401, "a replayed proof");
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");

    let (status, challenge) = call(&gw, "Bearer", &t, None);
    assert_eq!(status, 401, "a bound token sent as a bearer token");
    assert!(challenge.starts_with("DPoP "), "{challenge}");

    let other = Prover::new(JwtAlgorithm::ES256);
    let url = api_url(&gw);
    let hostile = [
        ("no proof", None),
        ("another key", Some(other.proof("GET", &url, Some(&t)))),
        ("another token", Some(key.proof("GET", &url, Some("another-token")))),
        ("no ath", Some(key.proof("GET", &url, None))),
        ("wrong htm", Some(key.proof("POST", &url, Some(&t)))),
        (
            "wrong htu",
            Some(key.proof("GET", &format!("{}/api/y", gw.base), Some(&t))),
        ),
    ];
    for (what, proof) in hostile {
        let (status, challenge) = call(&gw, "DPoP", &t, proof.as_deref());
        assert_eq!(status, 401, "{what}");
        assert!(challenge.contains("invalid_dpop_proof"), "{what}: {challenge}");
    }
    // A bearer token presented with the DPoP scheme.
    let bearer = at(&gw.cc("other-app")).to_string();
    let proof = key.proof("GET", &url, Some(&bearer));
    assert_eq!(call(&gw, "DPoP", &bearer, Some(&proof)).0, 401);
    assert_eq!(call(&gw, "Bearer", &bearer, None).0, 200, "bearer tokens are as before");
}

#[test]
fn every_proof_algorithm_binds() {
    let gw = Gateway::start(setup());
    for alg in [JwtAlgorithm::EdDSA, JwtAlgorithm::RS256] {
        let key = Prover::new(alg);
        let (status, body) = cc(&gw, "opaque-app", Some(&key));
        assert_eq!(status, 200, "{alg:?}: {body}");
        let t = at(&body).to_string();
        let proof = key.proof("GET", &api_url(&gw), Some(&t));
        assert_eq!(call(&gw, "DPoP", &t, Some(&proof)).0, 200, "{alg:?}");
    }
}

#[test]
fn hostile_proofs_at_the_token_endpoint_are_invalid_dpop_proof() {
    let gw = Gateway::start(setup());
    let key = Prover::new(JwtAlgorithm::ES256);
    let url = token_url(&gw);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let replayed = key.proof("POST", &url, None);
    assert_eq!(
        token(&gw, "jwt-app", &[("grant_type", "client_credentials")], Some(&replayed)).0,
        200
    );
    let mut private = key.key.public_jwk().clone();
    private["d"] = "c2VjcmV0".into();
    let none = format!(
        "{}.{}.",
        B64.encode(json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.key.public_jwk()}).to_string()),
        B64.encode(json!({"jti": "n1", "htm": "POST", "htu": url, "iat": now}).to_string())
    );
    let with_private = {
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private});
        let claims = json!({"jti": "p1", "htm": "POST", "htu": url, "iat": now});
        key.key.sign(&header, &claims).unwrap()
    };
    let cases = [
        ("replayed", replayed),
        (
            "stale iat",
            key.sign(json!({"jti": "s1", "htm": "POST", "htu": url, "iat": now - 600})),
        ),
        ("wrong htm", key.proof("GET", &url, None)),
        (
            "wrong htu",
            key.proof("POST", &format!("{}/oauth2/revoke", gw.base), None),
        ),
        ("alg none", none),
        ("a private key in jwk", with_private),
        ("not a JWT", "abc.def".into()),
    ];
    for (what, proof) in cases {
        let (status, body) = token(&gw, "jwt-app", &[("grant_type", "client_credentials")], Some(&proof));
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_dpop_proof", "{what}");
    }
}

#[test]
fn a_client_may_be_required_to_use_dpop() {
    let gw = Gateway::start(setup());
    let (status, body) = cc(&gw, "must-app", None);
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")));
    let key = Prover::new(JwtAlgorithm::ES256);
    let (status, body) = cc(&gw, "must-app", Some(&key));
    assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")));
    let metadata = gw.metadata();
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "RS256", "PS256"])
    );
}

#[test]
fn the_dpop_key_is_part_of_the_renewal_key() {
    let gw = Gateway::start(setup());
    let (a, b) = (Prover::new(JwtAlgorithm::ES256), Prover::new(JwtAlgorithm::ES256));
    let first = at(&cc(&gw, "opaque-app", Some(&a)).1).to_string();
    assert_eq!(
        at(&cc(&gw, "opaque-app", Some(&a)).1),
        first,
        "opaque single mode: the same token"
    );
    assert_ne!(
        at(&cc(&gw, "opaque-app", Some(&b)).1),
        first,
        "never handed to another key"
    );
    assert_ne!(at(&cc(&gw, "opaque-app", None).1), first, "nor to a bearer request");
}

#[test]
fn a_refresh_needs_a_proof_of_the_grants_key() {
    let gw = Gateway::start(setup());
    let key = Prover::new(JwtAlgorithm::ES256);
    let url = token_url(&gw);
    let password = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "alice-password"),
    ];
    let (status, body) = token(&gw, "jwt-app", &password, Some(&key.proof("POST", &url, None)));
    assert_eq!(status, 200, "{body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    let other = Prover::new(JwtAlgorithm::ES256);
    for (what, proof) in [
        ("no proof", None),
        ("another key", Some(other.proof("POST", &url, None))),
    ] {
        let (status, body) = token(&gw, "jwt-app", &form, proof.as_deref());
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_dpop_proof")),
            "{what}"
        );
    }
    let (status, body) = token(&gw, "jwt-app", &form, Some(&key.proof("POST", &url, None)));
    assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
}

/// A client written in Python with PyJWT and `cryptography`: it makes its own key, asks for a
/// bound token and calls the API with a proof, as a real DPoP client would.
#[test]
fn a_python_client_gets_and_uses_a_bound_token() {
    let gw = Gateway::start(setup());
    let script = r#"
import base64, hashlib, json, sys, time, uuid, urllib.request
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

base, client, secret = sys.argv[1:4]
key = ec.generate_private_key(ec.SECP256R1())
jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))

def proof(method, url, token=None):
    claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time())}
    if token:
        claims["ath"] = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
    return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": jwk})

basic = base64.b64encode(f"{client}:{secret}".encode()).decode()
req = urllib.request.Request(base + "/oauth2/token", data=b"grant_type=client_credentials",
    headers={"Authorization": "Basic " + basic, "DPoP": proof("POST", base + "/oauth2/token"),
             "Content-Type": "application/x-www-form-urlencoded"})
answer = json.load(urllib.request.urlopen(req))
token = answer["access_token"]
api = urllib.request.Request(base + "/api/x",
    headers={"Authorization": "DPoP " + token, "DPoP": proof("GET", base + "/api/x", token)})
status = urllib.request.urlopen(api).status
print(answer["token_type"], status)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &gw.base, "jwt-app", SECRET])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "PyJWT and cryptography are needed (scripts/test.sh installs them): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "DPoP 200");
}

/// Cluster mode: a proof accepted at one node is refused at another (each proof's digest is
/// recorded in the database), and a bound token issued at one node is checked at the other.
#[test]
fn a_proof_used_at_one_node_is_refused_at_another() {
    use common::cluster::{Cluster, ISSUER};
    let c = Cluster::start(2, setup());
    let (a, b) = (c.gw(0), c.gw(1));
    let key = Prover::new(JwtAlgorithm::ES256);
    // Both nodes publish the shared issuer's URLs: a proof names those.
    let token_url = format!("{ISSUER}/oauth2/token");
    let issuing = key.proof("POST", &token_url, None);
    let (status, body) = token(a, "jwt-app", &[("grant_type", "client_credentials")], Some(&issuing));
    assert_eq!(status, 200, "{body}");
    let (status, body) = token(b, "jwt-app", &[("grant_type", "client_credentials")], Some(&issuing));
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "replayed at B"
    );

    let t = at(&body_of(a, &key, &token_url)).to_string();
    let api = format!("{ISSUER}/api/x");
    let proof = key.proof("GET", &api, Some(&t));
    assert_eq!(
        call(b, "DPoP", &t, Some(&proof)).0,
        200,
        "a bound token from A, checked at B"
    );
    let (status, challenge) = call(a, "DPoP", &t, Some(&proof));
    assert_eq!(status, 401, "the same proof at A");
    assert!(challenge.contains("already used"), "{challenge}");
}

/// A bound token for `key` from `gw`.
fn body_of(gw: &Gateway, key: &Prover, token_url: &str) -> Value {
    let proof = key.proof("POST", token_url, None);
    let (status, body) = token(gw, "jwt-app", &[("grant_type", "client_credentials")], Some(&proof));
    assert_eq!(status, 200, "{body}");
    body
}

/// With `oauth.dpop_nonce = true`, a proof without a current server nonce is answered
/// `use_dpop_nonce` with one in `DPoP-Nonce`, at the token endpoint (400) and at a route (401);
/// a proof that carries it passes.
#[test]
fn with_server_nonces_a_proof_must_carry_a_current_one() {
    let mut s = setup();
    s.oauth = "dpop_nonce = true".into();
    let gw = Gateway::start(s);
    let key = Prover::new(JwtAlgorithm::ES256);
    let url = token_url(&gw);
    let r = gw
        .http
        .post(&url)
        .basic_auth("jwt-app", Some(SECRET))
        .header("DPoP", key.proof("POST", &url, None))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_string();
    assert_eq!(r.json::<Value>().unwrap()["error"], "use_dpop_nonce");
    let stale = key.proof_with("POST", &url, None, Some("0.AAAAAAAAAAAAAAAAAAAAAA"));
    assert_eq!(
        token(&gw, "jwt-app", &[("grant_type", "client_credentials")], Some(&stale)).0,
        400
    );
    let proof = key.proof_with("POST", &url, None, Some(&nonce));
    let (status, body) = token(&gw, "jwt-app", &[("grant_type", "client_credentials")], Some(&proof));
    assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
    let t = at(&body).to_string();

    let api = api_url(&gw);
    let r = gw
        .http
        .get(&api)
        .header("Authorization", format!("DPoP {t}"))
        .header("DPoP", key.proof("GET", &api, Some(&t)))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("use_dpop_nonce"));
    let nonce = r.headers()["dpop-nonce"].to_str().unwrap().to_string();
    let proof = key.proof_with("GET", &api, Some(&t), Some(&nonce));
    assert_eq!(call(&gw, "DPoP", &t, Some(&proof)).0, 200);
}
