"""Duplicates: remembering what is already known reinforces it instead of storing it twice.

A new memory repeats a current one when both are in the duplicate scope (on the new memory's
path, where it would be seen from, or below where it lands, where it would hide a copy) and they
say the same: the same text once case and spacing are ignored, or embeddings at least
``duplicate_similarity`` alike that name the same numbers and names ("locker code 4821" and
"locker code 9034" embed almost alike but are different facts).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Mapping

from .parts import Parts
from .ports import MemoryFilter, Selection, Stored, StoreReader, Vector, VectorFilter
from .recall import nearest
from .scope import Position

NEAR = 32  # nearest neighbours a new memory's vector is compared with when looking for duplicates


def content_hash(content: str) -> str:
    """The same text once case and runs of whitespace are ignored."""
    normalised = " ".join(content.lower().split())
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def specifics(text: str) -> frozenset[str]:
    """The words a paraphrase must keep: numbers (anything with a digit) and names (capitalised
    words after the first), case-folded."""
    words = re.findall(r"\w+", text)
    return frozenset(
        w.casefold() for i, w in enumerate(words) if any(c.isdigit() for c in w) or (i > 0 and w[:1].isupper())
    )


def scope(user_key: int, position: Position, target: Position, now: float) -> Selection:
    """Where a new memory's duplicates may be: on the position's path, or below where it lands."""
    return Selection(user_key, (MemoryFilter.at(position), MemoryFilter.at(target, all_levels=True)), now)


async def similar(parts: Parts, position: Position, target: Position, vector: Vector | None, content: str) -> list[int]:
    """Keys of current memories in the duplicate scope that say the same as ``content``: near
    enough in meaning, and naming the same numbers and names, nearest first."""
    if vector is None or parts.vectors is None:
        return []
    user_key = await parts.user_key(position.user_id)
    if user_key is None:
        return []
    within = scope(user_key, position, target, time.time())
    threshold = parts.config.duplicate_similarity
    # Most new facts have no near twin among the user's memories at all: then one index lookup
    # answers, and the scope (a store query) is only consulted for the near ones.
    found = await parts.vectors.search(vector, NEAR, VectorFilter(user_key=user_key))
    near = [k for k, s in found if s >= threshold]
    if len(near) == NEAR:  # a crowd of near twins: search within the scope, widening
        near = [k for k, s in await nearest(parts, vector, within, 8) if s >= threshold]
        return await saying_the_same(parts, near, content)
    if not near:
        return []
    async with parts.store.reading() as db:  # in scope, and what they say: one read
        allowed = await db.filter_keys(near, within)
        near = [k for k in near if k in allowed]
        contents = await db.contents(near) if near else {}
    return naming_the_same(near, contents, content)


async def saying_the_same(parts: Parts, keys: list[int], content: str) -> list[int]:
    """Those of these near twins of ``content`` that name the same numbers and names."""
    if not keys:
        return []
    async with parts.store.reading() as db:
        contents = await db.contents(keys)
    return naming_the_same(keys, contents, content)


def naming_the_same(keys: Iterable[int], contents: Mapping[int, str], content: str) -> list[int]:
    """Those of ``keys`` whose text (in ``contents``) names the same numbers and names as ``content``."""
    mine = specifics(content)
    return [k for k in keys if k in contents and specifics(contents[k]) == mine]


async def find(db: StoreReader, within: Selection, digest: str, similar_keys: list[int]) -> Stored | None:
    """A current memory in the duplicate scope that says the same: the same text first, else the
    most similar of ``similar_keys`` still there."""
    same = await db.same_text(within, digest)
    if same is not None or not similar_keys:
        return same
    present = await db.filter_keys(similar_keys, within)
    for key in similar_keys:  # the most similar first
        if key in present:
            memory = (await db.by_keys([key]))[key]
            return Stored(key, within.user_key, memory)
    return None
