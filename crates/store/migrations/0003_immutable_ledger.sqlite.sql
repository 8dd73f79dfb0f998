-- Posted ledger entries and journals are never updated or deleted: corrections are new journals.
CREATE TRIGGER ledger_entries_immutable_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are immutable'); END;
CREATE TRIGGER ledger_entries_immutable_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are immutable'); END;
CREATE TRIGGER journals_immutable_update BEFORE UPDATE ON journals
BEGIN SELECT RAISE(ABORT, 'journals are immutable'); END;
CREATE TRIGGER journals_immutable_delete BEFORE DELETE ON journals
BEGIN SELECT RAISE(ABORT, 'journals are immutable'); END;
