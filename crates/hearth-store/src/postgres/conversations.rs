//! Conversations and messages on PostgreSQL: [`ConversationStore`] with the shared SQL of
//! `conversations.rs`. Sends are group-committed, a few batches at once (`sends.rs`).
//!
//! Writes run concurrently here, so a write that depends on a conversation's members locks its
//! row until the transaction ends: shared for sends and edits, exclusive for adding and leaving.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Postgres, Transaction};
use uuid::Uuid;

use super::PostgresStore;
use crate::conversations::{
    self, MessageRow, alias_refused, check_new_conversation, check_private_keys, check_recipients, delivery,
    private_pair, sealed_key_row,
};
use crate::sql::{found, on_foreign_key, on_unique};
use crate::{
    Conversation, ConversationActivity, ConversationStore, EncryptionKeys, MessageDelivery, NewConversation,
    NewMessageGroup, SealedKeyRow, StoreError, StoreResult, StoredMessage, Timestamp, UserSummary, accounts,
};

/// Locks the conversation `$1` against membership changes (which take the row exclusively).
const HOLD_AGAINST_MEMBERSHIP_CHANGES: &str = "SELECT id FROM conversations WHERE id = $1 FOR SHARE";

/// Whether the conversation `$1` is private, locking it for a membership change.
const HOLD_FOR_MEMBERSHIP_CHANGE: &str = "SELECT private FROM conversations WHERE id = $1 FOR NO KEY UPDATE";

#[async_trait]
impl ConversationStore for PostgresStore {
    async fn create_conversation(&self, conversation: &NewConversation) -> StoreResult<Conversation> {
        let private_pair = check_new_conversation(conversation)?;
        let mut tx = self.begin_write().await?;
        let created: Conversation = sqlx::query_as(conversations::INSERT_CONVERSATION)
            .bind(conversation.id)
            .bind(conversation.private)
            .bind(&conversation.alias)
            .bind(&private_pair)
            .bind(conversation.now)
            .fetch_one(&mut *tx)
            .await
            .map_err(on_unique("private_conversation"))?;
        for member in &conversation.members {
            sqlx::query(conversations::INSERT_MEMBER)
                .bind(conversation.id)
                .bind(member)
                .bind(conversation.now)
                .execute(&mut *tx)
                .await
                .map_err(on_foreign_key)?;
            add_participant_in(&mut tx, conversation.id, *member).await?;
        }
        sqlx::query(conversations::INSERT_ENCRYPTION_KEYS)
            .bind(conversation.id)
            .bind(conversation.creator)
            .bind(&conversation.creator_keys.public_key)
            .bind(&conversation.creator_keys.sealed_private_key)
            .bind(conversation.now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn conversation(&self, id: Uuid) -> StoreResult<Option<Conversation>> {
        Ok(sqlx::query_as(conversations::CONVERSATION_BY_ID).bind(id).fetch_optional(&self.pool).await?)
    }

    async fn conversations_of(&self, user_id: Uuid) -> StoreResult<Vec<Conversation>> {
        Ok(sqlx::query_as(conversations::CONVERSATIONS_OF_USER).bind(user_id).fetch_all(&self.pool).await?)
    }

    async fn conversation_activity(&self, user_id: Uuid) -> StoreResult<Vec<ConversationActivity>> {
        Ok(sqlx::query_as(conversations::ACTIVITY_OF_USER).bind(user_id).fetch_all(&self.pool).await?)
    }

    async fn member_ids(&self, conversation_id: Uuid) -> StoreResult<Vec<Uuid>> {
        Ok(sqlx::query_scalar(conversations::MEMBER_IDS).bind(conversation_id).fetch_all(&self.pool).await?)
    }

    async fn conversation_partners(&self, user_id: Uuid) -> StoreResult<Vec<UserSummary>> {
        let rows = sqlx::query_as(conversations::PARTNERS_OF_USER).bind(user_id).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(accounts::user_summary).collect())
    }

    async fn member_identity_keys(&self, conversation_id: Uuid) -> StoreResult<Vec<(Uuid, Option<String>)>> {
        Ok(sqlx::query_as(conversations::MEMBER_IDENTITY_KEYS).bind(conversation_id).fetch_all(&self.pool).await?)
    }

    async fn private_conversation_between(&self, a: Uuid, b: Uuid) -> StoreResult<Option<Uuid>> {
        Ok(sqlx::query_scalar(conversations::CONVERSATION_OF_PRIVATE_PAIR)
            .bind(private_pair(a, b))
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn read_times(&self, conversation_id: Uuid) -> StoreResult<Vec<(Uuid, Option<Timestamp>)>> {
        Ok(sqlx::query_as(conversations::READ_TIMES).bind(conversation_id).fetch_all(&self.pool).await?)
    }

    async fn mark_read(&self, conversation_id: Uuid, user_id: Uuid, now: Timestamp) -> StoreResult<()> {
        self.stamp_member(conversations::MARK_READ, conversation_id, user_id, now).await
    }

    async fn delivered_times(&self, conversation_id: Uuid) -> StoreResult<Vec<(Uuid, Option<Timestamp>)>> {
        Ok(sqlx::query_as(conversations::DELIVERED_TIMES).bind(conversation_id).fetch_all(&self.pool).await?)
    }

    async fn mark_delivered(&self, conversation_id: Uuid, user_id: Uuid, now: Timestamp) -> StoreResult<()> {
        self.stamp_member(conversations::MARK_DELIVERED, conversation_id, user_id, now).await
    }

    async fn set_alias(&self, conversation_id: Uuid, alias: Option<&str>, now: Timestamp) -> StoreResult<Conversation> {
        let updated: Option<Conversation> = sqlx::query_as(conversations::SET_GROUP_ALIAS)
            .bind(conversation_id)
            .bind(alias)
            .bind(now)
            .fetch_optional(self.writer())
            .await?;
        if let Some(conversation) = updated {
            return Ok(conversation);
        }
        let private =
            sqlx::query_scalar(conversations::IS_PRIVATE).bind(conversation_id).fetch_optional(&self.pool).await?;
        Err(alias_refused(private))
    }

    async fn add_members(&self, conversation_id: Uuid, users: &[Uuid], now: Timestamp) -> StoreResult<Conversation> {
        let mut tx = self.begin_write().await?;
        match hold_for_membership_change_in(&mut tx, conversation_id).await? {
            None => return Err(StoreError::NotFound),
            Some(true) => return Err(StoreError::Rule("a private conversation cannot get new members")),
            Some(false) => {}
        }
        let mut added = 0;
        for user in users {
            added += sqlx::query(conversations::INSERT_MEMBER_UNLESS_ONE)
                .bind(conversation_id)
                .bind(user)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(on_foreign_key)?
                .rows_affected();
            add_participant_in(&mut tx, conversation_id, *user).await?;
        }
        if added > 0 {
            sqlx::query(conversations::TOUCH_CONVERSATION).bind(conversation_id).bind(now).execute(&mut *tx).await?;
        }
        let conversation = sqlx::query_as(conversations::CONVERSATION_BY_ID)
            .bind(conversation_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(conversation)
    }

    async fn leave_conversation(&self, conversation_id: Uuid, user_id: Uuid) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        match hold_for_membership_change_in(&mut tx, conversation_id).await? {
            None => return Err(StoreError::NotFound),
            Some(true) => return Err(StoreError::Rule("a private conversation cannot be left")),
            Some(false) => {}
        }
        let deleted =
            sqlx::query(conversations::DELETE_MEMBER).bind(conversation_id).bind(user_id).execute(&mut *tx).await?;
        found(deleted.rows_affected())?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_encryption_keys(
        &self,
        conversation_id: Uuid,
        user_id: Uuid,
        keys: &EncryptionKeys,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(conversations::UPSERT_ENCRYPTION_KEYS)
            .bind(conversation_id)
            .bind(user_id)
            .bind(&keys.public_key)
            .bind(&keys.sealed_private_key)
            .bind(now)
            .execute(self.writer())
            .await
            .map_err(on_foreign_key)?;
        Ok(())
    }

    async fn public_keys(&self, conversation_id: Uuid) -> StoreResult<Vec<(Uuid, String)>> {
        Ok(sqlx::query_as(conversations::PUBLIC_KEYS).bind(conversation_id).fetch_all(&self.pool).await?)
    }

    async fn sealed_private_key(&self, conversation_id: Uuid, user_id: Uuid) -> StoreResult<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(conversations::SEALED_PRIVATE_KEY)
            .bind(conversation_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn sealed_private_keys_of(&self, user_id: Uuid) -> StoreResult<Vec<(Uuid, Vec<u8>)>> {
        let mut keys: Vec<(Uuid, Vec<u8>)> =
            sqlx::query_as(conversations::SEALED_PRIVATE_KEYS_OF_USER).bind(user_id).fetch_all(&self.pool).await?;
        keys.sort_by_key(|(conversation_id, _)| *conversation_id);
        Ok(keys)
    }

    async fn replace_private_keys(&self, user_id: Uuid, keys: &[(Uuid, Vec<u8>)], now: Timestamp) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        replace_private_keys_in(&mut tx, user_id, keys, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn send_message(&self, message: &NewMessageGroup) -> StoreResult<MessageDelivery> {
        self.sends.submit(message.clone()).await.unwrap_or(Err(StoreError::WriterStopped))
    }

    async fn edit_message(
        &self,
        message_group: Uuid,
        sender: Uuid,
        contents: &BTreeMap<Uuid, String>,
        now: Timestamp,
    ) -> StoreResult<MessageDelivery> {
        let mut tx = self.begin_write().await?;
        let (conversation_id, sent_at): (Uuid, Timestamp) = sqlx::query_as(conversations::TOUCH_OWN_MESSAGE_GROUP)
            .bind(message_group)
            .bind(sender)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let members = members_held_in(&mut tx, conversation_id).await?;
        check_recipients(&members, contents)?;
        sqlx::query(conversations::DELETE_COPIES_OF_FORMER_MEMBERS)
            .bind(message_group)
            .bind(conversation_id)
            .execute(&mut *tx)
            .await?;
        for (recipient, content) in contents {
            sqlx::query(conversations::UPSERT_COPY)
                .bind(Uuid::now_v7())
                .bind(message_group)
                .bind(recipient)
                .bind(content)
                .bind(sent_at)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        let delivery = delivery_in(&mut tx, message_group, true).await?;
        tx.commit().await?;
        Ok(delivery)
    }

    async fn delete_message(&self, message_group: Uuid, sender: Uuid) -> StoreResult<Uuid> {
        sqlx::query_scalar(conversations::DELETE_OWN_MESSAGE_GROUP)
            .bind(message_group)
            .bind(sender)
            .fetch_optional(self.writer())
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn messages_page(
        &self,
        conversation_id: Uuid,
        recipient: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<StoredMessage>> {
        Ok(sqlx::query_as(AssertSqlSafe(conversations::messages_before(limit)))
            .bind(conversation_id)
            .bind(recipient)
            .bind(before.unwrap_or(Uuid::max()))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn sealed_private_keys(&self, after: Option<(Uuid, Uuid)>, limit: u32) -> StoreResult<Vec<SealedKeyRow>> {
        let (conversation_id, user_id) = after.unwrap_or_default();
        let rows = sqlx::query_as(AssertSqlSafe(conversations::sealed_private_keys_after(limit)))
            .bind(after.is_none())
            .bind(conversation_id)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(sealed_key_row).collect())
    }

    async fn replace_sealed_private_key(
        &self,
        conversation_id: Uuid,
        user_id: Uuid,
        old: &[u8],
        new: &[u8],
    ) -> StoreResult<bool> {
        let replaced = sqlx::query(conversations::SWAP_SEALED_PRIVATE_KEY)
            .bind(conversation_id)
            .bind(user_id)
            .bind(old)
            .bind(new)
            .execute(self.writer())
            .await?;
        Ok(replaced.rows_affected() == 1)
    }
}

impl PostgresStore {
    /// Runs `sql`, an update of one member's row (`$1` conversation, `$2` user, `$3` time):
    /// [`StoreError::NotFound`](crate::StoreError::NotFound) if they are not a member.
    async fn stamp_member(
        &self,
        sql: &'static str,
        conversation_id: Uuid,
        user_id: Uuid,
        at: Timestamp,
    ) -> StoreResult<()> {
        let updated = sqlx::query(sql).bind(conversation_id).bind(user_id).bind(at).execute(self.writer()).await?;
        found(updated.rows_affected())
    }
}

/// Replaces every sealed private key of `user_id` in `tx`; `keys` must name exactly the
/// conversations where the user has one, each once.
pub(super) async fn replace_private_keys_in(
    tx: &mut Transaction<'static, Postgres>,
    user_id: Uuid,
    keys: &[(Uuid, Vec<u8>)],
    now: Timestamp,
) -> StoreResult<()> {
    let stored: Vec<Uuid> =
        sqlx::query_scalar(conversations::CONVERSATIONS_WITH_KEYS_OF_USER).bind(user_id).fetch_all(&mut **tx).await?;
    check_private_keys(stored, keys)?;
    for (conversation_id, sealed) in keys {
        sqlx::query(conversations::SET_SEALED_PRIVATE_KEY)
            .bind(conversation_id)
            .bind(user_id)
            .bind(sealed)
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Records that `user` took part in `conversation_id`, in `tx`.
pub(super) async fn add_participant_in(
    tx: &mut Transaction<'static, Postgres>,
    conversation_id: Uuid,
    user: Uuid,
) -> StoreResult<()> {
    sqlx::query(conversations::INSERT_PARTICIPANT)
        .bind(conversation_id)
        .bind(user)
        .execute(&mut **tx)
        .await
        .map_err(on_foreign_key)?;
    Ok(())
}

/// The conversation's current members (none if it does not exist), which stay so until `tx`
/// ends.
async fn members_held_in(
    tx: &mut Transaction<'static, Postgres>,
    conversation_id: Uuid,
) -> StoreResult<BTreeSet<Uuid>> {
    sqlx::query(HOLD_AGAINST_MEMBERSHIP_CHANGES).bind(conversation_id).fetch_optional(&mut **tx).await?;
    let members: Vec<Uuid> =
        sqlx::query_scalar(conversations::MEMBERS).bind(conversation_id).fetch_all(&mut **tx).await?;
    Ok(members.into_iter().collect())
}

/// Whether the conversation is private, or `None` if it does not exist; its members stay as
/// they are until `tx` ends.
async fn hold_for_membership_change_in(
    tx: &mut Transaction<'static, Postgres>,
    conversation_id: Uuid,
) -> StoreResult<Option<bool>> {
    Ok(sqlx::query_scalar(HOLD_FOR_MEMBERSHIP_CHANGE).bind(conversation_id).fetch_optional(&mut **tx).await?)
}

/// Every recipient's copy of a message group, read in `tx`.
pub(super) async fn delivery_in(
    tx: &mut Transaction<'static, Postgres>,
    message_group: Uuid,
    fresh: bool,
) -> StoreResult<MessageDelivery> {
    let conversation_id: Uuid = sqlx::query_scalar(conversations::CONVERSATION_OF_GROUP)
        .bind(message_group)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let rows: Vec<MessageRow> =
        sqlx::query_as(conversations::COPIES_OF_GROUP).bind(message_group).fetch_all(&mut **tx).await?;
    Ok(delivery(conversation_id, rows, fresh))
}
