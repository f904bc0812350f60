"""Bearer tokens for the HTTP transports: each token acts for exactly one user.

Tokens live in a file of ``user_id token`` lines (``memory-mcp token add alice`` writes one); ``#``
starts a comment, on its own line or after a token. The server keeps only their SHA-256 digests and
looks at the file at every request, so a token added, removed or rotated takes effect at once.
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
        self._read: bytes | None = None
        self._load()

    def _load(self) -> None:
        # Read whole each time (a small file, a few microseconds): a rotation by `cp -p` or `mv`
        # keeps the modification time and size, and must not leave the old token valid.
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"auth tokens file {self.path} does not exist "
                                    "(create it with: memory-mcp token add <user_id>)") from None
        if text == self._read:
            return
        users: dict[bytes, str] = {}
        for number, line in enumerate(text.decode("utf-8", errors="replace").splitlines(), 1):
            parts = _fields(line)
            if not parts:
                continue
            if len(parts) != 2:
                log.warning("%s line %d: expected 'user_id token', skipped", self.path, number)
                continue
            user_id, token = parts
            users[_digest(token)] = user_id
        self._users, self._read = users, text
        log.info("auth: %d token(s) for %d user(s) from %s", len(users), len(set(users.values())), self.path)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            self._load()
        except OSError as exc:  # the file went away or cannot be read: no token is valid (fail closed)
            if self._users:
                log.warning("auth: cannot read %s (%s); refusing every token until it can be read", self.path, exc)
            self._users, self._read = {}, None
        user_id = self._users.get(_digest(token))
        if user_id is None:
            return None
        return AccessToken(token=token, client_id=user_id, subject=user_id, scopes=[SCOPE])


def _fields(line: str) -> list[str]:
    """A line's words before any ``#`` (tokens never hold one: they are URL-safe base64)."""
    return line.split("#", 1)[0].split()


def token_id(token: str) -> str:
    """A short public name of a token (the start of its SHA-256), to list and revoke it by."""
    return _digest(token).hex()[:12]


def _check_user(user_id: str) -> None:
    if not user_id or any(c.isspace() for c in user_id) or "#" in user_id:
        raise ValueError(f"user_id must be non-empty without spaces or '#', got {user_id!r}")


def _entries(path: Path) -> list[tuple[str, str | None, str | None]]:
    """Each line of the file as (line, user_id, token), the last two None for comments and blanks."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out: list[tuple[str, str | None, str | None]] = []
    for line in text.splitlines():
        fields = _fields(line)
        user, token = fields if len(fields) == 2 else (None, None)
        out.append((line, user, token))
    return out


def list_tokens(path: Path) -> list[tuple[str, str]]:
    """(user_id, token id) of every token in the file, in its order."""
    return [(user, token_id(token)) for _, user, token in _entries(Path(path)) if user and token]


def add_token(path: Path, user_id: str) -> str:
    """Append a new random token for ``user_id`` to the file (created private); return it."""
    _check_user(user_id)
    token = secrets.token_urlsafe(32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(f"{user_id} {token}\n")
    return token


def revoke_tokens(path: Path, user_id: str, only: str | None = None) -> int:
    """Remove ``user_id``'s tokens (only the one whose token id is ``only``, if given); how many.
    Comments and every other line are kept as they are."""
    _check_user(user_id)
    entries = _entries(Path(path))
    kept = [line for line, user, token in entries
            if not (user == user_id and token and (only is None or token_id(token) == only))]
    removed = len(entries) - len(kept)
    if removed:
        _replace(Path(path), kept)
    return removed


def rotate_token(path: Path, user_id: str) -> str:
    """Replace every token of ``user_id`` by one new token, in one step; return it."""
    _check_user(user_id)
    token = secrets.token_urlsafe(32)
    kept = [line for line, user, _ in _entries(Path(path)) if user != user_id]
    _replace(Path(path), [*kept, f"{user_id} {token}"])
    return token


def _replace(path: Path, lines: list[str]) -> None:
    """Write the file anew beside it and rename it over the old one: a server reading it meanwhile
    sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("".join(f"{line}\n" for line in lines))
    os.replace(tmp, path)
