"""One import from start to end: open the export, tell (or check) its format, read it record by
record and store what each holds, reporting every record that cannot be used by its number."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ExtractionError, ImportSourceError, InvalidMemoryError
from ..memory import validation
from ..memory.engine import HierarchicalMemory
from . import chatgpt, claude, mem0, server_memory
from .conversations import add_all, count_stored, store_conversation
from .detect import FORMATS, NAMES, describe, detect
from .extract import Extractor, store_extracted
from .report import DamagedRecord, ImportReport
from .source import DamagedLine, Source, UnreadableRest, open_source

Progress = Callable[[ImportReport], None]
_BATCH = 256  # facts (server-memory, Mem0) are stored this many at a time
_CONVERSATIONS = {"chatgpt": chatgpt.conversation, "claude": claude.conversation}


def open_export(path: str, format: str | None = None) -> tuple[Source, str]:
    """The export at ``path`` ('-': stdin), opened, and its format: ``format`` if given (checked
    against what the file looks like), else the one detected. Raises ImportSourceError."""
    if format is not None and format not in FORMATS:
        raise ImportSourceError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    source = open_source(path)
    try:
        if not source.head.strip():
            raise ImportSourceError(f"{source.name} is empty: there is nothing to import")
        found = detect(source.head)
        if format is None and found is None:
            raise ImportSourceError(
                f"cannot tell what kind of export {source.name} is (it starts with {describe(source.head)}): "
                f"give --format, one of {', '.join(FORMATS)}"
            )
        if format is not None and found is not None and found != format:
            raise ImportSourceError(f"{source.name} looks like {NAMES[found]}, not {NAMES[format]}: "
                                    f"use --format {found}")
        return source, format or found  # type: ignore[return-value]
    except BaseException:
        source.close()
        raise


async def import_file(
    memory: HierarchicalMemory, path: str, format: str | None = None, *, user_id: str,
    extractor: Extractor | None = None, progress: Progress | None = None,
) -> ImportReport:
    """Import an export file into ``memory`` for ``user_id`` (see :func:`import_source`)."""
    source, found = open_export(path, format)
    try:
        return await import_source(memory, source, found, user_id=user_id, extractor=extractor, progress=progress)
    finally:
        source.close()


async def import_source(
    memory: HierarchicalMemory, source: Source, format: str, *, user_id: str,
    extractor: Extractor | None = None, progress: Progress | None = None,
) -> ImportReport:
    """Read an opened export to its end and store what it holds for ``user_id`` (a Mem0 memory
    naming its own user keeps it). ``extractor`` distils conversations into facts instead of storing
    their messages. ``progress(report)`` is told after each record. A record that cannot be used is
    reported and skipped; a file whose JSON breaks is read up to the break (``report.stopped``)."""
    user_id = validation.position(user_id).user_id
    report = ImportReport(format)
    try:
        if format == "jsonl":
            await _jsonl(memory, source, report, progress)
        elif format in _CONVERSATIONS:
            await _conversations(memory, source, format, user_id, extractor, report, progress)
        else:
            await _facts(memory, source, format, user_id, report, progress)
    except UnreadableRest as exc:
        report.stopped = f"record {exc.number}: {exc}; the records before it were imported"
    except ExtractionError as exc:  # what was stored stays; a later run goes on from there
        report.stopped, report.fatal = f"record {report.records}: {exc}; the records before it were imported", True
    report.bytes_read = source.consumed
    return report


async def _conversations(
    memory: HierarchicalMemory, source: Source, format: str, user_id: str, extractor: Extractor | None,
    report: ImportReport, progress: Progress | None,
) -> None:
    read = _CONVERSATIONS[format]
    # Both exports are an array; an object holding it under "conversations" is read the same way.
    prefix = "item" if source.head.lstrip().startswith(b"[") else "conversations.item"
    for number, record in source.array_items(prefix):
        report.records += 1
        where = f"record {number}"
        try:
            conversation = read(record)
        except DamagedRecord as exc:
            report.refuse(where, str(exc))
            continue
        if extractor is not None:
            await store_extracted(memory, extractor, conversation, user_id, where, report)
        else:
            await store_conversation(memory, conversation, user_id, where, report)
        _tell(progress, report, source)


async def _facts(
    memory: HierarchicalMemory, source: Source, format: str, user_id: str, report: ImportReport,
    progress: Progress | None,
) -> None:
    """server-memory (JSON lines) and Mem0 (a JSON array, or one under "results")."""
    records: Any
    if format == "server-memory":
        records, label = source.json_lines(), "line"
    else:
        records = source.array_items("item" if source.head.lstrip().startswith(b"[") else "results.item")
        label = "record"
    batch: list[tuple[str, dict[str, Any]]] = []
    for number, record in records:
        report.records += 1
        where = f"{label} {number}"
        try:
            if isinstance(record, DamagedLine):
                raise DamagedRecord(record.reason)
            found = server_memory.items(record) if format == "server-memory" else [mem0.item(record, user_id)]
        except DamagedRecord as exc:
            report.refuse(where, str(exc))
            continue
        batch += [(where, {"user_id": user_id, **item}) for item in found]
        if len(batch) >= _BATCH:
            await _store_facts(memory, batch, report)
            batch = []
            _tell(progress, report, source)
    await _store_facts(memory, batch, report)
    _tell(progress, report, source)


async def _store_facts(memory: HierarchicalMemory, batch: list[tuple[str, dict[str, Any]]], report: ImportReport) -> None:
    """Store a batch of facts, each for its own user, skipping those an earlier import stored."""
    users: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for where, item in batch:
        users.setdefault(item["user_id"], []).append((where, item))
    todo: list[tuple[str, dict[str, Any]]] = []
    for user, entries in users.items():
        try:
            used = await memory.used_keys(user, [item["idempotency_key"] for _, item in entries])
        except InvalidMemoryError as exc:  # a Mem0 user id we cannot take
            for where, _ in entries:
                report.refuse(where, str(exc))
            continue
        report.already_present += sum(item["idempotency_key"] in used for _, item in entries)
        todo += [(where, item) for where, item in entries if item["idempotency_key"] not in used]
    items = [item for _, item in todo]
    stored = await add_all(memory, items, [where for where, _ in todo], report)
    count_stored(items, stored, {}, report)


async def _jsonl(memory: HierarchicalMemory, source: Source, report: ImportReport, progress: Progress | None) -> None:
    """memory_mcp's own JSON lines, through ``import_jsonl`` (bytes that are not UTF-8 reach its
    checks as text it refuses, so each bad line is named by its number)."""
    def step(lines: int) -> None:
        report.records += lines
        _tell(progress, report, source)

    lines = (line.decode("utf-8", "surrogateescape") for line in source.stream)
    done = await memory.import_jsonl(lines, progress=step)
    report.records, report.stored, report.already_present = done.lines, done.imported, done.already_present
    for number, message in done.errors:
        report.refuse(f"line {number}", message)


def _tell(progress: Progress | None, report: ImportReport, source: Source) -> None:
    report.bytes_read = source.consumed
    if progress is not None:
        progress(report)
