"""Writing: remember a fact, many facts, a conversation; replace a fact by its new version.

* A write is one transaction: the duplicate check, reinforcement or insertion, absorption below a
  promoted memory and the idempotency record commit together or not at all.
* Idempotency: a write given an ``idempotency_key`` that this user already used returns what the
  first call stored, and stores nothing (checked again under the write lock, for concurrent retries).
* Turns: a memory written in a turn of a session ends the session's other turns: their TURN memories
  expire, every version of them. A TURN memory also expires ``turn_ttl_s`` after it is stored.
* Supersession closes the current version (``valid_until`` = now, ``superseded_by``) and stores the
  new one, which keeps the old one's scope, category, importance, entity refs and metadata unless
  given. Superseding a version that is no longer current is refused, naming the current one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import AlreadySupersededError
from . import embedding, validation
from .dialogue import TURN_SEPARATOR
from .duplicates import content_hash, find, scope, similar
from .fulltext import search_text
from .models import Memory, MemoryCategory
from .parts import Parts
from .ports import NewVersion, Stored, StoreReader, StoreWriter, Vector
from .promotion import absorb, move_to, target
from .scope import Position, common_ancestor
from .versions import owned


def write_time() -> float:
    """The time of a write, to the microsecond (what a datetime holds, so it reads back the same)."""
    return datetime.now(UTC).timestamp()


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True)
class Write:
    """One ``add``, its arguments checked: what it stores and where."""

    content: str
    position: Position
    to: Position  # where it is stored: the position, or higher for an important memory
    category: MemoryCategory
    importance: float
    refs: list[str]
    meta: dict[str, Any]
    prov: dict[str, Any]
    since: float | None
    situation: str | None
    idempotency_key: str | None
    digest: str


def prepare(
    parts: Parts,
    content: Any,
    position: Position,
    category: Any = MemoryCategory.FACT,
    importance: Any = 0.5,
    entity_refs: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
    provenance: Mapping[str, Any] | None = None,
    valid_from: Any = None,
    context: Any = None,
) -> Write:
    """``add``'s arguments checked (raises ValidationError naming the one at fault)."""
    max_chars = parts.config.max_content_chars
    content = validation.content(content, max_chars)
    category = validation.category(category)
    importance = validation.importance(importance)
    refs = validation.entity_refs(entity_refs)
    meta = validation.json_object(metadata, "metadata")
    prov = validation.json_object(provenance, "provenance")
    since = validation.valid_from(valid_from)
    situation = validation.context(context, max_chars)
    if idempotency_key is not None:
        validation.check_id(idempotency_key, "idempotency_key")
    return Write(
        content=content, position=position, to=target(parts.config, position, importance), category=category,
        importance=importance, refs=refs, meta=meta, prov=prov, since=since, situation=situation,
        idempotency_key=idempotency_key, digest=content_hash(content),
    )


def prepare_item(parts: Parts, item: Mapping[str, Any]) -> Write:
    """``prepare`` with the arguments as a dict (as batches and imports carry them)."""
    fields = dict(item)
    position = validation.position(
        fields.pop("user_id", None), fields.pop("session_id", None), fields.pop("agent_id", None),
        fields.pop("turn_id", None),
    )
    return prepare(parts, fields.pop("content", None), position, **fields)


async def store(parts: Parts, w: Write, vector: Vector | None = None) -> Memory:
    """Remember a checked write (see ``HierarchicalMemory.add``): reinforce the memory it repeats, or
    store it as new. ``vector`` is its embedding when the caller has it already (a batch), else it is
    embedded here."""
    position, to = w.position, w.to
    if w.idempotency_key is not None:
        earlier = await idempotent(parts, position.user_id, w.idempotency_key)
        if earlier is not None:
            return earlier
    if vector is None:
        vector = await embedding.embed_now(parts, w.content)
    near = await similar(parts, position, to, vector, w.content)
    at = write_time()

    async with parts.store.transaction() as db:
        user_key = await db.ensure_user(position.user_id)
        if w.idempotency_key is not None:  # again under the write lock: a concurrent retry
            earlier = await db.find_idempotent(user_key, w.idempotency_key)
            if earlier is not None:
                return earlier
        if position.turn_id is not None and position.session_id is not None:
            await db.expire_other_turns(user_key, position.session_id, position.turn_id, at)
        existing = await find(db, scope(user_key, position, to, at), w.digest, near)
        if existing is not None:
            key = existing.key
            place = await _reinforce(db, existing, w.importance, to, at)
            await absorb(db, user_key, key, place, w.digest, near, at)
        else:
            key = await db.insert(new_version(parts, w, user_key, vector, at))
            if to != position:
                await absorb(db, user_key, key, to, w.digest, near, at)
        stored = await _get(db, key)
        if w.idempotency_key is not None:
            await db.put_idempotent(user_key, w.idempotency_key, stored.id, at)
    parts.forget_cached(stored.id)
    await embedding.after_write(parts, vector)
    return stored


def new_version(parts: Parts, w: Write, user_key: int, vector: Vector | None, at: float) -> NewVersion:
    """The new memory a write stores when it repeats nothing, written at ``at``."""
    position, to = w.position, w.to
    since = at if w.since is None else w.since
    memory = Memory(
        id=str(uuid.uuid4()), user_id=position.user_id, session_id=to.session_id, agent_id=to.agent_id,
        turn_id=to.turn_id, content=w.content, category=w.category, importance=w.importance,
        entity_refs=w.refs, metadata=w.meta, provenance={**w.prov, "recorded_at": _at(at).isoformat()},
        created_at=_at(at), valid_from=_at(since),
        expires_at=_at(at + parts.config.turn_ttl_s) if to.turn_id is not None else None,
        context=w.situation,
        **(_origin(position, at) if to != position else {}),
    )
    return NewVersion(memory, user_key, w.digest, search_text(w.content, w.refs, since), vector)


async def add_item(parts: Parts, item: Mapping[str, Any], vector: Vector | None = None) -> Memory:
    """``add`` with its arguments as a dict (as batches and imports carry them)."""
    return await store(parts, prepare_item(parts, item), vector)


def conversation_items(
    parts: Parts, turns: Sequence[Mapping[str, Any]], window: Any, shared: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Each turn as ``add``'s arguments, with the ``window`` turns before and after it as its
    context unless it brings its own."""
    window = validation.count(window, "window", 0, 50)
    max_chars = parts.config.max_content_chars
    texts = []
    for number, turn in enumerate(turns):
        with validation.item(number):
            texts.append(validation.content(turn.get("content"), max_chars))
    items = []
    for i, turn in enumerate(turns):
        item = {**shared, **turn}
        around = texts[max(0, i - window) : i] + texts[i + 1 : i + 1 + window]
        if "context" not in turn and around:
            item["context"] = TURN_SEPARATOR.join(around)[:max_chars]
        items.append(item)
    return items


async def supersede(
    parts: Parts,
    old_memory_id: str,
    new_content: Any,
    *,
    user_id: str | None = None,
    category: Any = None,
    importance: Any = None,
    entity_refs: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Memory:
    """Replace a current memory by a new version (see ``HierarchicalMemory.supersede``)."""
    old_key, user_key, old = await owned(parts, old_memory_id, user_id)
    content = validation.content(new_content, parts.config.max_content_chars)
    new_category = validation.category(category) if category is not None else old.category
    new_importance = validation.importance(importance) if importance is not None else old.importance
    refs = validation.entity_refs(entity_refs) if entity_refs is not None else list(old.entity_refs)
    meta = validation.json_object(metadata, "metadata") if metadata is not None else dict(old.metadata)
    prov = validation.json_object(provenance, "provenance")
    if idempotency_key is not None:
        validation.check_id(idempotency_key, "idempotency_key")
        earlier = await idempotent(parts, old.user_id, idempotency_key)
        if earlier is not None:
            return earlier
    if not old.is_current:
        async with parts.store.reading() as db:
            raise already_superseded(old, await db.current_in_chain(await db.chain_key(old_key)))
    vector = await embedding.embed_now(parts, content)
    at = write_time()
    new_id = str(uuid.uuid4())
    async with parts.store.transaction() as db:
        if idempotency_key is not None:  # again under the write lock: a concurrent retry
            earlier = await db.find_idempotent(user_key, idempotency_key)
            if earlier is not None:
                return earlier
        if not await db.close_version(old_key, at, new_id):  # closed by another writer since we read it
            raise already_superseded(old, await db.current_in_chain(await db.chain_key(old_key)))
        memory = old.model_copy(update=dict(
            id=new_id, content=content, category=new_category, importance=new_importance, entity_refs=refs,
            metadata=meta, provenance={**prov, "recorded_at": _at(at).isoformat()},
            created_at=_at(at), valid_from=_at(at), valid_until=None,
            expires_at=_at(at + parts.config.turn_ttl_s) if old.turn_id is not None else None,
            supersedes=old.id, superseded_by=None, reinforcement_count=0, context=None,
        ))
        key = await db.insert(NewVersion(memory, user_key, content_hash(content), search_text(content, refs, at), vector))
        if idempotency_key is not None:
            await db.put_idempotent(user_key, idempotency_key, new_id, at)
        found = await _get(db, key)
    parts.forget_cached(old.id)
    await embedding.after_write(parts, vector)
    return found


async def idempotent(parts: Parts, user_id: str, idempotency_key: str) -> Memory | None:
    """What a first call with this key stored for this user, if there was one."""
    user_key = await parts.user_key(user_id)
    if user_key is None:
        return None
    async with parts.store.reading() as db:
        return await db.find_idempotent(user_key, idempotency_key)


async def idempotent_many(parts: Parts, user_id: str, keys: Sequence[str]) -> dict[str, Memory]:
    """What first calls with these keys stored for this user, by key (those that were used)."""
    keys = [validation.check_id(key, "idempotency_key") for key in keys]
    found: dict[str, Memory] = {}
    async with parts.store.reading() as db:
        user_key = await db.user_key(user_id)
        if user_key is None:
            return found
        for key in dict.fromkeys(keys):
            earlier = await db.find_idempotent(user_key, key)
            if earlier is not None:
                found[key] = earlier
    return found


def already_superseded(memory: Memory, current: str | None) -> AlreadySupersededError:
    now = f"the current version is {current!r}" if current else "no version of it is current any more"
    return AlreadySupersededError(
        f"memory {memory.id!r} was already superseded (by {memory.superseded_by!r}); {now}: supersede "
        "the current version instead (get_history shows the chain)"
    )


async def _reinforce(db: StoreWriter, existing: Stored, importance: float, to: Position, at: float) -> Position:
    """Strengthen an existing memory instead of storing the same fact twice; if the new one was
    said from elsewhere, it moves up to where both are seen. Where it lives now."""
    await db.reinforce(existing.key, importance)
    here = Position.of(existing.memory)
    broader = common_ancestor(here, to)
    if broader != here:
        await db.move(existing.key, move_to(existing.memory, broader, at))
    return broader


async def _get(db: StoreReader, key: int) -> Memory:
    """A version as stored, read back in the transaction that wrote it."""
    return (await db.by_keys([key]))[key]


def _origin(position: Position, at: float) -> dict[str, Any]:
    return {
        "origin_level": position.level, "origin_session_id": position.session_id,
        "origin_agent_id": position.agent_id, "origin_turn_id": position.turn_id, "promoted_at": _at(at),
    }
