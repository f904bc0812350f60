"""``memory-mcp export``, ``import`` and ``migrate``: JSON lines in and out, and a copy between
databases, with a progress bar on a terminal (stderr) and silence when piped, so the output stays
clean for scripts."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any, TextIO

from tqdm import tqdm

from .memory.engine import HierarchicalMemory


def _bar(total: int | None, unit: str) -> tqdm:
    if not sys.stderr.isatty():
        return tqdm(disable=True)
    size = os.get_terminal_size(sys.stderr.fileno())  # a terminal of unknown size says 0 x 0,
    # which tqdm takes as no room at all and shows nothing
    return tqdm(total=total, unit=unit, unit_scale=unit == "B", file=sys.stderr, ncols=size.columns or 80,
                nrows=size.lines or 24)


async def export(settings: Any, args: argparse.Namespace) -> int:
    from .inspect_cli import existing_database

    if (missing := existing_database(settings, "export")) is not None:
        print(missing, file=sys.stderr)
        return 2
    memory = await HierarchicalMemory.create(settings, prepare=False)  # exporting embeds nothing
    try:
        stats = await memory.stats(args.only_user)
        with contextlib.ExitStack() as stack:
            out: TextIO = stack.enter_context(open(args.output, "w", encoding="utf-8")) if args.output else sys.stdout
            bar = stack.enter_context(_bar(stats.total, "memory"))
            written = await memory.export_jsonl(_Counting(out, bar), args.only_user)
        print(f"exported {written} memory versions", file=sys.stderr)
        return 0
    finally:
        await memory.close()


async def load(settings: Any, args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from .errors import ExtractionError, ImportSourceError
    from .importers import ExtractionSettings, extractor_from, import_source, open_export

    # The file first: one that cannot be read, or whose format cannot be told, is one line before
    # any database is opened.
    source, format = open_export(args.input, args.format)
    extractor = None
    try:
        if args.extract:
            if format not in ("chatgpt", "claude"):
                raise ImportSourceError(f"--extract distils conversations: it applies to ChatGPT and Claude exports, "
                                        f"not to {format}")
            given = {"model": args.extract_model, "base_url": args.extract_base_url}
            try:
                wanted = ExtractionSettings(**{k: v for k, v in given.items() if v is not None})
            except ValidationError as exc:
                problem = exc.errors()[0]
                raise ExtractionError(f"MEMORY_MCP_EXTRACT_{str(problem['loc'][0]).upper()}: {problem['msg']}") from None
            extractor = extractor_from(wanted, settings.openai_base_url, settings.openai_api_key)
        memory = await HierarchicalMemory.create(settings)
        try:
            with _bar(source.size, "B") as bar:
                def show(report: Any) -> None:
                    bar.update(report.bytes_read - bar.n)
                    bar.set_postfix_str(f"{report.messages or report.records} {'messages' if report.messages else 'records'} read",
                                        refresh=False)

                report = await import_source(memory, source, format, user_id=settings.user_id, extractor=extractor,
                                             progress=show)
        finally:
            await memory.close()
    finally:
        source.close()
        if extractor is not None:
            await extractor.aclose()
    for where, message in report.errors[:50]:
        print(f"{where}: {message}", file=sys.stderr)
    if report.refused > 50:
        print(f"... and {report.refused - 50} more refused", file=sys.stderr)
    if report.stopped:
        print(f"stopped at {report.stopped}", file=sys.stderr)
    print(report.summary(), file=sys.stderr)
    return 2 if report.fatal else 1 if report.refused or report.stopped else 0


async def migrate(settings: Any, args: argparse.Namespace) -> int:
    from .compose import make_store
    from .memory.config import MemoryConfig
    from .memory.transfer import copy_store

    def store_at(where: str) -> Any:
        if where.startswith(("postgresql://", "postgres://")):
            return make_store(MemoryConfig(database_url=where))
        return make_store(MemoryConfig(db_path=os.path.expanduser(where)))

    for where in (args.source, args.target):
        if "://" in where and not where.startswith(("postgresql://", "postgres://")):
            print(f"memory-mcp migrate: {where} is neither a SQLite file nor a postgresql:// URL", file=sys.stderr)
            return 2
    if not args.source.startswith(("postgresql://", "postgres://")) and not os.path.isfile(
        os.path.expanduser(args.source)
    ):
        print(f"memory-mcp migrate: no database file at {args.source}", file=sys.stderr)
        return 2
    source, target = store_at(args.source), store_at(args.target)
    await source.open()
    try:
        await target.open()
        try:
            async with source.reading() as db:
                total = await db.count_memories()
            with _bar(total, "memory") as bar:
                report = await copy_store(source, target, progress=bar.update)
        finally:
            await target.close()
    finally:
        await source.close()
    print(f"copied {report.copied} memory versions ({report.vectors} with vectors) from {source.location} "
          f"to {target.location}; {report.already_present} were there already", file=sys.stderr)
    return 0


class _Counting:
    """A file that moves the progress bar by one per line written."""

    def __init__(self, out: TextIO, bar: tqdm) -> None:
        self._out, self._bar = out, bar

    def write(self, text: str) -> int:
        self._bar.update(text.count("\n"))
        return self._out.write(text)
