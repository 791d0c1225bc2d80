-- Goals, templates, agents, campaigns (with instruction versions), runs, skips, drafts and their history.
CREATE TABLE goals (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    is_starter boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX goals_org_created ON goals (org_id, created_at DESC, id DESC);

CREATE TABLE templates (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    channel text NOT NULL DEFAULT 'email',
    name text NOT NULL,
    subject text NOT NULL DEFAULT '',
    preheader text NOT NULL DEFAULT '',
    body text NOT NULL,
    is_starter boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX templates_org_created ON templates (org_id, created_at DESC, id DESC);

CREATE TABLE agents (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    type text NOT NULL CHECK (type IN ('writer', 'reviewer')),
    name text NOT NULL,
    title text NOT NULL DEFAULT '',
    model text NOT NULL DEFAULT 'builtin',
    provider text NOT NULL DEFAULT 'builtin' CHECK (provider IN ('builtin', 'openai_compatible')),
    base_url text,
    -- The NAME of the environment variable holding the key; the key itself is never stored.
    api_key_env text,
    voice text NOT NULL DEFAULT '',
    instructions text NOT NULL DEFAULT '',
    is_starter boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_org_created ON agents (org_id, created_at DESC, id DESC);
-- Starter seeding is idempotent: one starter agent of each type per organization.
CREATE UNIQUE INDEX agents_one_starter ON agents (org_id, type) WHERE is_starter;

CREATE TABLE campaigns (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    name text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'phone')),
    goal_id uuid REFERENCES goals (id) ON DELETE SET NULL,
    segment_id uuid,
    writer_agent_id uuid REFERENCES agents (id) ON DELETE SET NULL,
    reviewer_agent_id uuid REFERENCES agents (id) ON DELETE SET NULL,
    template_id uuid REFERENCES templates (id) ON DELETE SET NULL,
    instructions text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    version integer NOT NULL DEFAULT 1,
    is_starter boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_org_created ON campaigns (org_id, created_at DESC, id DESC);
CREATE INDEX campaigns_goal ON campaigns (goal_id);
CREATE INDEX campaigns_writer ON campaigns (writer_agent_id);
CREATE INDEX campaigns_reviewer ON campaigns (reviewer_agent_id);
CREATE INDEX campaigns_template ON campaigns (template_id);
CREATE UNIQUE INDEX campaigns_one_starter ON campaigns (org_id) WHERE is_starter;

-- Instruction history: one row per version; runs keep the version they used.
CREATE TABLE campaign_versions (
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    version integer NOT NULL,
    instructions text NOT NULL,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, version)
);

CREATE TABLE runs (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    channel text NOT NULL,
    run_type text NOT NULL CHECK (run_type IN ('test', 'live')),
    status text NOT NULL,
    segment_id uuid,
    -- What the run was started with: campaign version and instructions, goal, template, agents.
    version integer NOT NULL,
    instructions text NOT NULL,
    snapshot jsonb NOT NULL,
    -- Restartable worker: the last contact id paged, and whether the audience is exhausted.
    cursor text,
    audience_exhausted boolean NOT NULL DEFAULT false,
    error text,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runs_org_created ON runs (org_id, created_at DESC, id DESC);
CREATE INDEX runs_campaign ON runs (campaign_id, created_at DESC);

CREATE TABLE run_skips (
    run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    recipient_key text NOT NULL,
    org_id uuid NOT NULL,
    contact_id uuid,
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, recipient_key)
);

-- A thread that replied to a run (counted once per thread).
CREATE TABLE run_replies (
    run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    thread_id text NOT NULL,
    contact_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, thread_id)
);

CREATE TABLE drafts (
    id uuid PRIMARY KEY,
    org_id uuid NOT NULL,
    run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    campaign_id uuid NOT NULL,
    channel text NOT NULL,
    is_test boolean NOT NULL DEFAULT false,
    -- contact id for live runs, 'test:<address>' for test recipients: a redelivered page
    -- never drafts the same recipient twice.
    recipient_key text NOT NULL,
    contact_id uuid,
    to_address text NOT NULL,
    to_name text NOT NULL DEFAULT '',
    contact jsonb NOT NULL DEFAULT '{}',
    subject text NOT NULL DEFAULT '',
    preheader text NOT NULL DEFAULT '',
    body text NOT NULL DEFAULT '',
    status text NOT NULL,
    verdict text,
    review_reasons jsonb NOT NULL DEFAULT '[]',
    error text,
    attempt integer NOT NULL DEFAULT 1,
    communication_id text,
    approved_at timestamptz,
    replied_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, recipient_key)
);
CREATE INDEX drafts_org_created ON drafts (org_id, created_at DESC, id DESC);
CREATE INDEX drafts_run_status ON drafts (run_id, status);
CREATE INDEX drafts_campaign ON drafts (campaign_id, created_at DESC);

CREATE TABLE draft_history (
    id bigserial PRIMARY KEY,
    draft_id uuid NOT NULL REFERENCES drafts (id) ON DELETE CASCADE,
    org_id uuid NOT NULL,
    from_status text,
    to_status text NOT NULL,
    actor text NOT NULL,
    note text NOT NULL DEFAULT '',
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX draft_history_draft ON draft_history (draft_id, id);
