//! Password hashing on a bounded pool of blocking threads.
//!
//! Argon2id takes tens of milliseconds of CPU and 19 MiB per hash. Running it on the async
//! executor would stall every other request; running unboundedly many at once would use
//! unbounded memory. So each hash waits for one of N permits (N = cores by default) and
//! then runs on tokio's blocking pool.

use std::sync::Arc;

use hearth_vault::{PasswordHasher, PasswordParams, VaultError};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Hashes and verifies passwords without blocking the event loop.
#[derive(Debug, Clone)]
pub struct PasswordPool {
    hasher: Arc<PasswordHasher>,
    permits: Arc<Semaphore>,
}

impl PasswordPool {
    /// A pool running at most `threads` hashes at once (0: one per core).
    pub fn new(params: PasswordParams, threads: usize) -> Result<Self, VaultError> {
        let threads = if threads == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { threads };
        Ok(Self { hasher: Arc::new(PasswordHasher::new(params)?), permits: Arc::new(Semaphore::new(threads)) })
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, VaultError> {
        self.run(move |hasher| hasher.hash(&password)).await
    }

    /// Checks a password against the stored hash, or — when there is no account — spends
    /// the same time on a decoy and fails.
    pub async fn verify(&self, password: Zeroizing<String>, stored: Option<String>) -> bool {
        self.run(move |hasher| match stored {
            Some(stored) => hasher.verify(&password, &stored),
            None => hasher.verify_decoy(&password),
        })
        .await
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce(&PasswordHasher) -> T + Send + 'static) -> T {
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        let hasher = Arc::clone(&self.hasher);
        tokio::task::spawn_blocking(move || work(&hasher)).await.expect("password hashing does not panic")
    }
}
