//! `record_assistant_turn` on SQLite: turns that arrive while a batch is being written are
//! stored together in the next one, in one transaction on the write connection (`writer.rs`).
//! At 2 000 assistant requests a second, one transaction per turn made the writer the queue
//! every request waited in.

use std::sync::Arc;

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::writer::Writer;

use crate::group_commit::{GroupCommit, each_alone_if_the_batch_fails};
use crate::turn_batch::{MAX_TURNS_PER_BATCH, Turns};
use crate::{AssistantTurn, StoreResult};

/// Starts `record_assistant_turn`'s group commit on `writer`, the write connection's thread.
pub(super) fn start(writer: Writer) -> Turns {
    GroupCommit::start(1, MAX_TURNS_PER_BATCH, move |batch| {
        let writer = writer.clone();
        async move {
            each_alone_if_the_batch_fails(batch, |turns: Arc<[AssistantTurn]>| {
                let writer = writer.clone();
                async move { writer.run(move |database| store_turns(database, &turns)).await }
            })
            .await
        }
    })
}

fn store_turns(database: &Connection, turns: &[AssistantTurn]) -> StoreResult<Vec<StoreResult<()>>> {
    // Rolled back if anything below fails (the transaction's drop).
    let tx = Transaction::new_unchecked(database, TransactionBehavior::Immediate)?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO assistant_turns (id, user_id, thread, topic, prompt, reply, provider, answered, attempts, inserted_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for turn in turns {
        insert.execute(params![
            turn.id,
            turn.user_id,
            turn.thread,
            turn.topic,
            turn.prompt,
            turn.reply,
            turn.provider,
            turn.answered,
            turn.attempts,
            turn.inserted_at,
        ])?;
    }
    drop(insert);
    tx.commit()?;
    Ok(turns.iter().map(|_| Ok(())).collect())
}
