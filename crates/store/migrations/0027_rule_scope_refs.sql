-- The scope as the tenant named it (a program's own `program_id`, a cardholder or card id), shown
-- and filtered on; `scope_id` keeps the internal id the engine matches authorizations with.
ALTER TABLE authorization_rules ADD COLUMN scope_ref TEXT NOT NULL DEFAULT '';
CREATE INDEX authorization_rules_by_scope ON authorization_rules (tenant_id, environment, scope_kind, scope_ref);
-- `GET /alerts?card_id=`.
CREATE INDEX alerts_by_card ON alerts (card_id, id);
