-- Contacts, tags, segments, unsubscribes, uploads and imports (the contacts service's schema).
CREATE TABLE contacts (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    name text,
    first_name text,
    last_name text,
    email text,
    phone text,
    phone_extension text,
    timezone text,
    active boolean NOT NULL DEFAULT true,
    custom jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Keyset pagination and resolve_segment page by (org_id, id).
CREATE INDEX contacts_org_id ON contacts (org_id, id);
-- Dedupe: one contact per normalised e-mail per org; phone-only contacts dedupe on phone.
CREATE UNIQUE INDEX contacts_org_email ON contacts (org_id, email) WHERE email IS NOT NULL;
CREATE INDEX contacts_org_phone ON contacts (org_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX contacts_org_created ON contacts (org_id, created_at);
CREATE INDEX contacts_custom ON contacts USING gin (custom jsonb_path_ops);

CREATE TABLE tags (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    kind text NOT NULL DEFAULT 'contact' CHECK (kind IN ('contact', 'communication')),
    title text NOT NULL,
    color text,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tags_org_kind_title ON tags (org_id, kind, lower(title));

CREATE TABLE contact_tags (
    tag_id uuid NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    org_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tag_id, contact_id)
);
CREATE INDEX contact_tags_contact ON contact_tags (contact_id);

CREATE TABLE segments (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    name text NOT NULL,
    description text,
    rules jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX segments_org ON segments (org_id, id);

CREATE TABLE unsubscribe_groups (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'phone')),
    name text NOT NULL,
    description text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX unsubscribe_groups_name ON unsubscribe_groups (org_id, channel, lower(name));

-- Consent is kept per identifier (normalised e-mail or E.164 number) and channel, so it holds for
-- every contact sharing the address and for identifiers no contact has yet (Unsubscribe API).
-- group_id NULL is the organization-wide preference.
CREATE TABLE unsubscribes (
    id bigserial PRIMARY KEY,
    org_id uuid NOT NULL,
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'phone')),
    identifier text NOT NULL,
    group_id uuid REFERENCES unsubscribe_groups (id) ON DELETE CASCADE,
    unsubscribed boolean NOT NULL,
    source text NOT NULL CHECK (source IN ('api', 'admin', 'import', 'user_action', 'user_intent')),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX unsubscribes_identity ON unsubscribes (org_id, channel, group_id, identifier) NULLS NOT DISTINCT;
-- The Unsubscribe API lists newest first with a (updated_at, id) cursor.
CREATE INDEX unsubscribes_listing ON unsubscribes (org_id, channel, updated_at DESC, id DESC);

CREATE TABLE unsubscribe_history (
    id bigserial PRIMARY KEY,
    org_id uuid NOT NULL,
    channel text NOT NULL,
    identifier text NOT NULL,
    group_id uuid,
    unsubscribed boolean NOT NULL,
    source text NOT NULL,
    detail text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unsubscribe_history_identifier ON unsubscribe_history (org_id, channel, identifier, id);

-- Uploaded files arrive in chunks over RPC and are read back in order while importing.
CREATE TABLE uploads (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    filename text,
    kind text NOT NULL DEFAULT 'csv',
    size bigint NOT NULL DEFAULT 0,
    chunks integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE upload_chunks (
    upload_id uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    seq integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (upload_id, seq)
);

CREATE TABLE data_sources (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('file', 'sftp')),
    name text NOT NULL,
    mapping jsonb NOT NULL DEFAULT '{}'::jsonb,
    settings jsonb NOT NULL DEFAULT '{}'::jsonb,
    last_sync_at timestamptz,
    last_result jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX data_sources_org ON data_sources (org_id, id);

CREATE TABLE imports (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    upload_id uuid REFERENCES uploads (id) ON DELETE SET NULL,
    data_source_id uuid REFERENCES data_sources (id) ON DELETE SET NULL,
    filename text,
    mapping jsonb NOT NULL,
    status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    rows_total integer,
    rows_done integer NOT NULL DEFAULT 0,
    counts jsonb NOT NULL DEFAULT '{}'::jsonb,
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX imports_org ON imports (org_id, created_at DESC);

-- One line per record that was not simply created: rejected, merged, updated, unchanged, warned.
CREATE TABLE import_rows (
    import_id uuid NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    record integer NOT NULL,
    outcome text NOT NULL,
    contact_id uuid,
    reason text,
    merged_into integer,
    warnings jsonb,
    PRIMARY KEY (import_id, record)
);
