"""``memory-mcp ui``: the memory browser on its own HTTP server."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
import webbrowser
from typing import Any

from ..server.origins import LOOPBACK
from .app import create_app

log = logging.getLogger("memory_mcp")


def run_browser(settings: Any, *, open_browser: bool = False) -> None:
    import uvicorn

    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{settings.port}/"
    if settings.host not in LOOPBACK and settings.auth_tokens_file is None:
        log.warning("the memory browser listens on %s without sign-in: anyone who can reach this port can read "
                    "and change every memory (give --auth-tokens-file)", settings.host)
    print(f"memory browser: {url} (Ctrl-C stops it)", file=sys.stderr)
    if open_browser:
        threading.Thread(target=_open_when_listening, args=(settings.host, settings.port, url), daemon=True).start()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower())


def _open_when_listening(host: str, port: int, url: str) -> None:
    for _ in range(100):
        try:
            with socket.create_connection((host, port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    webbrowser.open(url)
