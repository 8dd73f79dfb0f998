-- The audit trail, case approvals and notes are append-only: row triggers refuse UPDATE and
-- DELETE, a statement trigger refuses TRUNCATE (which row triggers do not see).
CREATE FUNCTION cardplane_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION cardplane_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION cardplane_append_only();
CREATE TRIGGER case_approvals_append_only BEFORE UPDATE OR DELETE ON case_approvals
    FOR EACH ROW EXECUTE FUNCTION cardplane_append_only();
CREATE TRIGGER case_notes_append_only BEFORE UPDATE OR DELETE ON case_notes
    FOR EACH ROW EXECUTE FUNCTION cardplane_append_only();
-- The head only ever moves forward.
CREATE FUNCTION cardplane_audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'the audit chain head only moves forward';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION cardplane_audit_head_forward();
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION cardplane_append_only();
