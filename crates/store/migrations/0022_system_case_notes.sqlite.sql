-- Notes the system writes (a case closed because a KYC re-run resolved it) have no author:
-- case_notes.author_id becomes nullable. SQLite cannot drop NOT NULL in place, so the table is
-- rebuilt (nothing references it) and its index and append-only triggers are recreated.
DROP TRIGGER case_notes_no_update;
DROP TRIGGER case_notes_no_delete;
CREATE TABLE case_notes_rebuilt (
    id          TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL REFERENCES compliance_cases (id),
    author_id   TEXT REFERENCES users (id),
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
INSERT INTO case_notes_rebuilt (id, case_id, author_id, body, created_at)
    SELECT id, case_id, author_id, body, created_at FROM case_notes;
DROP TABLE case_notes;
ALTER TABLE case_notes_rebuilt RENAME TO case_notes;
CREATE INDEX case_notes_case ON case_notes (case_id, id);
CREATE TRIGGER case_notes_no_update BEFORE UPDATE ON case_notes
BEGIN SELECT RAISE(ABORT, 'case notes are append-only'); END;
CREATE TRIGGER case_notes_no_delete BEFORE DELETE ON case_notes
BEGIN SELECT RAISE(ABORT, 'case notes are append-only'); END;
