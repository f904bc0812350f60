"""Full-text search and hybrid recall on hostile and unusual strings.

A query is what a person or a model typed: it may be empty, pure punctuation, FTS5 syntax
(quotes, AND/OR/NOT, NEAR, ``*``, ``^``, ``col:value``, ``-``), SQL, 10 000 characters, emoji or any
script. None of it may raise, be parsed as FTS5 syntax, or reach another user's memories; words in
it are matched as words (case-folded, Latin diacritics removed, Porter-stemmed). Memory content
made of the same strings is stored as given and found again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from memory_mcp import ContentTooLongError, HierarchicalMemory, InvalidArgumentError, InvalidMemoryError

ALICE = [
    "Alice is allergic to peanuts",
    "Alice drives a red Tesla",
    "Goes to the café every morning",
    "She runs five kilometres every day",
    "I study 日本語 every evening",
    "Живёт в Москве с 2010 года",
    "مرحبا بالعالم",
    "Loves 🍕 and pasta",
    "To be or not to be, that is the question",
    "Tom AND Jerry OR NOT Spike",
]
BOB = "Bob is allergic to peanuts and drives a Tesla"
PEANUTS = ALICE[0]


@dataclass
class Corpus:
    memory: HierarchicalMemory
    ids: dict[str, str]  # alice's content -> id
    bob_id: str
    bob_key: int


@pytest.fixture
async def corpus(memory: HierarchicalMemory) -> AsyncIterator[Corpus]:
    ids = {content: (await memory.add(content, user_id="alice")).id for content in ALICE}
    assert len(set(ids.values())) == len(ALICE)  # nothing merged as a duplicate
    bob_id = (await memory.add(BOB, user_id="bob")).id
    async with memory.store.reading() as db:
        bob_key = await db.user_key("bob")
    assert bob_key is not None
    yield Corpus(memory, ids, bob_id, bob_key)


async def _search(memory: HierarchicalMemory, query: str, mode: str, user_id: str = "alice", top_k: int = 10):
    if mode == "text":
        return await memory.text_search(query, user_id=user_id, top_k=top_k)
    return await memory.recall(query, user_id=user_id, top_k=top_k, mode=mode)


def _ids(results) -> list[str]:
    return [r.memory.id for r in results]


TRICKY_QUERIES = [
    "", " ", "\t\n  ", "!!!", "...", "?", '"', "'", '""', "''", '"peanuts', "peanuts'", 'say "hi',
    "AND", "OR", "NOT", "OR NOT", "AND OR NOT", "peanuts AND", "NOT peanuts", "NEAR(a b)",
    "NEAR(peanuts Tesla, 2)", "NEAR", "*", "peanut*", "**", "^", "^peanuts", "col:value", "body:peanuts",
    "owner:u1", "owner : u2", "-foo", "-peanuts", "(", ")", "((peanuts)", "peanuts)", "()", "{peanuts}",
    "[peanuts]", "peanuts + Tesla", "'; DROP TABLE memories; --", "1; DELETE FROM memories WHERE 1=1",
    "Robert'); DROP TABLE users;--", "\\", "\\\\\"", "%", "%peanuts%", "_", "___", "foo_bar",
    "🍕", "🍕🍕🍕", "👨‍👩‍👧", "日本語", "私は日本語を勉強しています", "Москве", "МОСКВЕ",
    "مرحبا",
    "café", "CAFÉ", "cafe\u0301", "x\x00y", "\x00", "\u200b", "\ufeffpeanuts", "\U0001d54f\U0001d554",
    "a" * 10_000, "peanuts " * 1_250, " ".join(f"w{i}" for i in range(2_000)),
    "\"'()*^:-+{}[]<>~!@#$%&|;,.?/`=" * 300,
]


@pytest.mark.parametrize("mode", ["text", "hybrid", "semantic"])
@pytest.mark.parametrize("query", TRICKY_QUERIES, ids=lambda q: repr(q[:24]))
async def test_tricky_query_never_raises_and_returns_only_the_users_own_memories(
    corpus: Corpus, query: str, mode: str
) -> None:
    results = await _search(corpus.memory, query, mode)
    assert isinstance(results, list) and len(results) <= 10
    assert {r.memory.user_id for r in results} <= {"alice"}
    assert set(_ids(results)) <= set(corpus.ids.values())


@pytest.mark.parametrize(
    "query",
    ["", " ", "\t\n", "!!!", '"', "'", '""', "*", "**", "^", "()", "-", ":", "%", "_", "___", "🍕",
     "👨‍👩‍👧", "\u200b", "\x00", "\"'()*^:-+{}[]<>~!@#$%&|;,.?/`="],
    ids=repr,
)
async def test_query_without_any_word_finds_nothing_by_text(corpus: Corpus, query: str) -> None:
    assert await corpus.memory.text_search(query, user_id="alice") == []


@pytest.mark.parametrize("query", ["", " ", "\t\n  "], ids=repr)
async def test_empty_or_blank_query_recalls_nothing(corpus: Corpus, query: str) -> None:
    for mode in ("hybrid", "semantic", "text"):
        assert await _search(corpus.memory, query, mode) == []


@pytest.mark.parametrize(
    "query",
    ['"peanuts', "peanuts'", "'peanuts'", "peanuts AND", "AND peanuts", "NOT peanuts", "peanuts NOT allergic",
     "allergic NOT peanuts", "peanuts AND NOT allergic", "OR NOT peanuts", "-peanuts", "-allergic -peanuts",
     "NEAR(peanuts allergic)", "NEAR(peanuts allergic, 0)", "peanut*", "^peanuts", "body:peanuts",
     "content:peanuts", "owner:peanuts", "(peanuts", "peanuts)", "{peanuts}", "[peanuts]", "PEANUTS",
     'peanuts" OR owner : u2 OR "', '"" peanuts ""', "peanuts; DROP TABLE memories; --"],
    ids=repr,
)
async def test_fts5_syntax_in_a_query_is_matched_as_plain_words(corpus: Corpus, query: str) -> None:
    # As FTS5 syntax most of these would fail to parse, or exclude the memory (NOT, -), or search
    # another column; as plain words they all find the memory about peanuts first.
    results = await corpus.memory.text_search(query, user_id="alice")
    assert _ids(results)[:1] == [corpus.ids[PEANUTS]]
    hybrid = await corpus.memory.recall(query, user_id="alice", top_k=3)
    assert corpus.ids[PEANUTS] in _ids(hybrid)


async def test_operator_words_in_content_are_found_as_words(corpus: Corpus) -> None:
    target = corpus.ids["Tom AND Jerry OR NOT Spike"]
    for query in ("Jerry", "Spike", "NOT Spike", "Jerry OR", "AND Jerry"):
        assert _ids(await corpus.memory.text_search(query, user_id="alice"))[:1] == [target], query
    for query in ("AND", "OR NOT"):  # only stopwords: matched as words, among other memories using them
        assert target in _ids(await corpus.memory.text_search(query, user_id="alice")), query


async def test_query_naming_another_users_owner_token_returns_nothing_of_theirs(corpus: Corpus) -> None:
    token = f"u{corpus.bob_key}"
    queries = (token, f"owner : {token}", f"owner:{token}", f'" OR owner : {token} OR "', f"{token} peanuts")
    for query in queries:
        for mode in ("text", "hybrid"):
            results = await _search(corpus.memory, query, mode)
            assert corpus.bob_id not in _ids(results), (query, mode)
            assert {r.memory.user_id for r in results} <= {"alice"}
    # and bob, searching for words alice's memories share, gets only his own
    assert _ids(await corpus.memory.text_search("allergic peanuts Tesla", user_id="bob")) == [corpus.bob_id]


@pytest.mark.parametrize(
    "query",
    ["'; DROP TABLE memories; --", "x'); DELETE FROM memories; --", "1 OR 1=1", "\" OR \"\"=\"",
     "peanuts'; UPDATE memories SET content='pwned'; --"],
    ids=repr,
)
async def test_sql_in_a_query_changes_nothing(corpus: Corpus, query: str) -> None:
    memory = corpus.memory
    before = sorted((m.id, m.content) for m in await memory.get_all("alice"))
    for mode in ("text", "hybrid", "semantic"):
        await _search(memory, query, mode)
    assert sorted((m.id, m.content) for m in await memory.get_all("alice")) == before
    assert (await memory.stats())["total"] == len(ALICE) + 1
    assert _ids(await memory.text_search("peanuts", user_id="alice")) == [corpus.ids[PEANUTS]]


@pytest.mark.parametrize(
    "query",
    ["peanuts " + "x" * 10_000, "peanuts " + "lorem ipsum dolor " * 600, "peanuts " * 1_300,
     "peanuts " + " ".join(f"filler{i}" for i in range(1_200))],
    ids=["one_huge_word", "repeated_filler", "repeated_keyword", "many_distinct_words"],
)
async def test_very_long_query_is_answered_and_its_leading_word_still_matches(
    corpus: Corpus, query: str
) -> None:
    assert len(query) >= 10_000
    assert _ids(await corpus.memory.text_search(query, user_id="alice"))[:1] == [corpus.ids[PEANUTS]]
    assert corpus.ids[PEANUTS] in _ids(await corpus.memory.recall(query, user_id="alice", top_k=5))


DISTRACTORS = ["Works as a marine biologist", "Plays the violin on weekends", "Bought a house in the suburbs"]


async def _found_first(memory: HierarchicalMemory, content: str, query: str) -> tuple[list[str], list[str]]:
    for text in DISTRACTORS:
        await memory.add(text, user_id="alice")
    stored = await memory.add(content, user_id="alice")
    results = await memory.text_search(query, user_id="alice")
    return [stored.id], _ids(results)[:1]


@pytest.mark.parametrize(
    ("content", "query"),
    [
        ("Goes to the café every morning", "cafe"),
        ("Goes to the cafe every morning", "café"),
        ("Goes to the café every morning", "CAFÉ"),
        ("Goes to the café every morning", "cafe\u0301"),  # decomposed é in the query
        ("Goes to the cafe\u0301 every morning", "café"),  # decomposed é in the content
        ("Lives near Zürich", "zurich"),
        ("Measures in Ångström units", "angstrom"),
        ("Naïve Bayes is her favourite model", "naive"),
        ("Prefers crème brûlée for dessert", "creme brulee"),
        ("Señor García visited", "senor garcia"),
        ("Живёт в Москве", "москве"),
        ("Живёт в Москве", "МОСКВЕ"),
        ("مرحبا بالعالم", "مرحبا"),
        ("I study 日本語 every evening", "日本語"),
        ("안녕하세요 세계", "안녕하세요"),
        ("Γεια σου κόσμε", "κόσμε"),
        ("Loves 🍕 and pasta", "pasta"),
        ("Loves 🍕 and pasta", "🍕 pasta"),
        ("Emoji🍕glued to words", "glued"),
    ],
    ids=lambda v: repr(v),
)
async def test_word_is_found_across_case_accents_and_scripts(
    memory: HierarchicalMemory, content: str, query: str
) -> None:
    expected, found = await _found_first(memory, content, query)
    assert found == expected


@pytest.mark.parametrize(
    ("content", "query"),
    [
        ("She runs every morning", "running"),
        ("He was running late", "runs"),
        ("Connected to the database", "connection"),
        ("Likes cooking Italian food", "cooked"),
        ("Two cats live with her", "cat"),
    ],
    ids=lambda v: repr(v),
)
async def test_inflected_word_finds_other_forms_of_the_same_stem(
    memory: HierarchicalMemory, content: str, query: str
) -> None:
    expected, found = await _found_first(memory, content, query)
    assert found == expected


@pytest.mark.parametrize(
    ("content", "query"),
    [("私は日本語を勉強しています", "日本語"), ("我喜欢喝咖啡", "咖啡")],
    ids=["japanese", "chinese"],
)
async def test_cjk_word_inside_an_unspaced_sentence_is_found_by_text_search(
    memory: HierarchicalMemory, content: str, query: str
) -> None:
    # Chinese and Japanese are written without spaces between words.
    expected, found = await _found_first(memory, content, query)
    assert found == expected


async def test_query_of_only_stopwords_still_matches_those_words(corpus: Corpus) -> None:
    results = await corpus.memory.text_search("to be or not to be", user_id="alice")
    assert _ids(results)[:1] == [corpus.ids["To be or not to be, that is the question"]]


async def test_stopwords_beside_a_real_word_do_not_match_on_their_own(corpus: Corpus) -> None:
    # "to", "the", "is", "a"... are in many memories; only "allergic" tells them apart.
    results = await corpus.memory.text_search("what is the thing she is allergic to", user_id="alice")
    assert _ids(results) == [corpus.ids[PEANUTS]]


TRICKY_CONTENT = [
    'She said "hello" to O\'Brien',
    "Use NEAR(a b) to find nearby terms",
    "AND OR NOT are FTS5 operators",
    "col:value pairs in the config file",
    "-foo is a command line flag",
    "'; DROP TABLE memories; --",
    "Robert'); DROP TABLE users;--",
    "SELECT * FROM memories WHERE 1=1",
    "Unbalanced ( parenthesis and \" quote",
    "a^b*c is an expression",
    "Loves 🍕 pizza 🎉 parties",
    "私は日本語を勉強しています",
    "مرحبا بالعالم",
    "Привет, мир",
    "naïve café in Zürich",
    "tab\tseparated\nand multi-line",
    "100% sure about 50_000 items",
    "C:\\Users\\bob\\notes.txt",
    '{"json": [1, 2, 3], "key": null}',
    "<script>alert('xss')</script>",
    "u1 owner body content memories_fts",
    "z" * 8000,
]


@pytest.mark.parametrize("content", TRICKY_CONTENT, ids=lambda c: repr(c[:24]))
async def test_tricky_content_is_stored_as_given_and_found_by_text_and_recall(
    memory: HierarchicalMemory, content: str
) -> None:
    for text in DISTRACTORS:
        await memory.add(text, user_id="alice")
    stored = await memory.add(content, user_id="alice")
    assert stored.content == content
    assert (await memory.get(stored.id)).content == content
    assert _ids(await memory.text_search(content, user_id="alice"))[:1] == [stored.id]
    assert _ids(await memory.recall(content, user_id="alice", top_k=1)) == [stored.id]
    assert len(await memory.get_all("alice")) == len(DISTRACTORS) + 1  # the table is intact


@pytest.mark.parametrize("content", ["🍕🍕🍕", "!!! ??? ...", "👨‍👩‍👧 ❤️"], ids=repr)
async def test_content_without_words_is_stored_and_found_by_recall_though_not_by_text(
    memory: HierarchicalMemory, content: str
) -> None:
    for text in DISTRACTORS:
        await memory.add(text, user_id="alice")
    stored = await memory.add(content, user_id="alice")
    assert (await memory.get(stored.id)).content == content
    assert await memory.text_search(content, user_id="alice") == []
    assert _ids(await memory.recall(content, user_id="alice", top_k=1)) == [stored.id]


@pytest.mark.parametrize("mode", ["text", "hybrid", "semantic"])
@pytest.mark.parametrize("query", ["\ud800", "peanuts \udc00", "\udfff\ud800"], ids=repr)
async def test_query_with_a_lone_surrogate_is_answered_or_refused_with_a_clear_error(
    corpus: Corpus, query: str, mode: str
) -> None:
    # A lone surrogate is what a JSON string "\ud800" decodes to: clients can send it.
    try:
        results = await _search(corpus.memory, query, mode)
    except InvalidMemoryError:
        return  # refused as bad input: fine
    assert {r.memory.user_id for r in results} <= {"alice"}


async def test_content_with_a_lone_surrogate_is_refused_as_invalid(memory: HierarchicalMemory) -> None:
    with pytest.raises(InvalidArgumentError):
        await memory.add("broken \ud800 text", user_id="alice")
    assert await memory.get_all("alice") == []


async def test_a_memory_is_found_by_text_through_the_date_it_became_true(memory: HierarchicalMemory) -> None:
    may = await memory.add("Went to the support group", user_id="dora", valid_from="2023-05-08T13:56:00Z")
    june = await memory.add("Went to the pottery class", user_id="dora", valid_from="2023-06-20T10:00:00Z")
    assert _ids(await memory.text_search("what happened in May 2023?", user_id="dora"))[0] == may.id
    assert _ids(await memory.text_search("on 20 June", user_id="dora")) == [june.id]
    assert (await memory.get(may.id)).content == "Went to the support group"  # indexed, not stored in it


async def test_context_finds_a_memory_by_words_it_does_not_contain_and_stays_apart_from_its_content(
    memory: HierarchicalMemory,
) -> None:
    swirl = await memory.add(
        "Chocolate and vanilla swirl.", user_id="eve", context="Nate: What flavour of ice cream did you make?"
    )
    await memory.add("Vanilla pods are expensive this year", user_id="eve")
    found = await memory.text_search("which ice cream flavour did Nate make", user_id="eve")
    assert _ids(found) == [swirl.id]
    assert found[0].content == "Chocolate and vanilla swirl."
    assert found[0].memory.context == "Nate: What flavour of ice cream did you make?"
    recalled = await memory.recall("ice cream flavour", user_id="eve", top_k=1)
    assert _ids(recalled) == [swirl.id] and recalled[0].content == "Chocolate and vanilla swirl."


@pytest.mark.parametrize(
    ("context", "error"),
    [(42, InvalidArgumentError), ("a\x00b", InvalidArgumentError), ("x" * 8001, ContentTooLongError)],
)
async def test_bad_context_is_refused_and_stores_nothing(
    memory: HierarchicalMemory, context: object, error: type
) -> None:
    with pytest.raises(error, match="context"):
        await memory.add("Likes tea", user_id="eve", context=context)  # type: ignore[arg-type]
    assert await memory.get_all("eve") == []


async def test_a_word_in_more_memories_than_the_cap_scores_its_newest_with_its_full_document_frequency(
    memory: HierarchicalMemory,
) -> None:
    index = type(memory.text_index)  # the engine's own text index, with and without a cap
    for i in range(6):
        await memory.add(f"Kiwi number {i} on the shelf", user_id="kim")
    await memory.add("Mango on the table", user_id="kim")
    await memory.add("Kiwi but for bob", user_id="bob")
    async with memory.store.reading() as db:
        user_key = await db.user_key("kim")
    assert user_key is not None
    full = dict(await index(memory.store).search("kiwi shelf", user_key, 10))  # type: ignore[call-arg]
    capped = dict(await index(memory.store, posting_cap=3).search("kiwi shelf", user_key, 10))  # type: ignore[call-arg]
    assert len(full) == 6 and len(capped) == 3
    # The newest three, scored exactly as without the cap (the word's frequency counts all six).
    assert sorted(capped) == sorted(full)[-3:]
    assert all(capped[k] == pytest.approx(full[k], rel=1e-12) for k in capped)
