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
from typing import Any, TextIO

from pydantic import ValidationError

from ..errors import EmbedderMismatchError, MemoryMCPError
from . import embedding, validation
from .duplicates import content_hash
from .fulltext import search_text
from .models import Memory
from .parts import Parts
from .ports import MemoryStore, NewVersion, StoreWriter, Vector
from .writing import add_item

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


async def export_records(parts: Parts, user_id: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """Every memory version (current, superseded and expired), oldest first, as JSON-ready dicts."""
    after = 0
    while True:
        async with parts.store.reading() as db:
            user_key = None
            if user_id is not None:
                user_key = await db.user_key(user_id)
                if user_key is None:
                    return
            rows = await db.page(after, user_key, _PAGE)
        for key, _, version in rows:
            record = version.model_dump(mode="json", exclude={"embedded"})
            record["scope_level"] = version.scope_level.value
            yield record
            after = key
        if len(rows) < _PAGE:
            return


async def export_lines(parts: Parts, user_id: str | None = None) -> AsyncIterator[str]:
    """Each exported record as one JSON line."""
    async for record in export_records(parts, user_id):
        yield json.dumps(record, ensure_ascii=False) + "\n"


async def write_lines(lines: AsyncIterator[str], out: TextIO) -> int:
    """Write every line to ``out``; how many."""
    count = 0
    async for line in lines:
        out.write(line)
        count += 1
    return count


async def import_lines(
    parts: Parts, lines: Iterable[str], progress: Progress | None = None, batch_size: int = 256,
    only_user: str | None = None,
) -> ImportReport:
    """Import JSON lines (see the module docstring); ``progress(n)`` is told of each batch done.
    With ``only_user``, a line of another user is refused and a line naming none is this user's."""
    if only_user is not None:
        validation.check_id(only_user, "user_id")
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
        if only_user is not None:
            owner = record.setdefault("user_id", only_user)
            if owner != only_user:
                report.errors.append((number, f"a memory of user {validation.clip(owner)}, not of "
                                              f"{validation.clip(only_user)}: import it as that user"))
                continue
        batch.append((number, record))
        if len(batch) >= batch_size:
            await _import_batch(parts, batch, report)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        await _import_batch(parts, batch, report)
        if progress:
            progress(len(batch))
    if report.errors:
        number, message = report.errors[0]
        log.info("import: %d line(s) refused; the first, line %d: %s", len(report.errors), number, message)
    return report


async def _import_batch(parts: Parts, batch: list[tuple[int, dict[str, Any]]], report: ImportReport) -> None:
    exact: list[tuple[int, Memory]] = []
    for number, record in batch:
        if "id" not in record:
            try:
                await _add(parts, record)
                report.imported += 1
            except (MemoryMCPError, TypeError) as exc:
                report.errors.append((number, str(exc)))
            continue
        try:
            version = Memory.model_validate(record)
            validation.content(version.content, parts.config.max_content_chars)  # the limits every write obeys
            validation.position(version.user_id, version.session_id, version.agent_id, version.turn_id)
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
    await embedding.wait_until_ready(parts)
    vectors = await parts.embedder.embed([version.content for _, version in exact])
    async with parts.store.transaction() as db:
        for (number, version), vector in zip(exact, vectors, strict=True):
            if await db.get(version.id) is not None:
                report.already_present += 1
                continue
            try:
                async with db.savepoint():
                    await _restore(db, version, vector)
            except Exception as exc:  # a database constraint: refuse this line, keep the others
                report.errors.append((number, f"could not store: {exc}"))
            else:
                report.imported += 1


async def _restore(db: StoreWriter, version: Memory, vector: Vector | None) -> None:
    """Store an exported version as it was: its id, times, scope, links and provenance."""
    user_key = await db.ensure_user(version.user_id)
    text = search_text(version.content, list(version.entity_refs), version.valid_from.timestamp())
    await db.insert(NewVersion(version, user_key, content_hash(version.content), text, vector))


async def _add(parts: Parts, record: dict[str, Any]) -> None:
    allowed = {"content", "user_id", "session_id", "agent_id", "turn_id", "category", "importance",
               "entity_refs", "metadata", "valid_from", "context"}
    unknown = sorted(set(record) - allowed)
    if unknown:
        raise TypeError(f"unknown field(s) {unknown} in a line without an id (allowed: {sorted(allowed)})")
    await add_item(parts, {**record, "provenance": {"source": "import"}})


def _validation_message(exc: ValidationError) -> str:
    problems = [f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}" for e in exc.errors()[:3]]
    return "invalid memory record: " + "; ".join(problems)


@dataclass
class CopyReport:
    """What a copy between stores did: versions copied, already present, and vectors carried."""

    copied: int = 0
    already_present: int = 0
    vectors: int = 0


async def copy_store(source: MemoryStore, target: MemoryStore, progress: Progress | None = None) -> CopyReport:
    """Copy every memory version, with its vector, from one open store to another (SQLite to
    PostgreSQL or back): ids, times, scopes, chains, contexts, provenance and counts are kept, and
    nothing is embedded again. Versions the target already holds (by id) are left as they are, so
    a copy can be re-run. Both must use the same embedding model, if both have one."""
    report = CopyReport()
    async with source.reading() as db:
        model, dim = await db.get_meta("embedder_model"), await db.get_meta("embedding_dim")
    async with target.transaction() as db:
        theirs = await db.get_meta("embedder_model"), await db.get_meta("embedding_dim")
        if model is not None and theirs[0] is not None and theirs != (model, dim):
            raise EmbedderMismatchError(
                f"{target.location} holds vectors of {theirs[0]!r} ({theirs[1]} dimensions) but "
                f"{source.location} holds {model!r} ({dim}): copy into an empty database, or re-embed one "
                "first (memory-mcp reindex --embedder-model ...)"
            )
        if model is not None and theirs[0] is None:
            await db.set_meta("embedder_model", model)
            await db.set_meta("embedding_dim", str(dim))
    after = 0
    while True:
        # In key order: a version is always stored after the one it supersedes, so the target
        # links each to its chain as it arrives.
        async with source.reading() as db:
            page = await db.page(after, None, _PAGE)
            vectors = await db.embeddings([key for key, _, _ in page])
        async with target.transaction() as db:
            for key, _, version in page:
                if await db.get(version.id) is not None:
                    report.already_present += 1
                    continue
                user_key = await db.ensure_user(version.user_id)
                text = search_text(version.content, list(version.entity_refs), version.valid_from.timestamp())
                vector = vectors.get(key)
                await db.insert(NewVersion(version, user_key, content_hash(version.content), text, vector))
                report.copied += 1
                report.vectors += vector is not None
        if progress:
            progress(len(page))
        if len(page) < _PAGE:
            return report
        after = page[-1].key
