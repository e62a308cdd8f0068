//! `send_message` on PostgreSQL: each batch of the group commit is one transaction of a few
//! multi-row statements. Several batches commit at once (one per worker), so a send whose
//! `client_msg_id` a concurrent batch stored first is found after that batch commits.

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use super::PostgresStore;
use super::conversations::delivery_in;
use crate::group_commit::{GroupCommit, each_alone_if_the_batch_fails};
use crate::send_batch::{self, ClientKey, MAX_SENDS_PER_BATCH, Plan, Sends, client_key};
use crate::{MessageDelivery, NewMessageGroup, StoreError, StoreResult};

/// Rows per multi-row `INSERT`: 7 parameters each stays far below PostgreSQL's 65 535
/// parameters per statement.
const ROWS_PER_INSERT: usize = 1000;

/// Starts `send_message`'s group commit: `workers` transactions at once on `pool`.
pub(super) fn start(pool: PgPool, workers: usize) -> Sends {
    GroupCommit::start(workers, MAX_SENDS_PER_BATCH, move |batch| {
        let pool = pool.clone();
        async move {
            each_alone_if_the_batch_fails(batch, |sends| {
                let pool = pool.clone();
                async move { store_sends(&pool, &sends).await }
            })
            .await
        }
    })
}

/// One transaction for `sends`: the outer error means it failed (nothing stored); otherwise
/// each send's own outcome, in order.
async fn store_sends(pool: &PgPool, sends: &[NewMessageGroup]) -> StoreResult<Vec<StoreResult<MessageDelivery>>> {
    let mut tx = PostgresStore::begin_write_on(pool).await?;
    let members = members_locked(&mut tx, sends).await?;
    let earlier = groups_by_client_key(&mut tx, sends).await?;
    let taken = taken_ids(&mut tx, sends).await?;
    let mut plans = send_batch::plan(sends, &members, &earlier, &taken);

    let new_groups: Vec<&NewMessageGroup> =
        plans.iter().zip(sends).filter(|(plan, _)| matches!(plan, Plan::Insert)).map(|(_, send)| send).collect();
    let mut inserted = HashSet::new();
    for chunk in new_groups.chunks(ROWS_PER_INSERT) {
        // A send whose client key (or chosen group id) a concurrent transaction stored first
        // inserts nothing, after waiting for that one to commit.
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO message_groups (id, conversation_id, sender_id, client_msg_id, inserted_at, updated_at, history_key) ",
        );
        insert.push_values(chunk, |mut row, send| {
            row.push_bind(send.id)
                .push_bind(send.conversation_id)
                .push_bind(send.sender)
                .push_bind(&send.client_msg_id)
                .push_bind(send.now)
                .push_bind(send.now)
                .push_bind(send.history_key);
        });
        insert.push(" ON CONFLICT DO NOTHING RETURNING id");
        let ids: Vec<Uuid> = insert.build_query_scalar().fetch_all(&mut *tx).await?;
        inserted.extend(ids);
    }
    for (plan, send) in plans.iter_mut().zip(sends) {
        if matches!(plan, Plan::Insert) && !inserted.contains(&send.id) {
            // A resend, after all, if its client key is stored now; else its chosen id is.
            let earlier = match client_key(send) {
                Some((conversation_id, sender, client_msg_id)) => {
                    sqlx::query_scalar(
                        "SELECT id FROM message_groups \
                         WHERE conversation_id = $1 AND sender_id = $2 AND client_msg_id = $3",
                    )
                    .bind(conversation_id)
                    .bind(sender)
                    .bind(client_msg_id)
                    .fetch_optional(&mut *tx)
                    .await?
                }
                None => None,
            };
            *plan = match earlier {
                Some(group) => Plan::Earlier(group),
                None if send.client_chose_id => Plan::Refused(send_batch::id_taken()),
                // The server's own UUIDv7 conflicts with nothing: the database's answer is
                // unexplained, so the batch fails (and its sends are tried one by one).
                None => return Err(StoreError::Conflict("message_groups.id")),
            };
        }
    }

    let fresh = send_batch::new_deliveries(&plans, sends);
    let rows: Vec<_> = fresh.values().flat_map(|delivery| delivery.messages.iter()).collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO messages (id, message_group_id, recipient_id, content, inserted_at, updated_at) ",
        );
        insert.push_values(chunk, |mut row, (recipient, message)| {
            row.push_bind(message.id)
                .push_bind(message.message_group)
                .push_bind(**recipient)
                .push_bind(&message.content)
                .push_bind(message.inserted_at)
                .push_bind(message.updated_at);
        });
        insert.build().execute(&mut *tx).await?;
    }
    let mut earlier_deliveries = HashMap::new();
    for group in send_batch::earlier_groups(&plans) {
        earlier_deliveries.insert(group, delivery_in(&mut tx, group, false).await?);
    }
    let results = send_batch::outcomes(plans, fresh, &earlier_deliveries);
    tx.commit().await?;
    Ok(results)
}

/// Locks the conversations of `sends` against membership changes until the transaction ends
/// and returns the members of those that exist.
async fn members_locked(
    tx: &mut Transaction<'static, Postgres>,
    sends: &[NewMessageGroup],
) -> StoreResult<HashMap<Uuid, BTreeSet<Uuid>>> {
    let conversations: BTreeSet<Uuid> = sends.iter().map(|send| send.conversation_id).collect();
    let mut lock = QueryBuilder::<Postgres>::new("SELECT id FROM conversations WHERE id IN ");
    push_id_list(&mut lock, &conversations);
    lock.push(" ORDER BY id FOR SHARE");
    lock.build().fetch_all(&mut **tx).await?;
    let mut select = QueryBuilder::<Postgres>::new(
        "SELECT conversation_id, user_id FROM conversation_members WHERE conversation_id IN ",
    );
    push_id_list(&mut select, &conversations);
    let rows: Vec<(Uuid, Uuid)> = select.build_query_as().fetch_all(&mut **tx).await?;
    let mut members: HashMap<Uuid, BTreeSet<Uuid>> = HashMap::new();
    for (conversation, user) in rows {
        members.entry(conversation).or_default().insert(user);
    }
    Ok(members)
}

/// The groups already stored under the client keys of `sends`.
async fn groups_by_client_key(
    tx: &mut Transaction<'static, Postgres>,
    sends: &[NewMessageGroup],
) -> StoreResult<HashMap<ClientKey, Uuid>> {
    let keys: BTreeSet<ClientKey> = sends.iter().filter_map(client_key).collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let mut select = QueryBuilder::<Postgres>::new(
        "SELECT conversation_id, sender_id, client_msg_id, id FROM message_groups WHERE ",
    );
    let mut any = select.separated(" OR ");
    for (conversation, sender, client_msg_id) in &keys {
        any.push("(conversation_id = ")
            .push_bind_unseparated(*conversation)
            .push_unseparated(" AND sender_id = ")
            .push_bind_unseparated(*sender)
            .push_unseparated(" AND client_msg_id = ")
            .push_bind_unseparated(client_msg_id.clone())
            .push_unseparated(")");
    }
    let rows: Vec<(Uuid, Uuid, String, Uuid)> = select.build_query_as().fetch_all(&mut **tx).await?;
    Ok(rows
        .into_iter()
        .map(|(conversation, sender, client_msg_id, id)| ((conversation, sender, client_msg_id), id))
        .collect())
}

/// Which of the group ids the clients of `sends` chose are in use. One that a concurrent
/// transaction is storing shows at the insert instead, which waits for that one to commit.
async fn taken_ids(tx: &mut Transaction<'static, Postgres>, sends: &[NewMessageGroup]) -> StoreResult<HashSet<Uuid>> {
    let chosen = send_batch::chosen_ids(sends);
    if chosen.is_empty() {
        return Ok(HashSet::new());
    }
    let mut select = QueryBuilder::<Postgres>::new("SELECT id FROM message_groups WHERE id IN ");
    push_id_list(&mut select, &chosen);
    let taken: Vec<Uuid> = select.build_query_scalar().fetch_all(&mut **tx).await?;
    Ok(taken.into_iter().collect())
}

/// Appends `($1, $2, …)` binding `ids`, for `… IN (…)`.
fn push_id_list<'a>(query: &mut QueryBuilder<Postgres>, ids: impl IntoIterator<Item = &'a Uuid>) {
    query.push("(");
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    query.push(")");
}
