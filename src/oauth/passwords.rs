//! argon2id password hashes for resource owners (the password grant).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// An argon2id PHC string for `password` (default parameters: m=19 MiB, t=2, p=1).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string. CPU-heavy: call it off the async threads.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// Resource owners' password checks for the password grant. Each runs off the async threads
/// (argon2id takes tens of ms of one core: on a worker thread it would stall the proxied traffic
/// sharing it), at most `permits` at a time so a flood of logins cannot take all memory (~19 MiB
/// each) and cores. An unknown user is checked against a dummy hash, so it costs what a wrong
/// password costs.
pub struct PasswordChecker {
    dummy_hash: String,
    permits: Arc<Semaphore>,
}

impl PasswordChecker {
    /// A checker running at most `permits` checks at once.
    pub fn new(permits: usize) -> Result<PasswordChecker, String> {
        Ok(PasswordChecker {
            dummy_hash: hash_password(&hex::encode(rand::random::<[u8; 16]>()))?,
            permits: Arc::new(Semaphore::new(permits.max(1))),
        })
    }

    /// Whether `password` is right for a user whose hash is `known` (`None`: no such user, always
    /// false, in the same time). `None` when the check could not run.
    pub async fn verify(&self, known: Option<&str>, password: &str) -> Option<bool> {
        let hash = known.unwrap_or(&self.dummy_hash).to_string();
        let password = password.to_string();
        // The permit travels with the blocking task, so a cancelled request still holds it until
        // the check ends.
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok()?;
        let ok = tokio::task::spawn_blocking(move || {
            let ok = verify_password(&password, &hash);
            drop(permit);
            ok
        })
        .await
        .ok()?;
        Some(ok && known.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_argon2id() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("S3cret", &h));
        assert!(!verify_password("s3cret", "not a hash"));
    }

    #[tokio::test]
    async fn the_checker_refuses_unknown_users_and_wrong_passwords() {
        let checker = PasswordChecker::new(1).unwrap();
        let h = hash_password("s3cret").unwrap();
        assert_eq!(checker.verify(Some(&h), "s3cret").await, Some(true));
        assert_eq!(checker.verify(Some(&h), "wrong").await, Some(false));
        assert_eq!(checker.verify(None, "s3cret").await, Some(false));
    }
}
