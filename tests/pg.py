"""A private PostgreSQL 16 with pgvector for the tests (PyPI's ``pgserver``: no system install).

One server per test session; each test gets a database of its own, copied from a template that
already has the extension and the schema (a copy takes a few milliseconds), dropped afterwards.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from memory_mcp.adapters.postgres.store import PostgresMemoryStore

TEMPLATE = "memory_mcp_template"


class PostgresForTests:
    def __init__(self, directory: Path):
        import pgserver

        self.server = pgserver.get_server(directory, cleanup_mode="stop")
        self.admin_url = self.server.get_uri()
        self._names = itertools.count()
        self._template_ready = False

    def url_of(self, database: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.admin_url)

    async def new_database(self, *, with_schema: bool = True) -> str:
        """A fresh database (schema already in place unless ``with_schema`` is false); its URL."""
        conn = await self._admin()
        try:
            if with_schema and not self._template_ready:
                await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
                await conn.execute(f"CREATE DATABASE {TEMPLATE}")
                store = PostgresMemoryStore(self.url_of(TEMPLATE))
                await store.open()
                await store.close()
                self._template_ready = True
            name = f"test_{os.getpid()}_{next(self._names)}"
            template = TEMPLATE if with_schema else "template1"
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        finally:
            await conn.close()
        return self.url_of(name)

    async def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        conn = await self._admin()
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()

    def stop(self) -> None:
        self.server.cleanup()
