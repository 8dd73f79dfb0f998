-- Invitations into the developer portal: sign-ups (a new tenant) and teammates (an existing
-- tenant). Only a SHA-256 of the link's token is stored; the link works once, until expiry.
CREATE TABLE portal_invitations (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('signup', 'teammate')),
    email         TEXT NOT NULL,
    tenant_id     TEXT REFERENCES tenants (id),
    role          TEXT NOT NULL CHECK (role IN ('owner', 'developer', 'viewer')),
    company_name  TEXT,
    invited_by    TEXT REFERENCES users (id),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    accepted_at   BIGINT,
    revoked_at    BIGINT,
    CHECK ((kind = 'signup' AND company_name IS NOT NULL) OR (kind = 'teammate' AND tenant_id IS NOT NULL))
);
CREATE UNIQUE INDEX portal_invitations_token ON portal_invitations (token_hash);
CREATE INDEX portal_invitations_tenant ON portal_invitations (tenant_id, created_at);
