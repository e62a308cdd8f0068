//! `record_assistant_turn` on PostgreSQL: each batch of the group commit is one multi-row
//! `INSERT`.

use std::sync::Arc;

use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::group_commit::{GroupCommit, each_alone_if_the_batch_fails};
use crate::turn_batch::{MAX_TURNS_PER_BATCH, Turns};
use crate::{AssistantTurn, StoreResult};

/// Starts `record_assistant_turn`'s group commit: `workers` batches at once on `pool`.
pub(super) fn start(pool: PgPool, workers: usize) -> Turns {
    GroupCommit::start(workers, MAX_TURNS_PER_BATCH, move |batch| {
        let pool = pool.clone();
        async move {
            each_alone_if_the_batch_fails(batch, |turns: Arc<[AssistantTurn]>| {
                let pool = pool.clone();
                async move { store_turns(&pool, &turns).await }
            })
            .await
        }
    })
}

async fn store_turns(pool: &PgPool, turns: &[AssistantTurn]) -> StoreResult<Vec<StoreResult<()>>> {
    // 10 parameters a row: 256 rows stay far below PostgreSQL's 65 535 per statement.
    let mut insert = QueryBuilder::<Postgres>::new(
        "INSERT INTO assistant_turns (id, user_id, thread, topic, prompt, reply, provider, answered, attempts, inserted_at) ",
    );
    insert.push_values(turns, |mut row, turn| {
        row.push_bind(turn.id)
            .push_bind(turn.user_id)
            .push_bind(&turn.thread)
            .push_bind(&turn.topic)
            .push_bind(&turn.prompt)
            .push_bind(&turn.reply)
            .push_bind(&turn.provider)
            .push_bind(turn.answered)
            .push_bind(&turn.attempts)
            .push_bind(turn.inserted_at);
    });
    insert.build().execute(pool).await?;
    Ok(turns.iter().map(|_| Ok(())).collect())
}
