"""``memory-mcp stats``, ``list``, ``search``, ``show``, ``forget`` and ``check``: a person's view
into the memory database from the terminal, the same engine calls the MCP tools make.

Each prints readable lines (a memory's content quoted on one line, so stored newlines cannot pass
for more lines), or with ``--json`` one JSON document on stdout for scripts. Reading commands never
load the embedding model, except ``search``, which needs it for meaning.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the engine is imported when a command runs: `memory-mcp serve` starts without it here
    from .memory.engine import HierarchicalMemory
    from .memory.models import Memory, SearchResult


def add_commands(commands: Any, database: Any) -> None:
    """The commands' parsers; ``database(parser)`` adds the shared --db-path/--database-url/--log-level."""
    def command(name: str, summary: str, example: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, help=summary, description=f"{summary[0].upper()}{summary[1:]}.\n\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        database(parser)
        parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
        return parser

    stats = command("stats", "count the memories of a user, or of the whole database",
                    "memory-mcp stats --user-id alice")
    stats.add_argument("--user-id", help="this user's memories only (default: every user)")
    listing = command("list", "list a user's current memories, newest first",
                      "memory-mcp list --user-id alice --limit 20")
    listing.add_argument("--user-id", help="whose memories (default: the server's default user)")
    listing.add_argument("--session-id", help="only this session's memories")
    listing.add_argument("--all", dest="include_superseded", action="store_true", help="superseded versions too")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--offset", type=int, default=0, help="skip this many first")
    search = command("search", "search a user's memories by meaning and words",
                     'memory-mcp search "where does she live?" --user-id alice')
    search.add_argument("query", help="what to look for, in plain words")
    search.add_argument("--user-id", help="whose memories (default: the server's default user)")
    search.add_argument("--top-k", type=int, default=10, help="at most this many results (default 10)")
    search.add_argument("--mode", choices=["hybrid", "semantic", "text"], default="hybrid")
    show = command("show", "show one memory and every version of its fact", "memory-mcp show 0b6f1c...")
    show.add_argument("memory_id", help="the memory's id (any version)")
    forget = command("forget", "delete a memory for good", "memory-mcp forget 0b6f1c... --yes")
    forget.add_argument("memory_id", help="the memory's id")
    forget.add_argument("--whole-history", action="store_true", help="every version of the fact, not just this one")
    forget.add_argument("--yes", action="store_true", help="do not ask (required when not on a terminal)")
    command("check", "check the database's consistency (version links, full-text and vector indexes)",
            "memory-mcp check")


ARGUMENTS = ("json", "query", "top_k", "mode", "memory_id", "whole_history", "yes", "include_superseded",
             "limit", "offset")  # the commands' own, not settings


def existing_database(settings: Any, command: str) -> str | None:
    """Why ``command`` cannot run: the SQLite file it would read does not exist (it is not
    created by a command that only reads it), or None."""
    if settings.database_url is None and not settings.db_path.exists():
        return (f"memory-mcp {command}: there is no memory database at {settings.db_path}: give --db-path "
                "(or MEMORY_MCP_DB_PATH) of an existing one")
    return None


async def run(settings: Any, args: argparse.Namespace) -> int:
    from .memory.engine import HierarchicalMemory

    if (missing := existing_database(settings, args.command)) is not None:
        print(missing, file=sys.stderr)
        return 2
    memory = await HierarchicalMemory.create(settings, prepare=args.command == "search")
    try:
        return await COMMANDS[args.command](memory, settings, args)
    finally:
        await memory.close()


async def _stats(memory: HierarchicalMemory, settings: Any, args: argparse.Namespace) -> int:
    stats = await memory.stats(args.user_id)
    if args.json:
        return _print_json(stats.model_dump())
    print(f"{'user ' + repr(args.user_id) if args.user_id else 'all users'} ({stats.users} in the database): "
          f"{stats.current} current, {stats.superseded} superseded, {stats.expired} expired, {stats.total} in all")
    for title, counts in (("by category", stats.categories), ("by scope", stats.scope_levels)):
        if counts:
            print(f"  {title}: " + ", ".join(f"{name} {n}" for name, n in sorted(counts.items())))
    return 0


async def _list(memory: HierarchicalMemory, settings: Any, args: argparse.Namespace) -> int:
    user = args.user_id or settings.user_id
    found = await memory.get_all(user, args.session_id, include_superseded=args.include_superseded,
                                 limit=args.limit, offset=args.offset)
    if args.json:
        return _print_json([_record(m) for m in found])
    if not found:
        print(f"no memories of user {user!r}" + (" in that session" if args.session_id else ""), file=sys.stderr)
    for m in found:
        print(_line(m))
    return 0


async def _search(memory: HierarchicalMemory, settings: Any, args: argparse.Namespace) -> int:
    user = args.user_id or settings.user_id
    if not args.query.strip():
        print('memory-mcp search: the query is empty: say what to look for, e.g. memory-mcp search "her job"',
              file=sys.stderr)
        return 2
    results = await memory.search(args.query, user, top_k=args.top_k, mode=args.mode)
    if args.json:
        return _print_json([{**_record(r.memory), **_scores(r)} for r in results])
    if not results:
        print(f"no memories of user {user!r} match", file=sys.stderr)
    for r in results:
        print(f"{r.score:.3f}  {_line(r.memory)}")
    return 0


async def _show(memory: HierarchicalMemory, settings: Any, args: argparse.Namespace) -> int:
    shown = await memory.get(args.memory_id)
    versions = await memory.get_history(args.memory_id)
    if args.json:
        return _print_json({"memory": _record(shown), "history": [_record(v) for v in versions]})
    for name, value in _record(shown).items():
        if value not in (None, [], {}):
            plain = isinstance(value, str) and name not in ("content", "context")
            print(f"{name:>19}: {value if plain else json.dumps(value, ensure_ascii=False)}")
    print(f"history ({len(versions)} version{'s' if len(versions) != 1 else ''}, oldest first):")
    for v in versions:
        mark = "*" if v.id == shown.id else " "
        until = f"until {v.valid_until:%Y-%m-%d %H:%M}" if v.valid_until else "current"
        print(f" {mark} {v.valid_from:%Y-%m-%d %H:%M} {until:>22}  {v.id}  {json.dumps(v.content, ensure_ascii=False)}")
    return 0


async def _forget(memory: HierarchicalMemory, settings: Any, args: argparse.Namespace) -> int:
    target = await memory.get(args.memory_id)
    what = "every version of" if args.whole_history else "the memory"
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"memory-mcp forget: this deletes {what} {_line(target)} for good; add --yes to confirm",
                  file=sys.stderr)
            return 2
        answer = input(f"Delete {what} {_line(target)} for good? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return 1
    deleted = await memory.delete(args.memory_id, whole_chain=args.whole_history)
    if args.json:
        return _print_json({"deleted": deleted})
    print(f"forgot {deleted} memor{'y' if deleted == 1 else 'ies'}", file=sys.stderr)
    return 0


async def _check(memory: HierarchicalMemory, settings: Any, args: argparse.Namespace) -> int:
    problems = await memory.check()
    if args.json:
        _print_json(problems)
    else:
        found = [(kind, p) for kind, items in problems.items() for p in items]
        for kind, problem in found:
            print(f"{kind}: {problem}")
        print(f"{memory.store.location}: " + (f"{len(found)} problem(s) found; `memory-mcp reindex` rebuilds "
              "both indexes" if found else "sound"), file=sys.stderr)
    return 1 if any(problems.values()) else 0


COMMANDS = {"stats": _stats, "list": _list, "search": _search, "show": _show, "forget": _forget, "check": _check}


def _record(m: Memory) -> dict[str, Any]:
    return m.model_dump(mode="json", exclude_none=True)


def _scores(r: SearchResult) -> dict[str, Any]:
    return {"score": r.score, "relevance": r.relevance, "similarity": r.similarity, "text_score": r.text_score}


def _line(m: Memory) -> str:
    """One memory on one line: id, when it became true, kind and scope, its content quoted."""
    ended = f" (superseded {m.valid_until:%Y-%m-%d})" if m.valid_until else ""
    return (f"{m.id}  {m.valid_from:%Y-%m-%d}  [{m.category}/{m.scope_level}]  "
            f"{json.dumps(m.content, ensure_ascii=False)}{ended}")


def _print_json(value: Any) -> int:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))
    return 0
