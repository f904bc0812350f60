"""The ``memory-mcp`` command (also ``python -m memory_mcp``).

    memory-mcp serve                                  # stdio, for Claude Desktop / Claude Code / Cursor
    memory-mcp serve --transport http --port 8765     # streamable HTTP at http://127.0.0.1:8765/mcp
    memory-mcp serve --transport sse                  # SSE at /sse (+ /messages/)
    memory-mcp serve --transport http --auth-tokens-file tokens   # bearer tokens, one user each
    memory-mcp token add alice --auth-tokens-file tokens          # prints alice's new token

Every flag has a ``MEMORY_MCP_*`` environment variable; flags win.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_DATABASE_URL = "postgresql://user:password@host:5432/db: use PostgreSQL (with pgvector) instead of the SQLite file"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("memory_mcp")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from . import __version__

        return __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memory-mcp", description="Long-term memory for LLM assistants (MCP).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the MCP server", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--transport", choices=["stdio", "sse", "http"], help="default: stdio")
    serve.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8765)")
    serve.add_argument("--db-path", help="SQLite database file (default: in your user data directory)")
    serve.add_argument("--database-url", help=_DATABASE_URL)
    serve.add_argument("--user-id", help="user that calls naming no user act for (default: your login name)")
    serve.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument("--auth-tokens-file", help="HTTP: require bearer tokens from this file ('user_id token' lines)")
    token = commands.add_parser(
        "token", help="manage HTTP bearer tokens",
        description="Add a bearer token for a user to the tokens file and print it (on stdout).\n\n"
        "  memory-mcp token add alice --auth-tokens-file ~/.config/memory-mcp/tokens",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    token.add_argument("action", choices=["add"])
    token.add_argument("token_user", metavar="user_id", help="the user the token acts for")
    token.add_argument("--auth-tokens-file", help="tokens file (default: MEMORY_MCP_AUTH_TOKENS_FILE)")
    reindex = commands.add_parser(
        "reindex", help="rebuild the full-text and vector indexes (re-embedding with another model if asked)",
        description="Rebuild both indexes from the database. With an embedder other than the one the "
        "database was built with, every memory is embedded again first.\n\n"
        "  memory-mcp reindex --db-path memory.db\n"
        "  memory-mcp reindex --embedder-backend ollama --embedder-model nomic-embed-text",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reindex.add_argument("--db-path", help="SQLite database file (default: in your user data directory)")
    reindex.add_argument("--database-url", help=_DATABASE_URL)
    reindex.add_argument("--embedder-backend", choices=["local", "openai", "ollama"])
    reindex.add_argument("--embedder-model", help="model name of the backend")
    reindex.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    export = commands.add_parser(
        "export", help="write every memory version (with history and scopes) as JSON lines",
        description="Write every version of every memory as one JSON object per line.\n\n"
        "  memory-mcp export -o memories.jsonl\n  memory-mcp export --user alice > alice.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("-o", "--output", help="file to write (default: stdout)")
    export.add_argument("--user", dest="only_user", help="export this user's memories only (default: all users)")
    export.add_argument("--db-path", help="SQLite database file (default: in your user data directory)")
    export.add_argument("--database-url", help=_DATABASE_URL)
    export.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
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
    load.add_argument("--db-path", help="SQLite database file (default: in your user data directory)")
    load.add_argument("--database-url", help=_DATABASE_URL)
    load.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
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
    migrate.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, Any] = {
        key: value for key, value in vars(args).items()
        if key not in ("command", "action", "token_user", "output", "only_user", "input", "source", "target", "format",
                       "extract", "extract_model", "extract_base_url")
        and value is not None
    }
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


def _run(args: argparse.Namespace, settings: Any) -> int:
    if args.command == "serve":
        try:
            serve(settings)
        except KeyboardInterrupt:  # Ctrl-C: the server has shut down cleanly by now
            pass
    elif args.command == "token":
        if settings.auth_tokens_file is None:
            print("memory-mcp token: give --auth-tokens-file or set MEMORY_MCP_AUTH_TOKENS_FILE", file=sys.stderr)
            return 2
        from .server.auth import add_token

        try:
            print(add_token(settings.auth_tokens_file, args.token_user))
        except (ValueError, OSError) as exc:
            print(f"memory-mcp token: {exc}", file=sys.stderr)
            return 2
    elif args.command in ("export", "import", "migrate"):
        import asyncio

        from . import transfer_cli

        run = {"export": transfer_cli.export, "import": transfer_cli.load, "migrate": transfer_cli.migrate}
        return asyncio.run(run[args.command](settings, args))
    elif args.command == "reindex":
        import asyncio

        counts = asyncio.run(_reindex(settings))
        logging.getLogger("memory_mcp").info("reindexed: %s", counts)
        print(counts, file=sys.stderr)
    return 0


async def _reindex(settings: Any) -> dict[str, int]:
    from .memory.engine import HierarchicalMemory

    memory = await HierarchicalMemory.create(settings, reembed=True)
    try:
        return await memory.reindex()
    finally:
        await memory.close()


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
    if settings.embedder_backend == "local":
        # The SDK's import takes longer than the model's load: load both at once, so that the
        # first recall is semantic as soon as the server answers.
        from .adapters.onnx_embedder import load_early

        load_early(settings.embed_threads)
    from mcp.server.transport_security import TransportSecuritySettings

    from .compose import make_store
    from .server.app import build_server

    server = build_server(settings)
    if settings.transport == "stdio":
        server.run("stdio")
        return
    if settings.host not in _LOOPBACK and settings.auth_tokens_file is None:
        logging.getLogger("memory_mcp").warning(
            "listening on %s without authentication: anyone who can reach this port can read and "
            "change every memory in %s", settings.host, make_store(settings).location,
        )
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"] + ([f"{settings.host}:*"] if settings.host not in _LOOPBACK else [])
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *settings.allowed_origins]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )
    if settings.transport == "http":
        server.run("streamable-http", host=settings.host, port=settings.port, transport_security=security)
        return
    _serve_sse(server, settings, security)


def _serve_sse(server: Any, settings: Any, security: Any) -> None:
    """SSE, with the engine held open for as long as the process runs: the SDK enters the MCP
    lifespan once per SSE connection, which would otherwise close the engine when the last client
    leaves and load it again for the next one."""
    from contextlib import asynccontextmanager

    import uvicorn

    app = server.sse_app(transport_security=security, host=settings.host)

    @asynccontextmanager
    async def engine_for_the_process(_: Any) -> Any:
        async with server.holder.use():
            yield

    app.router.lifespan_context = engine_for_the_process
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower())


if __name__ == "__main__":
    sys.exit(main())
