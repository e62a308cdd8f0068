-- The device session that made a one-time token (a device-link code, a configure link), so
-- that revoking that session voids what it created. Tokens made without a session (email
-- confirmation at sign-up, password reset) have none.
ALTER TABLE one_time_tokens ADD COLUMN device_id UUID REFERENCES devices (id) ON DELETE CASCADE;
CREATE INDEX one_time_tokens_by_device ON one_time_tokens (device_id) WHERE device_id IS NOT NULL;
