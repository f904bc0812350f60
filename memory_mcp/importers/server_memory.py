"""The official ``@modelcontextprotocol/server-memory`` file: a knowledge graph as JSON lines.

Each line is an entity (``{"type": "entity", "name", "entityType", "observations": [...]}``) or a
relation (``{"type": "relation", "from", "to", "relationType"}``). Every observation becomes a
memory "Name: observation" that refers to its entity (``entity_refs``), and every relation a memory
of its own, "From relation to", that refers to both. The graph keeps no times: they are dated by
the import. Keys come from the names and texts, so a re-import stores nothing twice.
"""

from __future__ import annotations

from typing import Any

from ..memory.models import MemoryCategory
from .conversations import source_key
from .report import DamagedRecord

SOURCE = "server-memory"


def items(record: Any) -> list[dict[str, Any]]:
    """The memories of one line of the graph (raises DamagedRecord when it is not a graph line)."""
    if not isinstance(record, dict):
        raise DamagedRecord(f"expected an entity or relation object, got {type(record).__name__}")
    kind = record.get("type")
    if kind == "entity":
        return _entity(record)
    if kind == "relation":
        return [_relation(record)]
    raise DamagedRecord(f"'type' is {record.get('type')!r}: expected 'entity' or 'relation'")


def _entity(record: dict[str, Any]) -> list[dict[str, Any]]:
    name, kind, observations = record.get("name"), record.get("entityType"), record.get("observations", [])
    if not isinstance(name, str) or not name.strip():
        raise DamagedRecord("an entity without a 'name'")
    if not isinstance(observations, list) or not all(isinstance(o, str) for o in observations):
        raise DamagedRecord(f"entity {name!r}: 'observations' must be a list of strings")
    found = []
    for observation in dict.fromkeys(o.strip() for o in observations if o.strip()):
        provenance: dict[str, Any] = {"source": SOURCE, "entity": name}
        if isinstance(kind, str) and kind.strip():
            provenance["entity_type"] = kind
        found.append({
            "content": f"{name}: {observation}", "category": MemoryCategory.ENTITY, "entity_refs": [name],
            "provenance": provenance, "idempotency_key": source_key(SOURCE, "observation", name, observation),
        })
    return found


def _relation(record: dict[str, Any]) -> dict[str, Any]:
    ends = [record.get("from"), record.get("relationType"), record.get("to")]
    if not all(isinstance(end, str) and end.strip() for end in ends):
        raise DamagedRecord("a relation needs 'from', 'relationType' and 'to', each a name")
    source, relation, target = ends
    return {
        "content": f"{source} {relation.replace('_', ' ')} {target}", "category": MemoryCategory.ENTITY,
        "entity_refs": [source, target], "provenance": {"source": SOURCE, "relation": ends},
        "idempotency_key": source_key(SOURCE, "relation", *ends),
    }
