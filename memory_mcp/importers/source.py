"""Reading an export without holding it in memory.

The input is a file, the ``conversations.json`` inside an export's zip archive, or stdin. Its first
bytes are kept to tell the format, then read again by the parser, and every byte read is counted
for the progress bar. A JSON array is read one element at a time (ijson, on its C parser), JSON
lines one line at a time, so memory holds one record, never the file.
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from collections.abc import Iterator
from typing import IO, Any

import ijson

from ..errors import ImportSourceError

HEAD_BYTES = 1 << 16
_BOM = b"\xef\xbb\xbf"


class UnreadableRest(Exception):
    """The file stops being valid JSON at record ``number``: nothing after it can be read."""

    def __init__(self, number: int, reason: str):
        super().__init__(reason)
        self.number = number


class _Counted(io.RawIOBase):
    """The raw stream, its first bytes served again, counting what is read."""

    def __init__(self, raw: IO[bytes], head: bytes):
        self._raw, self._pending, self.consumed = raw, head, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pending:
            data, self._pending = self._pending[: len(buffer)], self._pending[len(buffer) :]
        else:
            data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.consumed += len(data)
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


class Source:
    """An opened export: ``head`` (its first bytes, without a byte-order mark) to tell its format,
    ``stream`` to read it from the start, ``size`` in bytes when known, ``consumed`` so far."""

    def __init__(self, raw: IO[bytes], name: str, size: int | None):
        head = raw.read(HEAD_BYTES)
        self.name, self.size = name, size
        self.head = head.removeprefix(_BOM)
        self._counted = _Counted(raw, self.head)
        self.stream = io.BufferedReader(self._counted, HEAD_BYTES)

    @property
    def consumed(self) -> int:
        return self._counted.consumed

    def array_items(self, prefix: str) -> Iterator[tuple[int, Any]]:
        """The elements under ``prefix`` (ijson's path: ``item`` for a top-level array), numbered
        from 1. Raises UnreadableRest where the JSON breaks."""
        number = 0
        try:
            for number, element in enumerate(ijson.items(self.stream, prefix, use_float=True), 1):  # noqa: B007
                yield number, element
        except ijson.JSONError as exc:
            raise UnreadableRest(number + 1, _json_error(exc)) from None
        except UnicodeDecodeError as exc:
            raise UnreadableRest(number + 1, f"not UTF-8 text ({exc.reason})") from None

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """Each non-blank line, numbered from 1 as an editor numbers them."""
        for number, line in enumerate(self.stream, 1):
            if line.strip():
                yield number, line

    def json_lines(self) -> Iterator[tuple[int, Any]]:
        """Each non-blank line parsed; a line that is not JSON comes as DamagedLine."""
        for number, line in self.lines():
            try:
                yield number, json.loads(line)
            except ValueError as exc:  # UnicodeDecodeError is one
                yield number, DamagedLine(f"not JSON ({exc})")

    def close(self) -> None:
        self.stream.close()


class DamagedLine:
    """A line of JSON lines that could not be parsed, in place of its record."""

    def __init__(self, reason: str):
        self.reason = reason


def open_source(path: str) -> Source:
    """Open ``path`` ('-' for stdin; a zip archive for the ``conversations.json`` in it), or raise
    ImportSourceError saying what is wrong in one line."""
    if path == "-":
        return Source(sys.stdin.buffer, "stdin", None)
    try:
        if os.path.isdir(path):
            raise ImportSourceError(f"{path} is a directory: give the export file (for a chat export, its "
                                    "conversations.json or the zip archive it came in)")
        if zipfile.is_zipfile(path):
            return _zip_member(path)
        return Source(open(path, "rb"), path, os.path.getsize(path))  # noqa: SIM115 (closed by Source)
    except FileNotFoundError:
        raise ImportSourceError(f"no such file: {path}") from None
    except PermissionError:
        raise ImportSourceError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise ImportSourceError(f"cannot read {path}: {exc.strerror or exc}") from None


def _zip_member(path: str) -> Source:
    try:
        archive = zipfile.ZipFile(path)
        members = [i for i in archive.infolist() if os.path.basename(i.filename) == "conversations.json"]
        if not members:
            archive.close()
            raise ImportSourceError(f"{path} is a zip archive without a conversations.json: give the file to "
                                    "import itself, or the export archive ChatGPT or Claude sent")
        member = min(members, key=lambda i: i.filename.count("/"))
        return Source(archive.open(member), f"{path}:{member.filename}", member.file_size)
    except zipfile.BadZipFile as exc:
        raise ImportSourceError(f"{path} is a damaged zip archive ({exc})") from None


def _json_error(exc: Exception) -> str:
    """The parser's complaint, its first line only (the rest quotes the file)."""
    said = exc.args[0] if exc.args else ""
    if isinstance(said, bytes):
        said = said.decode("utf-8", "replace")
    said = str(said).strip().splitlines()[0] if str(said).strip() else type(exc).__name__
    if "premature EOF" in said:
        return "the file ends in the middle of a record: it was cut short"
    return f"the JSON is broken here ({said})"
