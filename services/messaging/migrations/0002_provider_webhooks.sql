-- Provider integrations (Twilio, SendGrid, Mailgun, Postmark) and what their webhooks tell us.

-- One row per organization and provider. `config` holds what may be shown (account SID, phone
-- number, public keys, user names); `secrets_enc` is a Fernet token of a JSON object (auth
-- tokens, signing keys, passwords) that no RPC ever returns.
CREATE TABLE provider_settings (
    org_id uuid NOT NULL,
    provider text NOT NULL CHECK (provider IN ('twilio', 'sendgrid', 'mailgun', 'postmark')),
    config jsonb NOT NULL DEFAULT '{}',
    secrets_enc text,
    -- Routing keys for webhook URLs without the organization key: a Twilio number or
    -- Messaging Service belongs to one organization.
    route_phone text,
    route_service_sid text,
    account_sid text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, provider)
);
CREATE UNIQUE INDEX provider_settings_phone ON provider_settings (route_phone) WHERE route_phone IS NOT NULL;
CREATE UNIQUE INDEX provider_settings_service ON provider_settings (route_service_sid) WHERE route_service_sid IS NOT NULL;
CREATE INDEX provider_settings_account ON provider_settings (account_sid) WHERE account_sid IS NOT NULL;
CREATE INDEX provider_settings_provider ON provider_settings (provider, org_id);

-- Delivery facts reported by providers, on the communication they concern.
ALTER TABLE communications
    ADD COLUMN provider text,
    ADD COLUMN provider_message_id text,     -- Twilio MessageSid/CallSid, SendGrid X-Message-Id
    ADD COLUMN provider_status text,         -- the provider's own latest status word
    ADD COLUMN error_code text,
    ADD COLUMN delivered_at timestamptz,
    ADD COLUMN opened_at timestamptz,
    ADD COLUMN clicked_at timestamptz,
    ADD COLUMN clicked_url text,
    ADD COLUMN complained_at timestamptz,
    ADD COLUMN duration_seconds integer,      -- calls: seconds connected (Twilio CallDuration)
    ADD COLUMN outcome text,                  -- calls: completed, no-answer, busy, failed, canceled
    ADD COLUMN recording jsonb;               -- calls: {sid, url, duration_seconds}
-- Webhooks without the organization key in their URL find the message first, then its org.
CREATE INDEX communications_provider_message ON communications (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX communications_message_id_any ON communications (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX communications_reply_token_any ON communications (reply_token) WHERE reply_token IS NOT NULL;
-- Finding the SMS thread of a number pair.
CREATE INDEX communications_sms_pair ON communications (org_id, channel, to_address, created_at DESC)
    WHERE direction = 'outbound';

-- Every provider event accepted, once: the provider's id is the key (MessageSid, CallSid+status,
-- sg_event_id, Mailgun event id, Postmark MessageID). A re-post finds its row and changes nothing.
CREATE TABLE provider_events (
    org_id uuid NOT NULL,
    dedupe_key text NOT NULL,
    provider text NOT NULL,
    event_type text NOT NULL,
    communication_id uuid,
    data jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, dedupe_key)
);
CREATE INDEX provider_events_communication ON provider_events (communication_id, occurred_at)
    WHERE communication_id IS NOT NULL;

-- Mailgun signs only timestamp+token, so a token is accepted once: again only with the very
-- same body (a provider retry), never with other event data.
CREATE TABLE mailgun_tokens (
    org_id uuid NOT NULL,
    token text NOT NULL,
    body_sha256 text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, token)
);
