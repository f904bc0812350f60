"""What makes two memories say the same, as pure rules (memory_mcp.memory.duplicates): the same
normalised text, and for near twins the same numbers and names. No store, no model."""

from __future__ import annotations

import pytest

from memory_mcp.memory.duplicates import content_hash, specifics


@pytest.mark.parametrize(("a", "b"), [
    ("Prefers dark mode", "prefers   DARK mode"),
    ("Prefers dark mode", "\tPrefers dark\nmode"),
])
def test_the_same_text_up_to_case_and_spacing_has_one_hash(a: str, b: str) -> None:
    assert content_hash(a) == content_hash(b)


@pytest.mark.parametrize(("a", "b"), [
    ("Prefers dark mode", "Prefers dark mode."),
    ("Prefers dark mode", "Prefers light mode"),
])
def test_different_words_or_punctuation_have_different_hashes(a: str, b: str) -> None:
    assert content_hash(a) != content_hash(b)


@pytest.mark.parametrize(("a", "b", "same"), [
    ("The gym locker code of the user is 4821", "The gym locker code of the user is 9034", False),
    ("The user's gym locker code is 4821", "The gym locker code of the user is 4821", True),
    ("Works with Alice on the API", "Works with Bob on the API", False),
    ("Works with Alice on the API", "works with alice on the API", False),  # names are capitalised words
    ("Lives in Berlin since 2019", "Since 2019 lives in Berlin", True),
    ("Likes tea", "Enjoys a cup of tea", True),  # no numbers or names: meaning alone decides
])
def test_near_twins_say_the_same_only_with_the_same_numbers_and_names(a: str, b: str, same: bool) -> None:
    assert (specifics(a) == specifics(b)) is same


def test_the_first_word_of_a_sentence_is_not_a_name_and_names_compare_case_folded() -> None:
    assert specifics("Coffee at 8 with Dana") == {"8", "dana"}
    assert specifics("Coffee at 8 with DANA") == {"8", "dana"}
