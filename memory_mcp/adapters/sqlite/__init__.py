"""The SQLite engine: store, schema and migrations, selections as SQL, full text with FTS5."""
