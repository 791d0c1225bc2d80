-- Organizations, users, memberships, sessions, sign-in attempts, API clients and their tokens,
-- rate-limit hits and the audit log.
CREATE TABLE organizations (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    slug text NOT NULL UNIQUE,
    description text NOT NULL DEFAULT '',
    default_timezone text NOT NULL DEFAULT 'UTC',
    default_country text NOT NULL DEFAULT 'US',
    mfa_required boolean NOT NULL DEFAULT false,
    auto_approve_campaign_emails boolean NOT NULL DEFAULT false,
    auto_approve_response_emails boolean NOT NULL DEFAULT false,
    default_response_campaign_id uuid,
    -- NULL means "the owner" (resolved when read), so a new owner is picked up automatically.
    test_recipients jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    name text NOT NULL,
    password_hash text NOT NULL,
    totp_secret text,
    totp_enabled boolean NOT NULL DEFAULT false,
    recovery_codes jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Emails are stored lowercased; one account per address.
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE memberships (
    org_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    -- Locking is per membership: an admin of one organization can lock a teammate out of it
    -- without touching the person's other organizations.
    locked boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash text NOT NULL UNIQUE,
    -- 'session' is a full sign-in; 'mfa_challenge' only lets its holder finish the second factor.
    kind text NOT NULL DEFAULT 'session' CHECK (kind IN ('session', 'mfa_challenge')),
    active_org_id uuid REFERENCES organizations (id) ON DELETE SET NULL,
    mfa_verified boolean NOT NULL DEFAULT false,
    address text,
    user_agent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id, created_at DESC);

CREATE TABLE sign_in_attempts (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    address text,
    succeeded boolean NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
-- The limiter counts recent failures per account and per address.
CREATE INDEX sign_in_attempts_email ON sign_in_attempts (email, at) WHERE NOT succeeded;
CREATE INDEX sign_in_attempts_address ON sign_in_attempts (address, at) WHERE NOT succeeded;

CREATE TABLE api_clients (
    id uuid PRIMARY KEY,
    client_id text NOT NULL UNIQUE,
    secret_hash text NOT NULL,
    name text NOT NULL,
    org_ids uuid[] NOT NULL,
    default_org_id uuid NOT NULL,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_clients_orgs ON api_clients USING gin (org_ids);

CREATE TABLE api_tokens (
    id uuid PRIMARY KEY,
    client_pk uuid NOT NULL REFERENCES api_clients (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('access', 'refresh')),
    token_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX api_tokens_client ON api_tokens (client_pk);

-- Sliding-window rate limits that must hold across replicas (the token endpoint).
CREATE TABLE rate_hits (
    bucket text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rate_hits_bucket ON rate_hits (bucket, at);

CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    org_id uuid NOT NULL,
    actor_user_id uuid,
    actor_email text,
    action text NOT NULL,
    target_type text,
    target_id text,
    before jsonb,
    after jsonb,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_org ON audit_log (org_id, id DESC);
