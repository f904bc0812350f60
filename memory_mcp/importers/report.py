"""What an import did, record by record, and the one exception a reader raises for a record it
cannot use."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_ERRORS_KEPT = 1000  # a damaged 1 GB export must not fill memory with its complaints


class DamagedRecord(Exception):
    """A record of the export that cannot be imported; the message says why."""


@dataclass
class ImportReport:
    """Counts of an import. ``records`` are the export's top-level items (conversations, entities,
    Mem0 memories, lines), ``messages`` the conversation messages read from them. ``stored`` are
    new memories; ``repeated`` were already known in other words and reinforced the memory that
    holds them; ``already_present`` were stored by an earlier run of the same import. ``errors``
    name each refused record or message (``where``, ``why``), the first ``MAX_ERRORS_KEPT`` of
    ``refused``. ``stopped`` says why the import ended before the end of the file, if it did."""

    format: str
    records: int = 0
    messages: int = 0
    stored: int = 0
    repeated: int = 0
    already_present: int = 0
    refused: int = 0
    left_out: int = 0  # --extract: facts the model scoped to their conversation alone
    model_calls: int = 0
    bytes_read: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    stopped: str | None = None
    fatal: bool = False  # stopped by something other than the file (the model's endpoint failed)

    def refuse(self, where: str, why: str) -> None:
        self.refused += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append((where, why))

    def summary(self) -> str:
        """One line for people: what was read and what became of it."""
        read = {"jsonl": _count(self.records, "line"), "server-memory": _count(self.records, "line"),
                "mem0": _count(self.records, "Mem0 memory", "Mem0 memories")}.get(
            self.format, f"{_count(self.records, 'conversation')}, {_count(self.messages, 'message')}")
        said = (f"imported {self.stored}, repeated {self.repeated}, already present {self.already_present}, "
                f"refused {self.refused} (read {read}")
        if self.model_calls:
            said += (f"; {_count(self.model_calls, 'model call')}, {_count(self.left_out, 'fact')} about one "
                     "conversation only left out")
        return said + ")"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"
