-- Programs get a disputes account (provisional credit is paid from it, chargebacks settle it).
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check CHECK (kind IN ('program_funding', 'program_settlement', 'program_fees', 'program_external', 'program_losses', 'program_disputes', 'card_balance'));
CREATE TRIGGER dispute_notes_append_only BEFORE UPDATE OR DELETE ON dispute_notes
    FOR EACH ROW EXECUTE FUNCTION cardplane_append_only();
CREATE TRIGGER dispute_evidence_append_only BEFORE UPDATE OR DELETE ON dispute_evidence
    FOR EACH ROW EXECUTE FUNCTION cardplane_append_only();
