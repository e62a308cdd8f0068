//! The hearth client SDK.
//!
//! For now it holds the end-to-end encryption of DESIGN.md §6 ([`e2e`]): key derivation from
//! the password, per-conversation key pairs wrapped under a key that never leaves the device,
//! and pairwise encrypted messages. The web client (`web/js/e2e.js`) implements the same
//! scheme byte for byte; `clients/e2e-vectors.json` holds the vectors both test suites check,
//! and `tests/cross.rs` runs the two against each other.

pub mod e2e;

pub use e2e::E2eError;
