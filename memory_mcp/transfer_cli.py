"""``memory-mcp export``, ``import`` and ``migrate``: JSON lines in and out, and a copy between
databases, with a progress bar on a terminal (stderr) and silence when piped, so the output stays
clean for scripts."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from tqdm import tqdm

from .memory.engine import HierarchicalMemory


def _bar(total: int | None, unit: str) -> tqdm:
    if not sys.stderr.isatty():
        return tqdm(disable=True)
    size = os.get_terminal_size(sys.stderr.fileno())  # a terminal of unknown size says 0 x 0,
    # which tqdm takes as no room at all and shows nothing
    return tqdm(total=total, unit=unit, file=sys.stderr, ncols=size.columns or 80, nrows=size.lines or 24)


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
    source: TextIO = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")  # noqa: SIM115
    total = None  # a pipe can be read once only; a regular file is counted first for the bar
    if args.input != "-" and os.path.isfile(args.input) and sys.stderr.isatty():
        with open(args.input, encoding="utf-8") as counting:
            total = sum(1 for line in counting if line.strip())
    memory = await HierarchicalMemory.create(settings)
    try:
        with source, _bar(total, "line") as bar:
            report = await memory.import_jsonl(_lines(source), progress=bar.update)
    finally:
        await memory.close()
    for number, message in report.errors[:50]:
        print(f"line {number}: {message}", file=sys.stderr)
    if len(report.errors) > 50:
        print(f"... and {len(report.errors) - 50} more bad lines", file=sys.stderr)
    print(f"imported {report.imported}, already present {report.already_present}, "
          f"refused {len(report.errors)}", file=sys.stderr)
    return 1 if report.errors else 0


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


def _lines(source: TextIO) -> Iterator[str]:
    yield from source


class _Counting:
    """A file that moves the progress bar by one per line written."""

    def __init__(self, out: TextIO, bar: tqdm) -> None:
        self._out, self._bar = out, bar

    def write(self, text: str) -> int:
        self._bar.update(text.count("\n"))
        return self._out.write(text)
