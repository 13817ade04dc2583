//! Writes DPoP proofs for the load harness (`benches/load/dpop.sh`), one per line, each with its
//! own `jti`: a proof is accepted once, so a load of N requests needs N proofs made in advance.
//!
//!     dpop_proofs KEY.pem METHOD URL COUNT [ACCESS_TOKEN]
//!
//! KEY.pem is an ES256 key (generated there when absent). With ACCESS_TOKEN the proofs name it
//! (`ath`), as proofs for the gateway's routes must.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufWriter, Write};
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokengate::domain::format::JwtAlgorithm;
use tokengate::tokens::jwt::JwtSigner;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, key, method, url, count, rest @ ..] = args.as_slice() else {
        eprintln!("usage: dpop_proofs KEY.pem METHOD URL COUNT [ACCESS_TOKEN]");
        std::process::exit(2);
    };
    let signer = JwtSigner::load_or_generate(Path::new(key), JwtAlgorithm::ES256).expect("key");
    let encoding = EncodingKey::from_ec_pem(&std::fs::read(key).expect("key file")).expect("ES256 key");
    let mut jwk = signer.jwk().clone();
    for m in ["kid", "alg", "use"] {
        jwk.as_object_mut().expect("object").remove(m);
    }
    let header = B64.encode(json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}).to_string());
    let ath = rest.first().map(|t| B64.encode(Sha256::digest(t.as_bytes())));
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // Each call's proofs have ids of their own: a proof's id is accepted once per key.
    let run: u64 = rand::random();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for n in 0..count.parse::<u64>().expect("COUNT") {
        let mut claims = json!({"jti": format!("{run:x}-{n}"), "htm": method, "htu": url, "iat": iat});
        if let Some(ath) = &ath {
            claims["ath"] = ath.clone().into();
        }
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &encoding, Algorithm::ES256).expect("signature");
        writeln!(out, "{input}.{sig}").expect("write");
    }
}
