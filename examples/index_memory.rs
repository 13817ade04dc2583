//! Resident memory of the token index with 1,000,000 active tokens, as the engine holds them
//! (the id map, the per-key state and the records), and the lookup time at that size.
//!
//!     cargo run --release --example index_memory -- [KEYS]     (default 1000000: one token per key)

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use tokengate::oauth::grant_type::GrantType;
use tokengate::tokens::format::TokenFormat;
use tokengate::tokens::index::{KeySlot, TokenIndex};
use tokengate::tokens::key::ScopeSet;
use tokengate::tokens::opaque::{OpaqueCodec, OpaqueKind};
use tokengate::tokens::record::{now_ms, AccessRecord, AtomicState, TokenState};

/// The gateway's allocator, so the figure is the gateway's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKENS: usize = 1_000_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let keys: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(TOKENS);
    let scope = ScopeSet::parse("orders:read orders:write").unwrap_or_default();
    let codec = OpaqueCodec::new(&[7u8; 32]);
    let before = rss_kib();
    let index = TokenIndex::new();
    let mut ids = Vec::with_capacity(TOKENS);
    // As `TokenService::issue` does for a key's first token: the key (client id and scope set
    // interned), then its slot.
    let slots: Vec<Arc<KeySlot>> = (0..keys)
        .map(|k| {
            index.key_slot(index.key(
                &format!("client-{}", k % 1000),
                &format!("user-{k}"),
                &scope,
                &Default::default(),
            ))
        })
        .collect();
    let start = Instant::now();
    {
        let now = now_ms();
        for i in 0..TOKENS {
            let slot = &slots[i % keys];
            let (id, _) = codec.mint(OpaqueKind::Access);
            let rec = Arc::new(AccessRecord {
                id,
                key: Arc::clone(slot),
                format: TokenFormat::Opaque,
                grant: GrantType::Password,
                issued_at_ms: now,
                expires_at_ms: now + 3_600_000,
                refresh: None,
                state: AtomicState::new(TokenState::Active),
                durable: AtomicBool::new(true),
            });
            index.insert_access(Arc::clone(&rec));
            slot.lock().active.push(rec);
            ids.push(id);
        }
    }
    let filled = start.elapsed();
    let after = rss_kib();
    let ids_kib = (ids.capacity() * 32) as u64 / 1024;
    let lookups = 2_000_000;
    let t = Instant::now();
    let mut found = 0;
    for i in 0..lookups {
        if index.with_access(&ids[(i * 7919) % TOKENS], |r| r.is_some()) {
            found += 1;
        }
    }
    let per_lookup = t.elapsed().as_nanos() as f64 / lookups as f64;
    // As the bearer check does: the lookup, then the record's state and expiry.
    let now = now_ms();
    let t = Instant::now();
    let mut valid = 0;
    for i in 0..lookups {
        if index.with_access(&ids[(i * 7919) % TOKENS], |r| r.is_some_and(|r| r.is_valid_at(now))) {
            valid += 1;
        }
    }
    let per_check = t.elapsed().as_nanos() as f64 / lookups as f64;
    println!(
        "{TOKENS} active tokens over {keys} keys: resident +{:.0} MiB (index, per-key state and records; \
         excluding this program's {} MiB id list), filled in {:.1} s, lookup {per_lookup:.0} ns ({found} found), lookup and validity check \
         {per_check:.0} ns ({valid} valid)",
        (after.saturating_sub(before).saturating_sub(ids_kib)) as f64 / 1024.0,
        ids_kib / 1024,
        filled.as_secs_f64()
    );
}
