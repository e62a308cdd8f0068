//! The assistant on PostgreSQL: [`AssistantStore`] with the shared SQL of `assistant.rs`, and
//! the knowledge base's search with `tsvector`. Turns are stored group-committed (`turns.rs`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::PostgresStore;
use crate::assistant::{self, ImageRow, TurnRow, image, knowledge_entries, search_words, turn};
use crate::sql::on_foreign_key;
use crate::{
    ASSISTANT_SENDER, AllowanceKind, AssistantImage, AssistantStore, AssistantTurn, Conversation, KnowledgeEntry,
    MessageDelivery, StoreError, StoreResult, StoredMessage, Timestamp, conversations,
};

/// The knowledge base's full-text search: the English `tsvector` of the question against the
/// `tsquery` `$1` within the topic `$2`, ranked by `ts_rank`, at most `$3`.
const KNOWLEDGE_MATCHING: &str = "SELECT topic, question, answer FROM knowledge_entries, to_tsquery('english', $1) AS query \
     WHERE topic = $2 AND search @@ query ORDER BY ts_rank(search, query) DESC, id LIMIT $3";

#[async_trait]
impl AssistantStore for PostgresStore {
    async fn take_allowance(
        &self,
        user_id: Uuid,
        day: &str,
        kind: AllowanceKind,
        limit: u32,
    ) -> StoreResult<Option<u32>> {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        if limit == 0 {
            return Ok(None);
        }
        let used: Option<i32> = sqlx::query_scalar(assistant::TAKE_ALLOWANCE)
            .bind(user_id)
            .bind(day)
            .bind(kind.as_str())
            .bind(limit)
            .fetch_optional(self.writer())
            .await?;
        Ok(used.map(|used| u32::try_from(used).unwrap_or_default()))
    }

    async fn refund_allowance(&self, user_id: Uuid, day: &str, kind: AllowanceKind) -> StoreResult<()> {
        sqlx::query(assistant::REFUND_ALLOWANCE)
            .bind(user_id)
            .bind(day)
            .bind(kind.as_str())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn allowance_used(&self, user_id: Uuid, day: &str, kind: AllowanceKind) -> StoreResult<u32> {
        let used: Option<i32> = sqlx::query_scalar(assistant::ALLOWANCE_USED)
            .bind(user_id)
            .bind(day)
            .bind(kind.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(used.map_or(0, |used| u32::try_from(used).unwrap_or_default()))
    }

    async fn record_assistant_turn(&self, turn: &AssistantTurn) -> StoreResult<()> {
        self.turns.submit(turn.clone()).await.unwrap_or(Err(StoreError::WriterStopped))
    }

    async fn assistant_turns(&self, user_id: Uuid, thread: &str, limit: u32) -> StoreResult<Vec<AssistantTurn>> {
        let rows: Vec<TurnRow> = sqlx::query_as(AssertSqlSafe(assistant::turns_of_thread(limit)))
            .bind(user_id)
            .bind(thread)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(turn).collect())
    }

    async fn assistant_conversation(&self, user_id: Uuid) -> StoreResult<Option<Conversation>> {
        Ok(sqlx::query_as(assistant::ASSISTANT_CONVERSATION_OF_USER).bind(user_id).fetch_optional(&self.pool).await?)
    }

    async fn create_assistant_conversation(
        &self,
        id: Uuid,
        user_id: Uuid,
        now: Timestamp,
    ) -> StoreResult<(Conversation, bool)> {
        let mut tx = self.begin_write().await?;
        let created: Option<Conversation> = sqlx::query_as(assistant::INSERT_ASSISTANT_CONVERSATION)
            .bind(id)
            .bind(user_id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(on_foreign_key)?;
        let Some(created) = created else {
            drop(tx);
            let existing = self.assistant_conversation(user_id).await?;
            return existing.map(|conversation| (conversation, false)).ok_or(StoreError::NotFound);
        };
        sqlx::query(conversations::INSERT_MEMBER).bind(id).bind(user_id).bind(now).execute(&mut *tx).await?;
        super::conversations::add_participant_in(&mut tx, id, user_id).await?;
        tx.commit().await?;
        Ok((created, true))
    }

    async fn post_assistant_reply(
        &self,
        group_id: Uuid,
        conversation_id: Uuid,
        content: &str,
        now: Timestamp,
    ) -> StoreResult<MessageDelivery> {
        let mut tx = self.begin_write().await?;
        let owner: Option<Uuid> = sqlx::query_scalar(assistant::OWNER_OF_ASSISTANT_CONVERSATION)
            .bind(conversation_id)
            .fetch_optional(&mut *tx)
            .await?;
        let owner = owner.ok_or(StoreError::NotFound)?;
        sqlx::query(assistant::INSERT_REPLY_GROUP)
            .bind(group_id)
            .bind(conversation_id)
            .bind(ASSISTANT_SENDER)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let message_id = Uuid::now_v7();
        sqlx::query(assistant::INSERT_REPLY_COPY)
            .bind(message_id)
            .bind(group_id)
            .bind(owner)
            .bind(content)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let message = StoredMessage {
            id: message_id,
            message_group: group_id,
            sender: ASSISTANT_SENDER,
            content: content.to_owned(),
            inserted_at: now,
            updated_at: now,
            history_key: group_id,
        };
        Ok(MessageDelivery { conversation_id, messages: BTreeMap::from([(owner, message)]), fresh: true })
    }

    async fn store_assistant_image(&self, image: &AssistantImage) -> StoreResult<()> {
        sqlx::query(assistant::INSERT_IMAGE)
            .bind(image.id)
            .bind(image.user_id)
            .bind(&image.content_type)
            .bind(&image.bytes)
            .bind(&image.prompt)
            .bind(&image.provider)
            .bind(image.inserted_at)
            .execute(self.writer())
            .await
            .map_err(on_foreign_key)?;
        Ok(())
    }

    async fn assistant_image(&self, id: Uuid, user_id: Uuid) -> StoreResult<Option<AssistantImage>> {
        let row: Option<ImageRow> =
            sqlx::query_as(assistant::IMAGE_OF_USER).bind(id).bind(user_id).fetch_optional(&self.pool).await?;
        Ok(row.map(image))
    }

    async fn replace_knowledge(&self, entries: &[KnowledgeEntry]) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(assistant::DELETE_KNOWLEDGE).execute(&mut *tx).await?;
        for entry in entries {
            sqlx::query(assistant::INSERT_KNOWLEDGE)
                .bind(&entry.topic)
                .bind(&entry.question)
                .bind(&entry.answer)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn search_knowledge(&self, topic: &str, words: &[String], limit: u32) -> StoreResult<Vec<KnowledgeEntry>> {
        let words = search_words(words);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query_as(KNOWLEDGE_MATCHING)
            .bind(words.join(" | "))
            .bind(topic)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(knowledge_entries(rows))
    }
}
