"""Bearer tokens for the HTTP transports: each token acts for exactly one user.

Tokens live in a file of ``user_id token`` lines (``memory-mcp token add alice`` writes one).
The server keeps only their SHA-256 digests and reads the file again when it changes, so a token
added or removed takes effect without a restart.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path

from mcp.server.auth.provider import AccessToken

log = logging.getLogger(__name__)

SCOPE = "memory"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenFile:
    """The ``TokenVerifier`` the SDK's bearer middleware asks about each request's token."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._users: dict[bytes, str] = {}
        self._stamp: tuple[int, int] | None = None
        self._load()

    def _load(self) -> None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"auth tokens file {self.path} does not exist "
                                    "(create it with: memory-mcp token add <user_id>)") from None
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp == self._stamp:
            return
        users: dict[bytes, str] = {}
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                log.warning("%s line %d: expected 'user_id token', skipped", self.path, number)
                continue
            user_id, token = parts
            users[_digest(token)] = user_id
        self._users, self._stamp = users, stamp
        log.info("auth: %d token(s) for %d user(s) from %s", len(users), len(set(users.values())), self.path)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            self._load()
        except OSError as exc:  # the file went away: keep the tokens known so far
            log.warning("auth: cannot read %s (%s); using the tokens read before", self.path, exc)
        user_id = self._users.get(_digest(token))
        if user_id is None:
            return None
        return AccessToken(token=token, client_id=user_id, subject=user_id, scopes=[SCOPE])


def add_token(path: Path, user_id: str) -> str:
    """Append a new random token for ``user_id`` to the file (created private); return it."""
    if not user_id or any(c.isspace() for c in user_id):
        raise ValueError(f"user_id must be non-empty without spaces, got {user_id!r}")
    token = secrets.token_urlsafe(32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(f"{user_id} {token}\n")
    return token
