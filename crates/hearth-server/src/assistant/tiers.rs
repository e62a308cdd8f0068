//! The keys a turn is answered with, in order, for text and images alike: the one place the
//! tiers are decided.
//!
//! 1. Keys given with the request: they alone, with no allowance spent.
//! 2. Else the person's stored keys, oldest first, with no allowance spent. A request the
//!    provider calls wrong ends the turn here: the free tier would refuse it too.
//! 3. Else, or when none of them answered, the free tier: the operator's keys (held by the
//!    keyguard), then the pool's stored keys; it spends one unit of the day's allowance, given
//!    back when no provider answered.
//!
//! Within one tier the keyguard's router tries the keys by provider, in `ai.order`, and one
//! provider's keys in the order given here. For images only keys of providers that make images
//! count.

use std::future::Future;

use hearth_ai::{Answer, Attempt, AttemptOutcome, FailureClass, KeyHolder, ProviderName, TurnFailure, TurnFailureKind};
use hearth_keyguard::{ImageAnswer, KeyRef, KeyguardError};
use hearth_store::{AllowanceKind, KeyOwner, StoredProviderKey, Timestamp};
use uuid::Uuid;

use super::keys::StoredRefs;
use super::{Assistant, Refusal};

impl Assistant {
    /// Answers with the tiers in turn, asking the keyguard through `ask` with each tier's keys.
    /// Returns the answer and, when the free tier answered, the UTC day whose allowance it
    /// took (a caller that fails afterwards gives it back). Every attempt is appended to
    /// `attempts`, whatever the outcome.
    pub(super) async fn in_turn<T, F, Fut>(
        &self,
        user_id: Uuid,
        given: &[KeyRef],
        kind: AllowanceKind,
        asked_at: Timestamp,
        attempts: &mut Vec<Attempt>,
        ask: F,
    ) -> Result<(T, Option<String>), Refusal>
    where
        T: Attempted,
        F: Fn(Vec<KeyRef>) -> Fut,
        Fut: Future<Output = Result<Result<T, TurnFailure>, KeyguardError>>,
    {
        if !given.is_empty() {
            let outcome = ask(given.to_vec()).await?;
            return settle(outcome, attempts).map(|answer| (answer, None)).map_err(Refusal::Failed);
        }
        let own = self.stored_for(KeyOwner::User(user_id), kind).await?;
        if !own.is_empty() {
            let outcome = ask(own.refs).await?;
            self.keys.record_outcomes(&own.rows, outcome_attempts(&outcome)).await;
            match settle(outcome, attempts) {
                Ok(answer) => return Ok((answer, None)),
                Err(failure) if matches!(failure.kind, TurnFailureKind::BadRequest { .. }) => {
                    return Err(Refusal::Failed(failure));
                }
                Err(_) => tracing::info!(user = %user_id, "no stored key answered; trying the free tier"),
            }
        }
        let pool = self.stored_for(KeyOwner::Pool, kind).await?;
        let operator = self.keys.free_tier().await?.iter().any(|(provider, _)| serves(kind, *provider));
        if pool.is_empty() && !operator {
            let kind = if attempts.is_empty() { TurnFailureKind::NoKeys } else { TurnFailureKind::AllFailed };
            return Err(Refusal::Failed(TurnFailure { kind, attempts: attempts.clone() }));
        }
        let day = self.take_allowance(user_id, kind, asked_at).await?;
        let mut refs = vec![KeyRef::FreeTier];
        refs.extend(pool.refs);
        let outcome = ask(refs).await;
        if let Ok(outcome) = &outcome {
            self.keys.record_outcomes(&pool.rows, outcome_attempts(outcome)).await;
            self.warn_of_refused_server_keys(&pool.rows, outcome_attempts(outcome)).await;
        }
        let result =
            outcome.map_err(Refusal::from).and_then(|outcome| settle(outcome, attempts).map_err(Refusal::Failed));
        match result {
            Ok(answer) => Ok((answer, Some(day))),
            Err(refusal) => {
                self.store.refund_allowance(user_id, &day, kind).await?;
                Err(refusal)
            }
        }
    }

    /// Tells the operator, at WARN, of each free-tier key its provider refused as invalid in
    /// `attempts`: which provider, which key (its place in the settings or its pool row, and
    /// its fingerprint; never the key) and what to do. People are told in their reply.
    async fn warn_of_refused_server_keys(&self, pool: &[StoredProviderKey], attempts: &[Attempt]) {
        let refused = attempts.iter().filter(|attempt| {
            attempt.holder.is_server() && attempt.outcome == AttemptOutcome::Failed(FailureClass::InvalidKey)
        });
        for attempt in refused {
            let (provider, fingerprint) = (attempt.provider, attempt.key);
            if attempt.holder == KeyHolder::Pool {
                let id = pool.iter().find(|row| row.fingerprint == fingerprint.to_string()).map(|row| row.id);
                tracing::warn!(
                    %provider, key = %fingerprint, pool_key = ?id,
                    "a {provider} key of the free tier's pool was refused by {provider} as invalid; people without \
                     keys are told the server's key was refused: add a working one with /set_default_api_key \
                     {provider}"
                );
                continue;
            }
            let operator = self.keys.free_tier().await.unwrap_or_default();
            let place = operator
                .iter()
                .filter(|(p, _)| *p == provider)
                .position(|(_, key)| *key == fingerprint)
                .map_or_else(|| "?".to_owned(), |index| (index + 1).to_string());
            tracing::warn!(
                %provider, key = %fingerprint,
                "the free tier's {provider} key number {place} in keyguard.free_tier.keys.{provider} was refused by \
                 {provider} as invalid; people without keys are told the server's key was refused: replace or \
                 remove it in the keyguard's settings"
            );
        }
    }

    /// `owner`'s stored keys that can serve a turn of `kind`.
    async fn stored_for(&self, owner: KeyOwner, kind: AllowanceKind) -> Result<StoredRefs, Refusal> {
        let stored = self.keys.stored_refs(owner).await?;
        Ok(match kind {
            AllowanceKind::Text => stored,
            AllowanceKind::Image => stored.making_images(),
        })
    }
}

/// Whether `provider`'s keys can serve a turn of `kind`.
fn serves(kind: AllowanceKind, provider: ProviderName) -> bool {
    match kind {
        AllowanceKind::Text => true,
        AllowanceKind::Image => provider.makes_images(),
    }
}

/// A provider call's outcome: its attempts, answered or not.
pub(super) trait Attempted {
    fn attempts(&self) -> &[Attempt];
}

impl Attempted for Answer {
    fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }
}

impl Attempted for ImageAnswer {
    fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }
}

/// The answer, or the failure; either way its attempts join `attempts` (a failure then carries
/// the whole turn's).
fn settle<T: Attempted>(outcome: Result<T, TurnFailure>, attempts: &mut Vec<Attempt>) -> Result<T, TurnFailure> {
    match outcome {
        Ok(answer) => {
            attempts.extend(answer.attempts().iter().cloned());
            Ok(answer)
        }
        Err(mut failure) => {
            attempts.append(&mut failure.attempts);
            failure.attempts = attempts.clone();
            Err(failure)
        }
    }
}

/// The attempts of an outcome, answered or not.
fn outcome_attempts<T: Attempted>(outcome: &Result<T, TurnFailure>) -> &[Attempt] {
    match outcome {
        Ok(answer) => answer.attempts(),
        Err(failure) => &failure.attempts,
    }
}
