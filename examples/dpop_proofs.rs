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

use tokengate::domain::format::JwtAlgorithm;
use tokengate::oauth::dpop_client::{ProofClaims, ProofKey};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, key, method, url, count, rest @ ..] = args.as_slice() else {
        eprintln!("usage: dpop_proofs KEY.pem METHOD URL COUNT [ACCESS_TOKEN]");
        std::process::exit(2);
    };
    let key = ProofKey::load_or_generate(Path::new(key), JwtAlgorithm::ES256).expect("ES256 key");
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // Each call's proofs have ids of their own: a proof's id is accepted once per key.
    let run: u64 = rand::random();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for n in 0..count.parse::<u64>().expect("COUNT") {
        let jti = format!("{run:x}-{n}");
        let claims = ProofClaims {
            method,
            url,
            iat,
            jti: &jti,
            access_token: rest.first().map(String::as_str),
            nonce: None,
        };
        writeln!(out, "{}", key.proof(&claims).expect("signature")).expect("write");
    }
}
