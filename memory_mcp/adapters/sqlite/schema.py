"""The SQLite schema of memory_mcp, as numbered migrations.

``PRAGMA user_version`` records how many migrations a database has had; opening a database applies
the missing ones in order, each in its own transaction. Never edit a released migration: append one.

Triggers keep three things in step with ``memories`` inside the writer's own transaction, so no
code path can forget them: the FTS5 index, the per-user counters BM25 needs, and the change log
other processes read to catch their vector indexes up.
"""

from __future__ import annotations

import sqlite3

_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    user_key    INTEGER PRIMARY KEY,
    user_id     TEXT NOT NULL UNIQUE,
    doc_count   INTEGER NOT NULL DEFAULT 0,  -- rows of this user in the text index (all versions)
    token_total INTEGER NOT NULL DEFAULT 0   -- their summed lengths, for BM25's average length
);

CREATE TABLE memories (
    key                 INTEGER PRIMARY KEY AUTOINCREMENT,  -- both indexes' key; never reused
    id                  TEXT NOT NULL UNIQUE,  -- the public id
    user_key            INTEGER NOT NULL REFERENCES users(user_key),
    session_id          TEXT,
    agent_id            TEXT,
    turn_id             TEXT,
    scope_level         TEXT NOT NULL,
    category            TEXT NOT NULL,
    content             TEXT NOT NULL,
    search_text         TEXT NOT NULL,         -- what full text indexes: content and entity refs
    content_hash        TEXT NOT NULL,
    importance          REAL NOT NULL,
    entity_refs         TEXT NOT NULL DEFAULT '[]',
    metadata            TEXT NOT NULL DEFAULT '{}',
    provenance          TEXT NOT NULL DEFAULT '{}',
    created_at          REAL NOT NULL,
    valid_from          REAL NOT NULL,
    valid_until         REAL,
    expires_at          REAL,
    chain_key           INTEGER,               -- key of the first version; NULL on the first
    supersedes          TEXT,
    superseded_by       TEXT,
    origin_level        TEXT,
    origin_session_id   TEXT,
    origin_agent_id     TEXT,
    origin_turn_id      TEXT,
    promoted_at         REAL,
    reinforcement_count INTEGER NOT NULL DEFAULT 0,
    n_tokens            INTEGER NOT NULL,
    embedding           BLOB                   -- float32, NULL until embedded
);
CREATE INDEX memories_position ON memories(user_key, session_id, agent_id, turn_id);
CREATE INDEX memories_hash ON memories(user_key, content_hash);
CREATE INDEX memories_chain ON memories(chain_key);
CREATE INDEX memories_pending ON memories(key) WHERE embedding IS NULL;

-- Every change to a memory, in commit order; read by other processes to catch up.
CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_key   INTEGER NOT NULL,
    memory_key INTEGER NOT NULL,
    memory_id  TEXT NOT NULL,
    op         TEXT NOT NULL CHECK (op IN ('add', 'update', 'delete'))
);
CREATE INDEX changes_user ON changes(user_key, seq);

-- The saved vector index of each user and the change it is current up to.
CREATE TABLE vector_index_files (
    user_key  INTEGER PRIMARY KEY,
    file_name TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    crc32     INTEGER NOT NULL,
    size      INTEGER NOT NULL,
    model     TEXT NOT NULL,
    dim       INTEGER NOT NULL
);

CREATE TABLE idempotency_keys (
    user_key   INTEGER NOT NULL,
    key        TEXT NOT NULL,
    memory_id  TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (user_key, key)
) WITHOUT ROWID;

-- Distinct positions a memory was recalled from, for promotion by use.
CREATE TABLE recalls (
    memory_key INTEGER NOT NULL,
    position   TEXT NOT NULL,
    PRIMARY KEY (memory_key, position)
) WITHOUT ROWID;

-- What the text index sees of a memory: its search text, and its owner as a token
-- ('u' || user_key) so that a MATCH can be confined to one user inside FTS5 itself.
CREATE VIEW memories_text AS
    SELECT key, search_text AS body, 'u' || user_key AS owner FROM memories;

CREATE VIRTUAL TABLE memories_fts USING fts5(
    body, owner,
    content = 'memories_text', content_rowid = 'key',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts(rowid, body, owner)
        VALUES (new.key, new.search_text, 'u' || new.user_key);
    UPDATE users SET doc_count = doc_count + 1, token_total = token_total + new.n_tokens
        WHERE user_key = new.user_key;
    INSERT INTO changes(user_key, memory_key, memory_id, op)
        VALUES (new.user_key, new.key, new.id, 'add');
END;

CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, body, owner)
        VALUES ('delete', old.key, old.search_text, 'u' || old.user_key);
    UPDATE users SET doc_count = doc_count - 1, token_total = token_total - old.n_tokens
        WHERE user_key = old.user_key;
    DELETE FROM recalls WHERE memory_key = old.key;
    INSERT INTO changes(user_key, memory_key, memory_id, op)
        VALUES (old.user_key, old.key, old.id, 'delete');
END;

-- Content is never edited in place (an edit is a supersession), so the text index needs no
-- update trigger; the change log does, for caches and for vectors stored after the row.
CREATE TRIGGER memories_au AFTER UPDATE ON memories BEGIN
    INSERT INTO changes(user_key, memory_key, memory_id, op)
        VALUES (new.user_key, new.key, new.id, 'update');
END;
"""

# A memory's context (text that situates it, such as the message it answers) gets its own column
# and its own full-text column, so a match in the context can count for less than one in the
# memory itself, and an export can carry it. Databases from V1 keep their contexts inside
# search_text, where V1 put them.
_V2 = """
DROP TRIGGER memories_ai;
DROP TRIGGER memories_ad;
DROP TABLE memories_fts;
DROP VIEW memories_text;

ALTER TABLE memories ADD COLUMN context TEXT;          -- as given
ALTER TABLE memories ADD COLUMN context_text TEXT;     -- as the text index stores it

CREATE VIEW memories_text AS
    SELECT key, search_text AS body, context_text AS context, 'u' || user_key AS owner FROM memories;

CREATE VIRTUAL TABLE memories_fts USING fts5(
    body, context, owner,
    content = 'memories_text', content_rowid = 'key',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts(rowid, body, context, owner)
        VALUES (new.key, new.search_text, new.context_text, 'u' || new.user_key);
    UPDATE users SET doc_count = doc_count + 1, token_total = token_total + new.n_tokens
        WHERE user_key = new.user_key;
    INSERT INTO changes(user_key, memory_key, memory_id, op)
        VALUES (new.user_key, new.key, new.id, 'add');
END;

CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, body, context, owner)
        VALUES ('delete', old.key, old.search_text, old.context_text, 'u' || old.user_key);
    UPDATE users SET doc_count = doc_count - 1, token_total = token_total - old.n_tokens
        WHERE user_key = old.user_key;
    DELETE FROM recalls WHERE memory_key = old.key;
    INSERT INTO changes(user_key, memory_key, memory_id, op)
        VALUES (old.user_key, old.key, old.id, 'delete');
END;

INSERT INTO memories_fts(memories_fts) VALUES ('rebuild');
"""

# A browser lists a user's memories newest first (or as they were at a time), counts them by
# state, category and level, and counts them per position, at 100k memories of one user in a few milliseconds: each of these
# reads one index of the user's rows that holds every column it tests (a row of memories holds
# its vector, so reading the rows themselves costs a hundred times more).
_V3 = """
CREATE INDEX memories_listing ON memories(user_key, created_at, key, valid_until, expires_at, category, scope_level,
                                           valid_from);
DROP INDEX memories_position;
CREATE INDEX memories_position ON memories(user_key, session_id, agent_id, turn_id, valid_until, expires_at);
CREATE INDEX memories_kinds ON memories(user_key, category, scope_level, valid_until, expires_at);
"""

# Full-text search looks up, for every posting of a query's words (thousands at 100k memories of
# one user), the memory's length and whether the selection takes it. Read from the rows (each holds
# its vector, so two or three fill a page) it took 3.2 ms a query at 100k; from this index, which
# holds every column a selection tests, 1.4 ms.
_V4 = """
CREATE INDEX memories_ranking ON memories(key, n_tokens, user_key, session_id, agent_id, turn_id, valid_until,
                                          expires_at, valid_from, category, scope_level);
"""

MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4]


def split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--") and not buffer.strip():
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
