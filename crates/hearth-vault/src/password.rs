//! Password hashing with Argon2id.
//!
//! Hashing is deliberately slow (OWASP: 19 MiB, 2 passes, 1 lane) and CPU-bound, so
//! callers must run it off the async executor; the server does so on a bounded pool.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::VaultError;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism.
    pub parallelism: u32,
}

impl Default for PasswordParams {
    /// OWASP's recommended minimum for Argon2id: m=19456 KiB, t=2, p=1.
    fn default() -> Self {
        Self { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

/// Hashes and verifies passwords with fixed Argon2id parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    /// A hash of a random password, verified against when an account does not exist so
    /// that an unknown email costs the same time as a wrong password.
    decoy: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("params", self.argon2.params()).finish()
    }
}

impl PasswordHasher {
    /// Builds a hasher; computes the decoy hash once (costs one hash).
    pub fn new(params: PasswordParams) -> Result<Self, VaultError> {
        let params = Params::new(params.memory_kib, params.iterations, params.parallelism, None)
            .map_err(|_| VaultError::InvalidKey("argon2 parameters out of range"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let decoy_password = crate::RandomToken::generate();
        let decoy = hash_with(&argon2, decoy_password.expose())?;
        Ok(Self { argon2, decoy })
    }

    /// Hashes a password into a PHC string (algorithm, parameters, salt and hash).
    pub fn hash(&self, password: &str) -> Result<String, VaultError> {
        hash_with(&self.argon2, password)
    }

    /// Checks a password against a stored PHC string. A malformed stored hash is a mismatch.
    pub fn verify(&self, password: &str, stored: &str) -> bool {
        match PasswordHash::new(stored) {
            Ok(parsed) => self.argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        }
    }

    /// Spends the same work as [`verify`](Self::verify) and always fails: used when the
    /// account does not exist, so that timing does not reveal it.
    pub fn verify_decoy(&self, password: &str) -> bool {
        let _ = self.verify(password, &self.decoy);
        false
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &str) -> Result<String, VaultError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2.hash_password(password.as_bytes(), &salt).map(|hash| hash.to_string()).map_err(|_| VaultError::Hashing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(PasswordParams { memory_kib: 64, iterations: 1, parallelism: 1 }).expect("params")
    }

    #[test]
    fn verifies_the_right_password_only() {
        let hasher = cheap();
        let stored = hasher.hash("correct horse").expect("hash");
        assert!(stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(hasher.verify("correct horse", &stored));
        assert!(!hasher.verify("correct horsf", &stored));
        assert!(!hasher.verify("correct horse", "not a phc string"));
    }

    #[test]
    fn decoy_never_matches() {
        let hasher = cheap();
        assert!(!hasher.verify_decoy("anything"));
    }

    #[test]
    fn default_parameters_are_owasp() {
        let p = PasswordParams::default();
        assert_eq!((p.memory_kib, p.iterations, p.parallelism), (19456, 2, 1));
    }
}
