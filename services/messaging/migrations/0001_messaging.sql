-- Messaging: per-organization email settings, threads, communications (outbound and inbound, one
-- status column) and the receipts that make inbound email idempotent.

CREATE TABLE email_settings (
    org_id uuid PRIMARY KEY,
    sender_name text,
    sender_email text,
    -- Domain whose MX reaches our inbound webhook; when set, outbound mail carries
    -- Reply-To: reply+<token>@<reply_domain> and envelope sender bounce+<token>@<reply_domain>.
    reply_domain text,
    provider_kind text,
    smtp_host text,
    smtp_port integer,
    smtp_username text,
    smtp_password_enc text,          -- Fernet token; never returned by any RPC
    smtp_tls_mode text,
    inbound_key text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE threads (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    channel text NOT NULL,
    contact_id uuid,
    campaign_id uuid,
    run_id uuid,
    is_test boolean NOT NULL DEFAULT false,
    subject text,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_message_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX threads_org_recent ON threads (org_id, last_message_at DESC);

CREATE TABLE communications (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    -- Deferred so a batch can insert communications first (ON CONFLICT on draft_id decides which
    -- are new) and then only the threads those new rows need, in the same transaction.
    thread_id uuid NOT NULL REFERENCES threads (id) DEFERRABLE INITIALLY DEFERRED,
    draft_id uuid UNIQUE,            -- one communication per draft: redelivery never sends twice
    direction text NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    channel text NOT NULL,
    status text NOT NULL,
    is_test boolean NOT NULL DEFAULT false,
    automatic boolean NOT NULL DEFAULT false,
    campaign_id uuid,
    run_id uuid,
    contact_id uuid,
    from_name text,
    from_address text,
    to_name text,
    to_address text,
    subject text,
    body text,
    stripped_text text,
    message_id text,
    in_reply_to text,
    "references" text[] NOT NULL DEFAULT '{}',
    reply_token text,
    bounce_token text,
    attachments jsonb NOT NULL DEFAULT '[]',
    error text,
    bounce_type text,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The feed: newest first, keyset on (created_at, id); filtered variants lead with their column.
CREATE INDEX communications_feed ON communications (org_id, created_at DESC, id DESC);
CREATE INDEX communications_campaign ON communications (org_id, campaign_id, created_at DESC, id DESC);
CREATE INDEX communications_run ON communications (org_id, run_id, created_at DESC, id DESC);
CREATE INDEX communications_contact ON communications (org_id, contact_id, created_at DESC, id DESC);
CREATE INDEX communications_thread ON communications (thread_id, created_at, id);
-- Threading lookups for inbound mail.
CREATE INDEX communications_message_id ON communications (org_id, message_id) WHERE message_id IS NOT NULL;
CREATE UNIQUE INDEX communications_reply_token ON communications (org_id, reply_token) WHERE reply_token IS NOT NULL;
CREATE UNIQUE INDEX communications_bounce_token ON communications (org_id, bounce_token) WHERE bounce_token IS NOT NULL;
-- The sender's retry sweep only looks at queued rows.
CREATE INDEX communications_queued ON communications (next_attempt_at) WHERE status = 'queued';

-- One row per inbound email accepted (reply, automatic reply, bounce): re-posting the same message
-- (same Message-ID, else same bytes) finds this row and changes nothing.
CREATE TABLE inbound_emails (
    org_id uuid NOT NULL,
    dedupe_key text NOT NULL,
    kind text NOT NULL,
    communication_id uuid,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, dedupe_key)
);
