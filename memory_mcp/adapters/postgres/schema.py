"""The PostgreSQL schema of memory_mcp, as numbered migrations.

The table ``schema_migrations`` records the migrations a database has had; the first server to
start applies the missing ones in order, in one transaction, holding an advisory lock so that
servers starting together do not race. Never edit a released migration: append one.

The tables are those of the SQLite engine, with the same meaning (``docs/architecture.md``): times
are epoch seconds, lists and dicts JSON text. Full text is two ``tsvector`` columns (the memory,
its context), generated from their text, with GIN indexes, parsed by a text search configuration of our own: English stemming
without a stopword list, so that a query of common words still finds them (queries drop
stopwords themselves, as on SQLite). Vectors are pgvector ``vector`` values of any dimension; the
HNSW index over them is made for the model's dimension when the engine first sees it (see
``vectors.py``). A trigger keeps the per-user counts BM25 needs and the change log in step with
``memories`` inside the writer's own transaction, as on SQLite.
"""

from __future__ import annotations

_V1 = """
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE users (
    user_key    bigserial PRIMARY KEY,
    user_id     text NOT NULL UNIQUE,
    doc_count   bigint NOT NULL DEFAULT 0,  -- rows of this user in the text index (all versions)
    token_total bigint NOT NULL DEFAULT 0   -- their summed lengths, for BM25's average length
);

CREATE TEXT SEARCH DICTIONARY memory_mcp_stem (TEMPLATE = snowball, Language = english);
CREATE TEXT SEARCH CONFIGURATION memory_mcp_text (COPY = simple);
ALTER TEXT SEARCH CONFIGURATION memory_mcp_text
    ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part WITH memory_mcp_stem;

CREATE TABLE memories (
    key                 bigserial PRIMARY KEY,  -- both indexes' key; never reused
    id                  text NOT NULL UNIQUE,   -- the public id
    user_key            bigint NOT NULL REFERENCES users(user_key),
    session_id          text,
    agent_id            text,
    turn_id             text,
    scope_level         text NOT NULL,
    category            text NOT NULL,
    content             text NOT NULL,
    search_text         text NOT NULL,          -- content and entity refs, as the text index reads them
                                                -- (words.plain: words one space apart, no accents)
    content_hash        text NOT NULL,
    importance          double precision NOT NULL,
    entity_refs         text NOT NULL DEFAULT '[]',
    metadata            text NOT NULL DEFAULT '{}',
    provenance          text NOT NULL DEFAULT '{}',
    created_at          double precision NOT NULL,
    valid_from          double precision NOT NULL,
    valid_until         double precision,
    expires_at          double precision,
    chain_key           bigint,                 -- key of the first version; NULL on the first
    supersedes          text,
    superseded_by       text,
    origin_level        text,
    origin_session_id   text,
    origin_agent_id     text,
    origin_turn_id      text,
    promoted_at         double precision,
    reinforcement_count integer NOT NULL DEFAULT 0,
    n_tokens            integer NOT NULL,
    context             text,
    context_text        text,
    body_tsv            tsvector GENERATED ALWAYS AS (to_tsvector('memory_mcp_text', search_text)) STORED,
    context_tsv         tsvector GENERATED ALWAYS AS (to_tsvector('memory_mcp_text', coalesce(context_text, ''))) STORED,
    embedding           vector                  -- NULL until embedded
);
CREATE INDEX memories_position ON memories(user_key, session_id, agent_id, turn_id);
CREATE INDEX memories_hash ON memories(user_key, content_hash);
CREATE INDEX memories_chain ON memories(chain_key);
CREATE INDEX memories_user_key ON memories(user_key, key);
CREATE INDEX memories_pending ON memories(key) WHERE embedding IS NULL;
CREATE INDEX memories_body_tsv ON memories USING gin (body_tsv);
CREATE INDEX memories_context_tsv ON memories USING gin (context_tsv);

-- Every change to a memory, in commit order (writers hold one advisory lock: see store.py).
CREATE TABLE changes (
    seq        bigserial PRIMARY KEY,
    user_key   bigint NOT NULL,
    memory_key bigint NOT NULL,
    memory_id  text NOT NULL,
    op         text NOT NULL CHECK (op IN ('add', 'update', 'delete'))
);
CREATE INDEX changes_user ON changes(user_key, seq);

-- Saved vector index files, for engines that keep them (pgvector needs none).
CREATE TABLE vector_index_files (
    user_key  bigint PRIMARY KEY,
    file_name text NOT NULL,
    seq       bigint NOT NULL,
    count     bigint NOT NULL,
    crc32     bigint NOT NULL,
    size      bigint NOT NULL,
    model     text NOT NULL,
    dim       integer NOT NULL
);

CREATE TABLE idempotency_keys (
    user_key   bigint NOT NULL,
    key        text NOT NULL,
    memory_id  text NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (user_key, key)
);

-- Distinct positions a memory was recalled from, for promotion by use.
CREATE TABLE recalls (
    memory_key bigint NOT NULL,
    position   text NOT NULL,
    PRIMARY KEY (memory_key, position)
);

CREATE FUNCTION memory_mcp_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE users SET doc_count = doc_count + 1, token_total = token_total + NEW.n_tokens
            WHERE user_key = NEW.user_key;
        INSERT INTO changes(user_key, memory_key, memory_id, op) VALUES (NEW.user_key, NEW.key, NEW.id, 'add');
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO changes(user_key, memory_key, memory_id, op) VALUES (NEW.user_key, NEW.key, NEW.id, 'update');
        RETURN NEW;
    END IF;
    UPDATE users SET doc_count = doc_count - 1, token_total = token_total - OLD.n_tokens
        WHERE user_key = OLD.user_key;
    DELETE FROM recalls WHERE memory_key = OLD.key;
    INSERT INTO changes(user_key, memory_key, memory_id, op) VALUES (OLD.user_key, OLD.key, OLD.id, 'delete');
    RETURN OLD;
END $$;

CREATE TRIGGER memories_changed AFTER INSERT OR UPDATE OR DELETE ON memories
    FOR EACH ROW EXECUTE FUNCTION memory_mcp_changed();
"""

# The listing and counting indexes of SQLite's third migration (see there why).
_V2 = """
CREATE INDEX memories_listing ON memories(user_key, created_at, key, valid_until, expires_at, category, scope_level,
                                           valid_from);
DROP INDEX memories_position;
CREATE INDEX memories_position ON memories(user_key, session_id, agent_id, turn_id, valid_until, expires_at);
"""

MIGRATIONS: list[str] = [_V1, _V2]
