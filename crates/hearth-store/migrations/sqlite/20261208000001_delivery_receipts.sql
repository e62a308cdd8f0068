-- When each member's devices last received the conversation: every message group inserted at
-- or before it has reached one of them (a delivery receipt, shown to the sender as
-- "delivered"). Reading implies receiving, so marking read moves it forward too.
ALTER TABLE conversation_members ADD COLUMN delivered_at INTEGER;
UPDATE conversation_members SET delivered_at = read_at;
