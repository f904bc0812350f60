"""The ``memory-mcp`` command (also ``python -m memory_mcp``).

    memory-mcp serve                                  # stdio, for Claude Desktop / Claude Code / Cursor
    memory-mcp serve --transport http --port 8765     # streamable HTTP at http://127.0.0.1:8765/mcp
    memory-mcp serve --transport sse                  # SSE at /sse (+ /messages/)
    memory-mcp serve --transport http --auth-tokens-file tokens   # bearer tokens, one user each
    memory-mcp token add alice --auth-tokens-file tokens          # prints alice's new token
    memory-mcp ui                                     # the memory browser at http://127.0.0.1:8766/

Every flag has a ``MEMORY_MCP_*`` environment variable; flags win.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Any

from . import inspect_cli
from .memory.config import default_db_path

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_DATABASE_URL = "postgresql://user:password@host:5432/db: use PostgreSQL (with pgvector) instead of the SQLite file"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("memory_mcp")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from . import __version__

        return __version__


_SERVE = """Run the MCP server.

  memory-mcp serve                                  # stdio, for Claude Desktop / Claude Code / Cursor
  memory-mcp serve --transport http --port 8765     # streamable HTTP at http://127.0.0.1:8765/mcp
  memory-mcp serve --transport sse                  # SSE at /sse (+ /messages/)
  memory-mcp serve --transport http --auth-tokens-file tokens   # bearer tokens, one user each

The memories are in {db} unless --db-path or --database-url says otherwise.
Every flag has an environment variable (MEMORY_MCP_DB_PATH, MEMORY_MCP_PORT, ...); flags win."""


def _database(parser: argparse.ArgumentParser) -> None:
    """The options every command that opens the database takes."""
    parser.add_argument("--db-path", help=f"SQLite database file (default: {default_db_path()})")
    parser.add_argument("--database-url", help=_DATABASE_URL)
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="how much to log on stderr (default INFO)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memory-mcp", description="Long-term memory for LLM assistants (MCP).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the MCP server", description=_SERVE.format(db=default_db_path()),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--transport", choices=["stdio", "sse", "http"], help="default: stdio")
    serve.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8765)")
    _database(serve)
    serve.add_argument("--user-id", help="user that calls naming no user act for (default: your login name)")
    serve.add_argument("--auth-tokens-file", help="HTTP: require bearer tokens from this file ('user_id token' lines)")
    serve.add_argument("--max-sessions-per-client", type=int,
                       help="HTTP: open sessions one token (or address) may hold (default 32; 0: no limit)")
    serve.add_argument("--requests-per-minute", type=int,
                       help="HTTP: requests a minute one token (or address) may send (default 1200; 0: no limit)")
    serve.add_argument("--ui", action="store_const", const=True,
                       help="HTTP: also serve the memory browser at /ui (as `memory-mcp ui` does on its own)")
    ui = commands.add_parser(
        "ui", help="browse, search, correct and forget memories in a web browser",
        description="Run the memory browser, a web app on loopback: users, each user's sessions, agents and "
        "turns, the memory list and search, and each memory's timeline of versions; add, correct (a new "
        "version), forget, export and import. It follows changes made by any process.\n\n"
        "  memory-mcp ui                                   # http://127.0.0.1:8766/\n"
        "  memory-mcp ui --open --db-path memory.db        # and open it in the web browser\n"
        "  memory-mcp ui --auth-tokens-file tokens         # each person signs in with their token",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ui.add_argument("--host", help="bind address (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=8766, help="port (default 8766)")
    ui.add_argument("--open", dest="open_browser", action="store_true", help="open it in the web browser")
    ui.add_argument("--auth-tokens-file", help="sign-in with the bearer tokens of this file, one user per token")
    _database(ui)
    token = commands.add_parser(
        "token", help="add, list, revoke or rotate HTTP bearer tokens",
        description="Manage the bearer tokens of the HTTP transports, one user per token. A running server "
        "sees every change at its next request.\n\n"
        "  memory-mcp token add alice      # a new token for alice, printed on stdout\n"
        "  memory-mcp token list           # each token's user and id (never the token itself)\n"
        "  memory-mcp token revoke alice   # every token of alice (--id ID: only that one)\n"
        "  memory-mcp token rotate alice   # alice's tokens replaced by one new token, printed\n\n"
        "The tokens file is --auth-tokens-file or MEMORY_MCP_AUTH_TOKENS_FILE.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    token.add_argument("action", choices=["add", "list", "revoke", "rotate"])
    token.add_argument("token_user", metavar="user_id", nargs="?", help="the user the token acts for")
    token.add_argument("--id", dest="token_id", help="revoke: only the token with this id (from token list)")
    token.add_argument("--auth-tokens-file", help="tokens file (default: MEMORY_MCP_AUTH_TOKENS_FILE)")
    reindex = commands.add_parser(
        "reindex", help="rebuild the full-text and vector indexes (re-embedding with another model if asked)",
        description="Rebuild both indexes from the database. With an embedder other than the one the "
        "database was built with, every memory is embedded again first.\n\n"
        "  memory-mcp reindex --db-path memory.db\n"
        "  memory-mcp reindex --embedder-backend ollama --embedder-model nomic-embed-text",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _database(reindex)
    reindex.add_argument("--embedder-backend", choices=["local", "openai", "ollama"])
    reindex.add_argument("--embedder-model", help="model name of the backend")
    export = commands.add_parser(
        "export", help="write every memory version (with history and scopes) as JSON lines",
        description="Write every version of every memory as one JSON object per line.\n\n"
        "  memory-mcp export -o memories.jsonl\n  memory-mcp export --user alice > alice.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("-o", "--output", help="file to write (default: stdout)")
    export.add_argument("--user", dest="only_user", help="export this user's memories only (default: all users)")
    _database(export)
    load = commands.add_parser(
        "import", help="import history: a ChatGPT or Claude export, a server-memory or Mem0 export, or JSON lines",
        description="Import a person's history, keeping its times and sources. Conversations are stored message by "
        "message (each dated when it was said, with its neighbours as context), or with --extract distilled into "
        "facts by a model. Re-running an import stores nothing twice; bad records are reported with their numbers "
        "and the rest is imported.\n\n"
        "  memory-mcp import conversations.json                 # the format is detected\n"
        "  memory-mcp import --format chatgpt chatgpt-export.zip --user-id me\n"
        "  memory-mcp import --format claude conversations.json --extract --extract-model gpt-4o-mini\n"
        "  memory-mcp import --format server-memory memory.json\n"
        "  memory-mcp import --format mem0 mem0-memories.json\n"
        "  memory-mcp import memories.jsonl                     # written by memory-mcp export",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load.add_argument("input", help="the export file ('-' for stdin); a ChatGPT or Claude zip archive as it came")
    load.add_argument("--format", choices=["chatgpt", "claude", "server-memory", "mem0", "jsonl"],
                      help="what the file is (default: detected)")
    load.add_argument("--user-id", help="whose memories they become (default: your login name); a Mem0 memory "
                      "naming its user keeps it, and JSON lines keep theirs")
    load.add_argument("--extract", action="store_true",
                      help="distil each conversation into facts with a model instead of storing every message")
    load.add_argument("--extract-model", help="--extract: the chat model (MEMORY_MCP_EXTRACT_MODEL)")
    load.add_argument("--extract-base-url", help="--extract: OpenAI-compatible API base URL "
                      "(MEMORY_MCP_EXTRACT_BASE_URL; default MEMORY_MCP_OPENAI_BASE_URL)")
    _database(load)
    migrate = commands.add_parser(
        "migrate", help="copy every memory, with its vector, from one database to another",
        description="Copy every memory version (history, scopes, contexts, provenance and vectors: nothing is "
        "embedded again) from SOURCE to TARGET, each a SQLite file or a postgresql:// URL. Versions TARGET "
        "already holds are skipped, so it can be re-run.\n\n"
        "  memory-mcp migrate ~/.local/share/memory_mcp/memory.db postgresql://mcp:secret@db:5432/memories\n"
        "  memory-mcp migrate postgresql://mcp:secret@db:5432/memories backup.db",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    migrate.add_argument("source", help="SQLite file or postgresql:// URL to copy from")
    migrate.add_argument("target", help="SQLite file or postgresql:// URL to copy into")
    migrate.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                         help="how much to log on stderr (default INFO)")
    inspect_cli.add_commands(commands, _database)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, Any] = {
        key: value for key, value in vars(args).items()
        if key not in ("command", "action", "token_user", "token_id", "output", "only_user", "input", "source", "target",
                       "format", "extract", "extract_model", "extract_base_url", "session_id", "open_browser",
                       *inspect_cli.ARGUMENTS)
        and value is not None
    }
    if args.command == "ui":
        overrides["transport"] = "http"  # what it serves
    if args.command not in ("serve", "ui") and "log_level" not in overrides and "MEMORY_MCP_LOG_LEVEL" not in os.environ:
        overrides["log_level"] = "WARNING"  # a command's own output is what a person reads; INFO is for servers
    from pydantic import ValidationError

    from .errors import MemoryMCPError
    from .server.settings import ServerSettings

    try:
        settings = ServerSettings(**overrides)
    except ValidationError as exc:  # one line per bad setting, never a traceback
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            print(f"memory-mcp: {where + ': ' if where else ''}{error['msg'].removeprefix('Value error, ')}",
                  file=sys.stderr)
        return 2
    # Logs go to stderr: on stdio, stdout belongs to the protocol. Configured before the SDK's
    # own basicConfig, which then leaves it alone.
    logging.basicConfig(
        level=settings.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return _run(args, settings)
    except MemoryMCPError as exc:  # bad configuration or an unreachable database: say so in one line
        print(f"memory-mcp: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file named on the command line that cannot be read or written
        if exc.filename is None:
            raise
        print(f"memory-mcp {args.command}: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, settings: Any) -> int:
    if args.command == "serve":
        if settings.ui and settings.transport != "http":
            print("memory-mcp serve: the memory browser (--ui) is served by --transport http only; "
                  "or run `memory-mcp ui` beside this server", file=sys.stderr)
            return 2
        if (busy := _port_in_use(settings)) is not None:
            print(f"memory-mcp serve: {busy}", file=sys.stderr)
            return 2
        try:
            serve(settings)
        except KeyboardInterrupt:  # Ctrl-C: the server has shut down cleanly by now
            pass
    elif args.command == "ui":
        if (busy := _port_in_use(settings)) is not None:
            print(f"memory-mcp ui: {busy}", file=sys.stderr)
            return 2
        _check_database(settings)
        from .ui.serve import run_browser

        with contextlib.suppress(KeyboardInterrupt):
            run_browser(settings, open_browser=args.open_browser)
    elif args.command == "token":
        return _token(args, settings)
    elif args.command in ("export", "import", "migrate"):
        import asyncio

        from . import transfer_cli

        run = {"export": transfer_cli.export, "import": transfer_cli.load, "migrate": transfer_cli.migrate}
        return asyncio.run(run[args.command](settings, args))
    elif args.command in inspect_cli.COMMANDS:
        import asyncio

        return asyncio.run(inspect_cli.run(settings, args))
    elif args.command == "reindex":
        import asyncio

        if (missing := inspect_cli.existing_database(settings, "reindex")) is not None:
            print(missing, file=sys.stderr)
            return 2

        counts = asyncio.run(_reindex(settings))
        logging.getLogger("memory_mcp").info("reindexed: %s", counts)
        print(counts, file=sys.stderr)
    return 0


def _token(args: argparse.Namespace, settings: Any) -> int:
    from .server import auth

    path = settings.auth_tokens_file
    if path is None:
        print("memory-mcp token: give --auth-tokens-file or set MEMORY_MCP_AUTH_TOKENS_FILE", file=sys.stderr)
        return 2
    if args.action != "list" and args.token_user is None:
        print(f"memory-mcp token {args.action}: name the user, e.g. memory-mcp token {args.action} alice",
              file=sys.stderr)
        return 2
    try:
        if args.action == "add":
            print(auth.add_token(path, args.token_user))
            if (held := sum(user == args.token_user for user, _ in auth.list_tokens(path))) > 1:
                print(f"note: {args.token_user} now has {held} valid tokens; `memory-mcp token rotate "
                      f"{args.token_user}` keeps only a new one", file=sys.stderr)
        elif args.action == "rotate":
            print(auth.rotate_token(path, args.token_user))
        elif args.action == "list":
            for user, token_id in auth.list_tokens(path):
                print(f"{user}\t{token_id}")
        else:
            removed = auth.revoke_tokens(path, args.token_user, args.token_id)
            which = f"token {args.token_id} of {args.token_user}" if args.token_id else f"tokens of {args.token_user}"
            if not removed:
                print(f"memory-mcp token revoke: no {which} in {path}", file=sys.stderr)
                return 1
            print(f"revoked {removed} {which.replace('tokens', 'token(s)', 1)}", file=sys.stderr)
    except (ValueError, OSError) as exc:
        print(f"memory-mcp token: {exc}", file=sys.stderr)
        return 2
    return 0


async def _reindex(settings: Any) -> dict[str, int]:
    from .memory.engine import HierarchicalMemory

    memory = await HierarchicalMemory.create(settings, reembed=True)
    try:
        return await memory.reindex()
    finally:
        await memory.close()


def _port_in_use(settings: Any) -> str | None:
    """Why the HTTP port cannot be listened on, said before the database is opened or the model
    loaded (else uvicorn finds out only after both), or None."""
    if settings.transport == "stdio" or not settings.port:
        return None
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
            probe.bind(address)
    except OSError as exc:
        fix = {errno.EADDRINUSE: "stop what uses it or choose another --port",
               errno.EACCES: "a port below 1024 needs privileges: choose another --port"}.get(
            exc.errno or 0, "give --host an address of this machine (127.0.0.1 by default)")
        return f"cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc}): {fix}"
    return None


def _check_database(settings: Any) -> None:
    """Open and close the database before serving, so that a bad URL, a refused login or a
    missing extension is one line and an exit code rather than a traceback from inside the server."""
    import asyncio

    from .compose import make_store

    async def check() -> None:
        store = make_store(settings)
        await store.open()
        await store.close()

    asyncio.run(check())


def serve(settings: Any) -> None:
    # The database first: a file that cannot be opened is one line and exit code 2, before any
    # thread starts (a model half loaded at exit aborts the process).
    _check_database(settings)
    from .compose import checked_embedder

    checked_embedder(settings)  # a setting the embedder cannot serve is one line too
    if settings.embedder_backend == "local":
        # The SDK's import takes longer than the model's load: load both at once, so that the
        # first recall is semantic as soon as the server answers.
        from .adapters.onnx_embedder import load_early

        load_early(settings.embed_threads)
    from .compose import make_store
    from .server.app import build_server
    from .server.origins import transport_security

    server = build_server(settings)
    if settings.transport == "stdio":
        import anyio

        from .server.stdio import serve_stdio

        anyio.run(serve_stdio, server)
        return
    if settings.host not in _LOOPBACK and settings.auth_tokens_file is None:
        logging.getLogger("memory_mcp").warning(
            "listening on %s without authentication: anyone who can reach this port can read and "
            "change every memory in %s", settings.host, make_store(settings).location,
        )
    security = transport_security(settings)
    import uvicorn

    from .server.limits import ClientLimits

    if settings.transport == "http":
        app = server.streamable_http_app(transport_security=security, host=settings.host)
        if settings.ui:
            from .ui.app import mount

            mount(app, settings, server.holder)
        open_sessions = server.session_manager._server_instances.keys  # sessions end by idling out too
    else:
        app = _sse_app(server, settings, security)
        open_sessions = None
    limited = ClientLimits(app, max_sessions=settings.max_sessions_per_client,
                           per_minute=settings.requests_per_minute, open_sessions=open_sessions)
    uvicorn.run(limited, host=settings.host, port=settings.port, log_level=settings.log_level.lower())


def _sse_app(server: Any, settings: Any, security: Any) -> Any:
    """SSE, with the engine held open for as long as the process runs: the SDK enters the MCP
    lifespan once per SSE connection, which would otherwise close the engine when the last client
    leaves and load it again for the next one."""
    from contextlib import asynccontextmanager

    app = server.sse_app(transport_security=security, host=settings.host)

    @asynccontextmanager
    async def engine_for_the_process(_: Any) -> Any:
        async with server.holder.use():
            yield

    app.router.lifespan_context = engine_for_the_process
    return app


if __name__ == "__main__":
    sys.exit(main())
