-- The audit trail, case approvals and notes are append-only.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER case_approvals_no_update BEFORE UPDATE ON case_approvals
BEGIN SELECT RAISE(ABORT, 'case approvals are append-only'); END;
CREATE TRIGGER case_approvals_no_delete BEFORE DELETE ON case_approvals
BEGIN SELECT RAISE(ABORT, 'case approvals are append-only'); END;
CREATE TRIGGER case_notes_no_update BEFORE UPDATE ON case_notes
BEGIN SELECT RAISE(ABORT, 'case notes are append-only'); END;
CREATE TRIGGER case_notes_no_delete BEFORE DELETE ON case_notes
BEGIN SELECT RAISE(ABORT, 'case notes are append-only'); END;
