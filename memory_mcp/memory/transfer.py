"""Export and import as JSON lines: every version of every memory, with its history and scope.

An export line is one memory version as the API returns it (ids, scope ids, times, the
``supersedes``/``superseded_by`` links). Importing such lines restores them exactly, ids and
chains included; a line already present is skipped, so an import can be re-run. A line without
an ``id`` (``{"user_id": ..., "content": ...}``, say from another tool) is remembered through
``add`` under the usual rules. Bad lines are reported with their line number and the rest is
imported. Vectors are not exported: the importing database embeds with its own model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..errors import MemoryMCPError
from .models import Memory

if TYPE_CHECKING:
    from .core import HierarchicalMemory

log = logging.getLogger(__name__)

_PAGE = 1000
Progress = Callable[[int], None]


@dataclass
class ImportReport:
    """What an import did: lines imported (restored or added), already present, and refused."""

    imported: int = 0
    already_present: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return self.imported + self.already_present + len(self.errors)


async def export_records(memory: HierarchicalMemory, user_id: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """Every memory version (current, superseded and expired), oldest first, as JSON-ready dicts."""
    after = 0
    while True:
        async with memory.store.reading() as db:
            where, params = "m.key > ?", [after]
            if user_id is not None:
                user_key = await memory.store.user_key(db, user_id)
                if user_key is None:
                    return
                where, params = "m.key > ? AND m.user_key = ?", [after, user_key]
            rows = await memory.store.select(db, where, params, f"ORDER BY m.key LIMIT {_PAGE}")
        for key, version in rows:
            record = version.model_dump(mode="json", exclude={"embedded"})
            record["scope_level"] = version.scope_level.value
            yield record
            after = key
        if len(rows) < _PAGE:
            return


async def import_lines(
    memory: HierarchicalMemory, lines: Iterable[str], progress: Progress | None = None, batch_size: int = 256
) -> ImportReport:
    """Import JSON lines (see the module docstring); ``progress(n)`` is told of each batch done."""
    report = ImportReport()
    batch: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"expected a JSON object, got {type(record).__name__}")
        except ValueError as exc:
            report.errors.append((number, f"not a JSON object: {exc}"))
            continue
        batch.append((number, record))
        if len(batch) >= batch_size:
            await _import_batch(memory, batch, report)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        await _import_batch(memory, batch, report)
        if progress:
            progress(len(batch))
    if report.errors:
        number, message = report.errors[0]
        log.info("import: %d line(s) refused; the first, line %d: %s", len(report.errors), number, message)
    return report


async def _import_batch(memory: HierarchicalMemory, batch: list[tuple[int, dict[str, Any]]], report: ImportReport) -> None:
    exact: list[tuple[int, Memory]] = []
    for number, record in batch:
        if "id" not in record:
            try:
                await _add(memory, record)
                report.imported += 1
            except (MemoryMCPError, TypeError) as exc:
                report.errors.append((number, str(exc)))
            continue
        try:
            version = Memory.model_validate(record)
            memory._content(version.content)  # the limits every write obeys
            memory._position(version.user_id, version.session_id, version.agent_id, version.turn_id)
        except ValidationError as exc:
            report.errors.append((number, _validation_message(exc)))
            continue
        except MemoryMCPError as exc:
            report.errors.append((number, str(exc)))
            continue
        exact.append((number, version))
    if not exact:
        return
    # Older versions first, so each version finds the one it supersedes already stored.
    exact.sort(key=lambda item: (item[1].valid_from, item[1].created_at))
    await memory.wait_until_ready()
    vectors = await memory.embedder.embed([version.content for _, version in exact])
    async with memory.store.transaction() as db:
        for (number, version), vector in zip(exact, vectors, strict=True):
            if await memory.store.scalar(db, "SELECT COUNT(*) FROM memories WHERE id = ?", (version.id,)):
                report.already_present += 1
                continue
            await db.execute("SAVEPOINT one")
            try:
                await _restore(memory, db, version, vector)
            except Exception as exc:  # a database constraint: refuse this line, keep the others
                await db.execute("ROLLBACK TO one")
                report.errors.append((number, f"could not store: {exc}"))
            else:
                report.imported += 1
            await db.execute("RELEASE one")


async def _restore(memory: HierarchicalMemory, db: Any, version: Memory, vector: Any) -> None:
    from .core import _hash, _text_columns

    user_key = await memory.store.user_key(db, version.user_id, create=True)
    chain_key = None
    if version.supersedes is not None:
        chain_key = await memory.store.scalar(
            db, "SELECT COALESCE(chain_key, key) FROM memories WHERE id = ? AND user_key = ?",
            (version.supersedes, user_key),
        )

    def epoch(value: Any) -> float | None:
        return None if value is None else value.timestamp()

    await memory.store.insert(db, {
        "id": version.id, "user_key": user_key, "session_id": version.session_id, "agent_id": version.agent_id,
        "turn_id": version.turn_id, "scope_level": version.scope_level.value, "category": version.category.value,
        "content": version.content, "content_hash": _hash(version.content), "importance": version.importance,
        "entity_refs": version.entity_refs, "metadata": version.metadata, "provenance": version.provenance,
        "created_at": epoch(version.created_at), "valid_from": epoch(version.valid_from),
        "valid_until": epoch(version.valid_until), "expires_at": epoch(version.expires_at),
        "chain_key": chain_key, "supersedes": version.supersedes, "superseded_by": version.superseded_by,
        "origin_level": version.origin_level.value if version.origin_level else None,
        "origin_session_id": version.origin_session_id, "origin_agent_id": version.origin_agent_id,
        "origin_turn_id": version.origin_turn_id, "promoted_at": epoch(version.promoted_at),
        "reinforcement_count": version.reinforcement_count,
        **_text_columns(version.content, list(version.entity_refs), version.valid_from.timestamp(), version.context),
        "embedding": None if vector is None else vector.tobytes(),
    })


async def _add(memory: HierarchicalMemory, record: dict[str, Any]) -> None:
    allowed = {"content", "user_id", "session_id", "agent_id", "turn_id", "category", "importance",
               "entity_refs", "metadata", "valid_from", "context"}
    unknown = sorted(set(record) - allowed)
    if unknown:
        raise TypeError(f"unknown field(s) {unknown} in a line without an id (allowed: {sorted(allowed)})")
    await memory.add(**record, provenance={"source": "import"})


def _validation_message(exc: ValidationError) -> str:
    problems = [f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors()[:3]]
    return "invalid memory record: " + "; ".join(problems)
