//! `send_message` on SQLite: each batch of the group commit is stored in one call on the
//! writer thread, on the write connection's own handle (`writer.rs`); its statements stay
//! prepared for as long as the writer thread keeps the connection.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension as _, Transaction, TransactionBehavior, params};
use uuid::Uuid;

use super::writer::Writer;

use crate::group_commit::{GroupCommit, each_alone_if_the_batch_fails};
use crate::send_batch::{self, ClientKey, MAX_SENDS_PER_BATCH, Plan, Sends, client_key};
use crate::{MessageDelivery, NewMessageGroup, StoreError, StoreResult, StoredMessage, Timestamp};

/// Starts `send_message`'s group commit on `writer`, the write connection's thread.
pub(super) fn start(writer: Writer) -> Sends {
    GroupCommit::start(1, MAX_SENDS_PER_BATCH, move |batch| {
        let writer = writer.clone();
        async move { each_alone_if_the_batch_fails(batch, |sends| on_the_writer(writer.clone(), sends)).await }
    })
}

/// Stores `sends` in one transaction on the write connection (see `writer.rs`).
async fn on_the_writer(
    writer: Writer,
    sends: Arc<[NewMessageGroup]>,
) -> StoreResult<Vec<StoreResult<MessageDelivery>>> {
    writer.run(move |database| store_sends(database, &sends)).await
}

/// One transaction for `sends`: the outer error means it failed (nothing stored); otherwise
/// each send's own outcome, in order. SQLite has one writer, so nothing else can store a
/// client key or a chosen group id between reading the earlier ones and inserting.
fn store_sends(database: &Connection, sends: &[NewMessageGroup]) -> StoreResult<Vec<StoreResult<MessageDelivery>>> {
    // Rolled back if anything below fails or panics (the transaction's drop).
    let tx = Transaction::new_unchecked(database, TransactionBehavior::Immediate)?;
    let members = members(&tx, sends)?;
    let earlier = groups_by_client_key(&tx, sends)?;
    let taken = taken_ids(&tx, sends)?;
    let plans = send_batch::plan(sends, &members, &earlier, &taken);

    let mut insert_group = tx.prepare_cached(
        "INSERT INTO message_groups (id, conversation_id, sender_id, client_msg_id, inserted_at, updated_at, history_key) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
    )?;
    for (_, send) in plans.iter().zip(sends).filter(|(plan, _)| matches!(plan, Plan::Insert)) {
        insert_group.execute(params![
            send.id,
            send.conversation_id,
            send.sender,
            send.client_msg_id,
            send.now,
            send.history_key
        ])?;
    }
    let fresh = send_batch::new_deliveries(&plans, sends);
    let mut insert_message = tx.prepare_cached(
        "INSERT INTO messages (id, message_group_id, recipient_id, content, inserted_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (recipient, message) in fresh.values().flat_map(|delivery| delivery.messages.iter()) {
        insert_message.execute(params![
            message.id,
            message.message_group,
            recipient,
            message.content,
            message.inserted_at,
            message.updated_at
        ])?;
    }
    let mut earlier_deliveries = HashMap::new();
    for group in send_batch::earlier_groups(&plans) {
        earlier_deliveries.insert(group, delivery(&tx, group)?);
    }
    let results = send_batch::outcomes(plans, fresh, &earlier_deliveries);
    drop((insert_group, insert_message));
    tx.commit()?;
    Ok(results)
}

/// The members of the conversations of `sends` that exist (the write transaction holds the
/// whole database, so they cannot change before it ends).
fn members(tx: &Transaction<'_>, sends: &[NewMessageGroup]) -> StoreResult<HashMap<Uuid, BTreeSet<Uuid>>> {
    let conversations: BTreeSet<Uuid> = sends.iter().map(|send| send.conversation_id).collect();
    let mut select = tx.prepare_cached("SELECT user_id FROM conversation_members WHERE conversation_id = ?1")?;
    let mut members = HashMap::new();
    for conversation in conversations {
        let users = select.query_map([conversation], |row| row.get(0))?.collect::<Result<BTreeSet<Uuid>, _>>()?;
        if !users.is_empty() {
            members.insert(conversation, users);
        }
    }
    Ok(members)
}

/// The groups already stored under the client keys of `sends`.
fn groups_by_client_key(tx: &Transaction<'_>, sends: &[NewMessageGroup]) -> StoreResult<HashMap<ClientKey, Uuid>> {
    let keys: BTreeSet<ClientKey> = sends.iter().filter_map(client_key).collect();
    let mut select = tx.prepare_cached(
        "SELECT id FROM message_groups WHERE conversation_id = ?1 AND sender_id = ?2 AND client_msg_id = ?3",
    )?;
    let mut found = HashMap::new();
    for key in keys {
        let (conversation, sender, client_msg_id) = &key;
        if let Some(group) =
            select.query_row(params![conversation, sender, client_msg_id], |row| row.get(0)).optional()?
        {
            found.insert(key, group);
        }
    }
    Ok(found)
}

/// Which of the group ids the clients of `sends` chose are in use.
fn taken_ids(tx: &Transaction<'_>, sends: &[NewMessageGroup]) -> StoreResult<HashSet<Uuid>> {
    let chosen = send_batch::chosen_ids(sends);
    if chosen.is_empty() {
        return Ok(HashSet::new());
    }
    let mut select = tx.prepare_cached("SELECT 1 FROM message_groups WHERE id = ?1")?;
    let mut taken = HashSet::new();
    for id in chosen {
        if select.exists([id])? {
            taken.insert(id);
        }
    }
    Ok(taken)
}

/// Every recipient's copy of a group stored before.
fn delivery(tx: &Transaction<'_>, group: Uuid) -> StoreResult<MessageDelivery> {
    let conversation_id: Uuid = tx
        .prepare_cached("SELECT conversation_id FROM message_groups WHERE id = ?1")?
        .query_row([group], |row| row.get(0))
        .optional()?
        .ok_or(StoreError::NotFound)?;
    let mut select = tx.prepare_cached(
        "SELECT m.recipient_id, m.id, g.sender_id, m.content, m.inserted_at, m.updated_at, g.history_key \
         FROM messages m JOIN message_groups g ON g.id = m.message_group_id WHERE m.message_group_id = ?1",
    )?;
    let messages = select
        .query_map([group], |row| {
            let message = StoredMessage {
                id: row.get(1)?,
                message_group: group,
                sender: row.get(2)?,
                content: row.get(3)?,
                inserted_at: row.get::<_, Timestamp>(4)?,
                updated_at: row.get(5)?,
                history_key: row.get(6)?,
            };
            Ok((row.get(0)?, message))
        })?
        .collect::<Result<_, _>>()?;
    Ok(MessageDelivery { conversation_id, messages, fresh: false })
}
