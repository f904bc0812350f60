"""Bad input is refused with the package's own, specific error, and changes nothing.

Each case names the call, the error class it must raise (exactly that class, defined in
``memory_mcp.errors`` and so a ``MemoryMCPError``, not a bare builtin ``ValueError``/``TypeError``),
and words the message must contain so that a person or a model can tell what was wrong. Every case
compares the whole stored state (all of the user's versions, and the database-wide stats) before
and after the call.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

import memory_mcp.errors
from memory_mcp import (
    AlreadySupersededError,
    ContentTooLongError,
    EmptyContentError,
    HierarchicalMemory,
    InvalidArgumentError,
    InvalidImportanceError,
    InvalidTimeError,
    MemoryCategory,
    MemoryFilter,
    MemoryMCPError,
    MemoryNotFoundError,
    MissingUserError,
    UnknownCategoryError,
)

USER = "alice"
NAN = float("nan")
CATEGORY_NAMES = [c.value for c in MemoryCategory]
SCOPE_NAMES = ["user", "session", "agent", "turn"]


@dataclass
class Seeded:
    old: str  # a superseded version
    current: str  # the version that superseded it
    session: str  # a memory at session scope


async def _seed(memory: HierarchicalMemory) -> Seeded:
    old = await memory.add("User works at Google", user_id=USER, category="fact", entity_refs=["google"])
    new = await memory.supersede(old.id, "User works at Anthropic")
    session = await memory.add("Debugging the payment service", user_id=USER, session_id="s1")
    await memory.add("Bob likes sailing", user_id="bob")
    return Seeded(old.id, new.id, session.id)


async def _state(memory: HierarchicalMemory) -> tuple[Any, ...]:
    everything = await memory.query(
        MemoryFilter(user_id=USER, all_levels=True, include_superseded=True, include_expired=True)
    )
    return (
        await memory.stats(),
        await memory.stats(USER),
        sorted((m.model_dump() for m in everything), key=lambda d: d["id"]),
        [m.id for m in await memory.query(MemoryFilter(user_id=USER))],
        [m.id for m in await memory.get_all("bob", include_superseded=True)],
    )


Call = Callable[[HierarchicalMemory, Seeded], Awaitable[Any]]


async def _assert_refused(
    memory: HierarchicalMemory, seeded: Seeded, call: Call, error: type[Exception], words: list[str]
) -> None:
    before = await _state(memory)
    with pytest.raises(MemoryMCPError) as raised:
        await call(memory, seeded)
    exc = raised.value
    assert type(exc) is error, f"raised {type(exc).__name__}: {exc}"
    assert type(exc).__module__ == memory_mcp.errors.__name__
    message = str(exc)
    for word in words:
        word = word.format(old=seeded.old, current=seeded.current, session=seeded.session)
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    assert await _state(memory) == before


def _case(name: str, call: Call, error: type[Exception], *words: str) -> Any:
    return pytest.param(call, error, list(words), id=name)


# -- content --------------------------------------------------------------------------------------

EMPTY = [
    _case(f"add-{name}", lambda m, s, v=value: m.add(v, user_id=USER), EmptyContentError, "empty")
    for name, value in [("empty", ""), ("spaces", "   "), ("whitespace", "\n\t  \r\n")]
] + [
    _case(f"supersede-{name}", lambda m, s, v=value: m.supersede(s.current, v), EmptyContentError, "empty")
    for name, value in [("empty", ""), ("spaces", "   ")]
] + [
    _case("remember-empty", lambda m, s: m.remember("  ", user_id=USER), EmptyContentError, "empty"),
]

CONTENT_TYPES = [
    _case(f"add-{type(value).__name__}", lambda m, s, v=value: m.add(v, user_id=USER),
          InvalidArgumentError, "content", "string", type(value).__name__)
    for value in [123, None, b"User likes tea", ["User likes tea"], 4.5]
] + [
    _case(f"supersede-{type(value).__name__}", lambda m, s, v=value: m.supersede(s.current, v),
          InvalidArgumentError, "content", "string", type(value).__name__)
    for value in [123, None, b"User likes tea"]
] + [
    _case("add-nul-character", lambda m, s: m.add("User\x00likes tea", user_id=USER),
          InvalidArgumentError, "NUL"),
]

# -- category ---------------------------------------------------------------------------------------

CATEGORIES = [
    _case(f"add-{value!r}", lambda m, s, v=value: m.add("User likes tea", user_id=USER, category=v),
          UnknownCategoryError, "unknown category", repr(value), *CATEGORY_NAMES)
    for value in ["opinion", "facts", "", None, 3]
] + [
    _case("supersede", lambda m, s: m.supersede(s.current, "User works at Acme", category="opinion"),
          UnknownCategoryError, "opinion", *CATEGORY_NAMES),
    _case("recall", lambda m, s: m.recall("work", user_id=USER, categories=["fact", "opinion"]),
          UnknownCategoryError, "opinion", *CATEGORY_NAMES),
    _case("search", lambda m, s: m.search("work", user_id=USER, categories=["opinion"]),
          UnknownCategoryError, "opinion", *CATEGORY_NAMES),
    _case("text-search", lambda m, s: m.text_search("work", user_id=USER, categories=["opinion"]),
          UnknownCategoryError, "opinion", *CATEGORY_NAMES),
    _case("query", lambda m, s: m.query(MemoryFilter(user_id=USER, categories=["opinion"])),
          UnknownCategoryError, "opinion", *CATEGORY_NAMES),
]

# -- importance -------------------------------------------------------------------------------------

BAD_IMPORTANCE = [-0.1, 1.5, "high", NAN, True, None, math.inf, "0.5"]

IMPORTANCE = [
    _case(f"add-{value!r}", lambda m, s, v=value: m.add("User likes tea", user_id=USER, importance=v),
          InvalidImportanceError, "importance", repr(value))
    for value in BAD_IMPORTANCE
] + [
    _case(f"supersede-{value!r}", lambda m, s, v=value: m.supersede(s.current, "User works at Acme", importance=v),
          InvalidImportanceError, "importance", repr(value))
    for value in [-0.1, 1.5, "high", NAN, True]
] + [
    _case(f"recall-min-{value!r}", lambda m, s, v=value: m.recall("work", user_id=USER, min_importance=v),
          InvalidImportanceError, "min_importance")
    for value in [-0.1, 1.5, "high", NAN, True]
] + [
    _case("query-min", lambda m, s: m.query(MemoryFilter(user_id=USER, min_importance=2)),
          InvalidImportanceError, "min_importance"),
]

# -- user -------------------------------------------------------------------------------------------

MISSING_USER = [
    _case(f"add-{value!r}", lambda m, s, v=value: m.add("User likes tea", user_id=v), MissingUserError, "user_id")
    for value in [None, "", "   "]
] + [
    _case("add-omitted", lambda m, s: m.add("User likes tea"), MissingUserError, "user_id"),
    _case("add-omitted-with-session", lambda m, s: m.add("User likes tea", session_id="s1"),
          MissingUserError, "user_id"),
    _case("query-omitted", lambda m, s: m.query(MemoryFilter()), MissingUserError, "user_id"),
    _case("query-omitted-with-session", lambda m, s: m.query(MemoryFilter(session_id="s1")),
          MissingUserError, "user_id"),
    _case("query-empty", lambda m, s: m.query(MemoryFilter(user_id="")), MissingUserError, "user_id"),
    _case("recall-omitted", lambda m, s: m.recall("work"), MissingUserError, "user_id"),
    _case("recall-empty", lambda m, s: m.recall("work", user_id=""), MissingUserError, "user_id"),
    _case("recall-spaces", lambda m, s: m.recall("work", user_id="  "), MissingUserError, "user_id"),
    _case("search-empty", lambda m, s: m.search("work", user_id=""), MissingUserError, "user_id"),
    _case("text-search-none", lambda m, s: m.text_search("work", user_id=None), MissingUserError, "user_id"),
    _case("get-all-none", lambda m, s: m.get_all(None), MissingUserError, "user_id"),
    _case("clear-omitted", lambda m, s: m.clear(), MissingUserError, "user_id"),
    _case("clear-empty", lambda m, s: m.clear(""), MissingUserError, "user_id"),
    _case("clear-session-without-user", lambda m, s: m.clear(None, "s1"), MissingUserError, "user_id"),
    _case("stats-empty", lambda m, s: m.stats(""), MissingUserError, "user_id"),
]

# -- ids --------------------------------------------------------------------------------------------

UNKNOWN = "00000000-0000-0000-0000-000000000000"

NOT_FOUND = [
    _case("supersede", lambda m, s: m.supersede(UNKNOWN, "User works at Acme"), MemoryNotFoundError, UNKNOWN),
    _case("get-history", lambda m, s: m.get_history(UNKNOWN), MemoryNotFoundError, UNKNOWN),
    _case("delete", lambda m, s: m.delete(UNKNOWN), MemoryNotFoundError, UNKNOWN),
    _case("delete-whole-chain", lambda m, s: m.delete(UNKNOWN, whole_chain=True), MemoryNotFoundError, UNKNOWN),
    _case("forget", lambda m, s: m.forget(UNKNOWN), MemoryNotFoundError, UNKNOWN),
    _case("get", lambda m, s: m.get(UNKNOWN), MemoryNotFoundError, UNKNOWN),
    # Memory ids are not capabilities: another user's id is "not found" for this user.
    _case("get-other-users", lambda m, s: m.get(s.current, user_id="mallory"), MemoryNotFoundError, "{current}"),
    _case("get-history-other-users", lambda m, s: m.get_history(s.current, user_id="mallory"),
          MemoryNotFoundError, "{current}"),
    _case("supersede-other-users", lambda m, s: m.supersede(s.current, "User works at Acme", user_id="mallory"),
          MemoryNotFoundError, "{current}"),
    _case("delete-other-users", lambda m, s: m.delete(s.current, user_id="mallory"),
          MemoryNotFoundError, "{current}"),
]

BAD_IDS = [
    _case("get-empty-id", lambda m, s: m.get(""), InvalidArgumentError, "memory id", "empty"),
    _case("get-int-id", lambda m, s: m.get(42), InvalidArgumentError, "memory id", "string"),
    _case("delete-none-id", lambda m, s: m.delete(None), InvalidArgumentError, "memory id", "string"),
    _case("supersede-long-id", lambda m, s: m.supersede("x" * 300, "User works at Acme"),
          InvalidArgumentError, "memory id"),
    _case("add-int-session", lambda m, s: m.add("User likes tea", user_id=USER, session_id=7),
          InvalidArgumentError, "session_id"),
    _case("add-int-user", lambda m, s: m.add("User likes tea", user_id=7), InvalidArgumentError, "user_id"),
]

ALREADY_SUPERSEDED = [
    _case("supersede-old", lambda m, s: m.supersede(s.old, "User works at Acme"),
          AlreadySupersededError, "{old}", "{current}"),
    _case("supersede-old-with-overrides",
          lambda m, s: m.supersede(s.old, "User works at Acme", category="decision", importance=0.9),
          AlreadySupersededError, "{current}"),
]

# -- time -------------------------------------------------------------------------------------------

BAD_TIMES = ["yesterday-ish", NAN, object(), True, math.inf, -1.0, "", "2026-13-45T00:00:00", 10**12, [2026]]


def _time_name(value: Any) -> str:
    return "object()" if type(value) is object else repr(value)


TIMES = [
    _case(f"recall-{_time_name(value)}", lambda m, s, v=value: m.recall("work", user_id=USER, as_of=v),
          InvalidTimeError, "as_of")
    for value in BAD_TIMES
] + [
    _case(f"query-{_time_name(value)}", lambda m, s, v=value: m.query(MemoryFilter(user_id=USER, as_of=v)),
          InvalidTimeError, "as_of")
    for value in BAD_TIMES
] + [
    _case("search", lambda m, s: m.search("work", user_id=USER, as_of="yesterday-ish"), InvalidTimeError,
          "as_of", "yesterday-ish"),
    _case("text-search", lambda m, s: m.text_search("work", user_id=USER, as_of=NAN), InvalidTimeError, "as_of"),
]

# -- search arguments -------------------------------------------------------------------------------

BAD_TOP_K = [0, -1, "5", 10**9, True, 2.5, None]

SEARCH_ARGUMENTS = [
    _case(f"{name}-top-k-{value!r}", lambda m, s, v=value, f=name: getattr(m, f)("work", user_id=USER, top_k=v),
          InvalidArgumentError, "top_k")
    for name in ("recall", "search", "text_search")
    for value in BAD_TOP_K
] + [
    _case(f"mode-{value!r}", lambda m, s, v=value: m.recall("work", user_id=USER, mode=v),
          InvalidArgumentError, "mode", repr(value))
    for value in ["fuzzy", "", None, "vector"]
] + [
    _case(f"min-similarity-{value!r}", lambda m, s, v=value: m.recall("work", user_id=USER, min_similarity=v),
          InvalidArgumentError, "min_similarity")
    for value in [1.5, -2, "high"]
] + [
    _case("token-budget-0", lambda m, s: m.recall("work", user_id=USER, token_budget=0),
          InvalidArgumentError, "token_budget"),
    _case("token-budget-str", lambda m, s: m.recall("work", user_id=USER, token_budget="100"),
          InvalidArgumentError, "token_budget"),
    _case("query-not-a-string", lambda m, s: m.recall(42, user_id=USER), InvalidArgumentError, "query", "string"),
    _case("query-limit-0", lambda m, s: m.query(MemoryFilter(user_id=USER, limit=0)), InvalidArgumentError, "limit"),
    _case("query-offset-negative", lambda m, s: m.query(MemoryFilter(user_id=USER, offset=-1)),
          InvalidArgumentError, "offset"),
]

# -- entity refs, metadata, provenance --------------------------------------------------------------

ENTITY_REFS = [
    _case("add-string", lambda m, s: m.add("User likes tea", user_id=USER, entity_refs="tea"),
          InvalidArgumentError, "entity_refs", "list"),
    _case("add-bytes", lambda m, s: m.add("User likes tea", user_id=USER, entity_refs=b"tea"),
          InvalidArgumentError, "entity_refs", "list"),
    _case("add-int", lambda m, s: m.add("User likes tea", user_id=USER, entity_refs=5),
          InvalidArgumentError, "entity_refs"),
    _case("add-empty-ref", lambda m, s: m.add("User likes tea", user_id=USER, entity_refs=["tea", ""]),
          InvalidArgumentError, "entity ref"),
    _case("add-non-string-ref", lambda m, s: m.add("User likes tea", user_id=USER, entity_refs=["tea", 3]),
          InvalidArgumentError, "entity ref"),
    _case("add-nul-ref", lambda m, s: m.add("User likes tea", user_id=USER, entity_refs=["te\x00a"]),
          InvalidArgumentError, "entity ref", "NUL"),
    _case("recall-nul-ref", lambda m, s: m.recall("work", user_id=USER, entity_refs=["goo\x00gle"]),
          InvalidArgumentError, "entity ref", "NUL"),
    _case("supersede-string", lambda m, s: m.supersede(s.current, "User works at Acme", entity_refs="acme"),
          InvalidArgumentError, "entity_refs", "list"),
    _case("recall-string", lambda m, s: m.recall("work", user_id=USER, entity_refs="google"),
          InvalidArgumentError, "entity_refs", "list"),
    _case("query-string", lambda m, s: m.query(MemoryFilter(user_id=USER, entity_refs="google")),
          InvalidArgumentError, "entity_refs", "list"),
]

BAD_METADATA: list[tuple[str, Any]] = [
    ("datetime", {"when": datetime(2026, 1, 1)}),
    ("object", {"x": object()}),
    ("nan", {"confidence": NAN}),
    ("set", {"tags": {"a", "b"}}),
    ("a-string", "source=chat"),
    ("a-list", [("source", "chat")]),
]

METADATA = [
    _case(f"add-metadata-{name}", lambda m, s, v=value: m.add("User likes tea", user_id=USER, metadata=v),
          InvalidArgumentError, "metadata")
    for name, value in BAD_METADATA
] + [
    _case(f"supersede-metadata-{name}",
          lambda m, s, v=value: m.supersede(s.current, "User works at Acme", metadata=v),
          InvalidArgumentError, "metadata")
    for name, value in BAD_METADATA[:3]
] + [
    _case("add-provenance-object", lambda m, s: m.add("User likes tea", user_id=USER, provenance={"x": object()}),
          InvalidArgumentError, "provenance"),
]

# -- scope levels -----------------------------------------------------------------------------------

SCOPE_LEVELS = [
    _case("recall-unknown", lambda m, s: m.recall("work", user_id=USER, scope_levels=["user", "galaxy"]),
          InvalidArgumentError, "scope level", "galaxy", *SCOPE_NAMES),
    _case("query-unknown", lambda m, s: m.query(MemoryFilter(user_id=USER, scope_levels=["galaxy"])),
          InvalidArgumentError, "scope level", "galaxy", *SCOPE_NAMES),
    _case("search-unknown", lambda m, s: m.search("work", user_id=USER, scope_levels=["USERS"]),
          InvalidArgumentError, "scope level", "users"),
    _case("recall-a-string", lambda m, s: m.recall("work", user_id=USER, scope_levels="user"),
          InvalidArgumentError, "scope_levels", "list"),
]


@pytest.mark.parametrize(
    ("call", "error", "words"),
    EMPTY + CONTENT_TYPES + CATEGORIES + IMPORTANCE + MISSING_USER + NOT_FOUND + BAD_IDS
    + ALREADY_SUPERSEDED + TIMES + SEARCH_ARGUMENTS + ENTITY_REFS + METADATA + SCOPE_LEVELS,
)
async def test_bad_input_raises_its_specific_error_and_changes_nothing(
    memory: HierarchicalMemory, call: Call, error: type[Exception], words: list[str]
) -> None:
    seeded = await _seed(memory)
    await _assert_refused(memory, seeded, call, error, words)


# -- validation does not depend on who asks --------------------------------------------------------

NEWCOMER = "newcomer"  # a user with no memories yet

NEWCOMER_CASES = [
    _case("query-category", lambda m, s: m.query(MemoryFilter(user_id=NEWCOMER, categories=["opinion"])),
          UnknownCategoryError, "opinion"),
    _case("query-as-of", lambda m, s: m.query(MemoryFilter(user_id=NEWCOMER, as_of="yesterday-ish")),
          InvalidTimeError, "as_of"),
    _case("query-scope-level", lambda m, s: m.query(MemoryFilter(user_id=NEWCOMER, scope_levels=["galaxy"])),
          InvalidArgumentError, "galaxy"),
    _case("query-min-importance", lambda m, s: m.query(MemoryFilter(user_id=NEWCOMER, min_importance=7)),
          InvalidImportanceError, "min_importance"),
    _case("recall-category", lambda m, s: m.recall("work", user_id=NEWCOMER, categories=["opinion"]),
          UnknownCategoryError, "opinion"),
    _case("recall-as-of", lambda m, s: m.recall("work", user_id=NEWCOMER, as_of=NAN), InvalidTimeError, "as_of"),
    _case("recall-top-k", lambda m, s: m.recall("work", user_id=NEWCOMER, top_k=0), InvalidArgumentError, "top_k"),
    _case("add-importance", lambda m, s: m.add("User likes tea", user_id=NEWCOMER, importance=2),
          InvalidImportanceError, "importance"),
]


@pytest.mark.parametrize(("call", "error", "words"), NEWCOMER_CASES)
async def test_bad_filters_are_refused_even_for_a_user_with_no_memories(
    memory: HierarchicalMemory, call: Call, error: type[Exception], words: list[str]
) -> None:
    seeded = await _seed(memory)
    await _assert_refused(memory, seeded, call, error, words)
    assert (await memory.stats(NEWCOMER)).total == 0


# -- content length -------------------------------------------------------------------------------


@pytest.fixture
async def small(open_memory: Callable[..., Any]) -> Any:
    engine = await open_memory(max_content_chars=50)
    yield engine
    await engine.close()


TOO_LONG = [
    _case("add-51", lambda m, s: m.add("x" * 51, user_id=USER), ContentTooLongError, "51", "50"),
    _case("add-5000", lambda m, s: m.add("User likes tea. " * 300, user_id=USER), ContentTooLongError, "50"),
    _case("supersede-51", lambda m, s: m.supersede(s.current, "y" * 51), ContentTooLongError, "51", "50"),
    _case("remember-51", lambda m, s: m.remember("z" * 51, user_id=USER), ContentTooLongError, "51", "50"),
]


@pytest.mark.parametrize(("call", "error", "words"), TOO_LONG)
async def test_content_over_max_content_chars_is_refused(
    small: HierarchicalMemory, call: Call, error: type[Exception], words: list[str]
) -> None:
    seeded = await _seed(small)
    await _assert_refused(small, seeded, call, error, words)


async def test_content_of_exactly_max_content_chars_is_accepted(small: HierarchicalMemory) -> None:
    stored = await small.add("a" * 50, user_id=USER)
    assert stored.content == "a" * 50
    padded = await small.add("  " + "b" * 50 + "\n", user_id=USER)  # surrounding whitespace is not content
    assert padded.content == "b" * 50


# -- the errors are the package's, catchable as the builtins too ----------------------------------


@pytest.mark.parametrize(
    "error",
    [EmptyContentError, ContentTooLongError, UnknownCategoryError, InvalidImportanceError, MissingUserError,
     InvalidTimeError, InvalidArgumentError, MemoryNotFoundError, AlreadySupersededError],
)
def test_every_error_is_a_memory_mcp_error_of_its_own_class(error: type[Exception]) -> None:
    assert issubclass(error, MemoryMCPError)
    assert error.__module__ == "memory_mcp.errors"
    assert error not in (ValueError, TypeError, LookupError, KeyError, Exception)


async def test_an_invalid_argument_is_still_catchable_as_value_error(memory: HierarchicalMemory) -> None:
    with pytest.raises(ValueError):
        await memory.add("", user_id=USER)
    with pytest.raises(LookupError):
        await memory.get(UNKNOWN)


async def test_the_state_comparison_notices_a_write_made_before_an_error(memory: HierarchicalMemory) -> None:
    """The check above is real: a call that stores something and then fails is caught."""
    seeded = await _seed(memory)

    async def writes_then_fails(m: HierarchicalMemory, s: Seeded) -> None:
        await m.add("User likes tea", user_id=USER)
        raise MissingUserError("user_id is required")

    with pytest.raises(AssertionError):
        await _assert_refused(memory, seeded, writes_then_fails, MissingUserError, ["user_id"])
