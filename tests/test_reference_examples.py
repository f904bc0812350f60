"""The usage examples memory_mcp documents, run as written (in spirit) against the real engine."""

from __future__ import annotations

from memory_mcp import HierarchicalMemory, MemoryCategory, MemoryFilter


async def test_preference_told_in_morning_session_is_recalled_in_afternoon_session(
    memory: HierarchicalMemory,
) -> None:
    await memory.add(
        "I prefer Go for performance-critical code",
        user_id="bob",
        session_id="morning-session",
        category=MemoryCategory.PREFERENCE,
        importance=0.9,
    )
    results = await memory.recall(
        "What language for my new microservice?", user_id="bob", session_id="afternoon-session"
    )
    assert [r.content for r in results][:1] == ["I prefer Go for performance-critical code"]


async def test_supersession_example_current_history_and_chain(memory: HierarchicalMemory) -> None:
    orig = await memory.add("User works at Google", user_id="alice", category=MemoryCategory.FACT)
    new = await memory.supersede(old_memory_id=orig.id, new_content="User now works at Anthropic")

    current = await memory.query(MemoryFilter(user_id="alice", include_superseded=False))
    assert [m.content for m in current] == ["User now works at Anthropic"]

    everything = await memory.query(MemoryFilter(user_id="alice", include_superseded=True))
    assert sorted(m.content for m in everything) == ["User now works at Anthropic", "User works at Google"]
    closed = next(m for m in everything if m.content == "User works at Google")
    assert closed.valid_until is not None and closed.superseded_by == new.id

    chain = await memory.get_history(new.id)
    assert [(m.content, m.is_current) for m in chain] == [
        ("User works at Google", False),
        ("User now works at Anthropic", True),
    ]
    assert chain[0].valid_until == chain[1].valid_from


async def test_advanced_usage_example(memory: HierarchicalMemory) -> None:
    mem = await memory.add(
        content="User prefers functional programming",
        user_id="alice",
        session_id="sess-123",
        agent_id="code-assistant",
        category=MemoryCategory.PREFERENCE,
        importance=0.9,
        entity_refs=["functional-programming", "coding-style"],
        metadata={"source": "conversation", "confidence": 0.95},
    )
    assert mem.entity_refs == ["functional-programming", "coding-style"]
    assert mem.metadata == {"source": "conversation", "confidence": 0.95}

    results = await memory.search(
        query="programming paradigm preferences",
        user_id="alice",
        top_k=5,
        min_similarity=0.5,
        categories=[MemoryCategory.PREFERENCE],
    )
    assert [r.memory.id for r in results] == [mem.id]
    assert results[0].similarity is not None and results[0].similarity >= 0.5

    text_results = await memory.text_search(query="functional", user_id="alice")
    assert [r.memory.id for r in text_results] == [mem.id]

    await memory.add("User uses vim", user_id="alice", category=MemoryCategory.FACT, importance=0.3)
    memories = await memory.query(MemoryFilter(
        user_id="alice",
        categories=[MemoryCategory.PREFERENCE, MemoryCategory.FACT],
        min_importance=0.7,
        limit=10,
    ))
    assert [m.id for m in memories] == [mem.id]

    coffee = await memory.remember("Likes coffee", user_id="alice", importance=0.6)
    relevant = await memory.recall("beverage preferences", user_id="alice")
    assert coffee.id in [r.memory.id for r in relevant]
    semantic = await memory.search("beverage preferences", user_id="alice")
    assert semantic[0].memory.id == coffee.id

    stats = await memory.stats("alice")
    assert stats["total"] == 3
    assert stats["categories"] == {"preference": 1, "fact": 2}
