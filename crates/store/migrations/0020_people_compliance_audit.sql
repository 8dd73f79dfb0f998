-- People who sign in (operators and tenant users), their sessions, compliance cases with their
-- approval chains and documents, and the hash-chained audit log.
CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT REFERENCES tenants (id),
    email            TEXT NOT NULL,
    name             TEXT NOT NULL,
    role             TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    totp_sealed      TEXT,
    totp_pending     TEXT,
    totp_last_step   BIGINT,
    failed_attempts  BIGINT NOT NULL DEFAULT 0,
    locked_until     BIGINT,
    disabled         SMALLINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    last_login_at    BIGINT,
    CHECK ((tenant_id IS NULL AND role IN ('admin', 'compliance_officer', 'operations', 'support', 'read_only'))
        OR (tenant_id IS NOT NULL AND role IN ('owner', 'developer', 'viewer')))
);
CREATE UNIQUE INDEX users_email ON users (email);
CREATE INDEX users_tenant ON users (tenant_id, id);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id),
    code_hash  TEXT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- The session token itself is never stored: only its SHA-256.
CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    user_id       TEXT NOT NULL REFERENCES users (id),
    csrf_hash     TEXT NOT NULL,
    origin_ip     TEXT,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE approval_chains (
    program_id   TEXT NOT NULL REFERENCES programs (id),
    trigger      TEXT NOT NULL CHECK (trigger IN ('default', 'watchlist_match')),
    steps        TEXT NOT NULL,
    sla_hours    BIGINT NOT NULL CHECK (sla_hours > 0),
    updated_by   TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (program_id, trigger)
);

CREATE TABLE compliance_cases (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    environment    TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    cardholder_id  TEXT NOT NULL REFERENCES cardholders (id),
    program_id     TEXT,
    reason         TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('open', 'awaiting_documents', 'pending_approval', 'approved', 'rejected')),
    assignee_id    TEXT REFERENCES users (id),
    opened_by      TEXT,
    chain_steps    TEXT NOT NULL,
    sla_hours      BIGINT NOT NULL,
    due_at         BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    closed_at      BIGINT,
    version        BIGINT NOT NULL
);
-- At most one open case per cardholder: KYC re-runs join the case already in the queue.
CREATE UNIQUE INDEX compliance_cases_one_open ON compliance_cases (cardholder_id) WHERE closed_at IS NULL;
CREATE INDEX compliance_cases_queue ON compliance_cases (status, due_at);
CREATE INDEX compliance_cases_tenant ON compliance_cases (tenant_id, environment, id);

CREATE TABLE case_approvals (
    case_id     TEXT NOT NULL REFERENCES compliance_cases (id),
    step        BIGINT NOT NULL,
    role        TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id),
    decision    TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
    comment     TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (case_id, step),
    -- Four eyes, enforced by the database too.
    UNIQUE (case_id, user_id)
);

CREATE TABLE case_notes (
    id          TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL REFERENCES compliance_cases (id),
    author_id   TEXT NOT NULL REFERENCES users (id),
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX case_notes_case ON case_notes (case_id, id);

CREATE TABLE documents (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    environment    TEXT NOT NULL,
    cardholder_id  TEXT NOT NULL REFERENCES cardholders (id),
    case_id        TEXT REFERENCES compliance_cases (id),
    kind           TEXT NOT NULL,
    file_name      TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    size_bytes     BIGINT NOT NULL,
    sha256         TEXT NOT NULL,
    storage_key    TEXT NOT NULL,
    uploaded_by    TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX documents_case ON documents (case_id, id);
CREATE INDEX documents_cardholder ON documents (cardholder_id, id);

CREATE TABLE audit_log (
    seq          BIGINT PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    occurred_at  BIGINT NOT NULL,
    actor_kind   TEXT NOT NULL,
    actor_id     TEXT,
    tenant_id    TEXT,
    environment  TEXT,
    action       TEXT NOT NULL,
    object_type  TEXT,
    object_id    TEXT,
    outcome      TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    status       BIGINT,
    origin_ip    TEXT,
    request_id   TEXT,
    details      TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor_id, seq);
CREATE INDEX audit_log_object ON audit_log (object_id, seq);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, seq);
CREATE INDEX audit_log_time ON audit_log (occurred_at);

-- The chain's head: writers lock this row to take the next place, so entries form one chain.
CREATE TABLE audit_head (
    id    SMALLINT PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
