//! The crate's one error type.

/// Everything that can go wrong in hearth-client. Variants never carry secret material, nor
/// the values that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum E2eError {
    /// A public or private key (JWK or scalar) is not a valid P-256 key in the expected shape.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// An encrypted value is not `v1.<b64url nonce>.<b64url ciphertext‖tag>` with a 12-byte
    /// nonce and at least a 16-byte tag.
    #[error("malformed encrypted value: {0}")]
    Malformed(&'static str),
    /// An encrypted value did not decrypt: another key, another conversation, sender or
    /// recipient, or tampered bytes.
    #[error("encrypted value could not be decrypted")]
    Decrypt,
    /// A message decrypted, but its plaintext is not UTF-8 text.
    #[error("decrypted message is not UTF-8 text")]
    NotText,
    /// A conversation key has no signature, or one that does not verify under its owner's
    /// identity for that user and conversation.
    #[error("the key's signature is missing or does not verify")]
    Signature,
    /// An argument cannot be encrypted as given (a time or counter beyond 2^53 − 1).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The plaintext is longer than AES-GCM can encrypt under one nonce (64 GiB).
    #[error("plaintext is too long to encrypt")]
    TooLong,
}
