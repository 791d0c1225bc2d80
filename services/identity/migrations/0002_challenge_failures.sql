-- Wrong second-factor codes entered against one sign-in challenge; at five the challenge is
-- revoked and a fresh sign-in is needed.
ALTER TABLE sessions ADD COLUMN failed_codes integer NOT NULL DEFAULT 0;
