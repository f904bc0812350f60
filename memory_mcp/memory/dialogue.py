"""Conversations in hybrid recall: a question asks, and the turn after it answers.

A conversation stored turn by turn (``add_conversation``, the MCP tool ``remember_conversation``)
holds questions as well as statements. A question ("What flavour did you make?") shares the words
and the meaning of a later query about the same thing ("What flavour of ice cream did Nate make?")
more than its answer does ("Chocolate and vanilla swirl."), so it outranks the answer while holding
nothing the query asks for. Over the candidates it has ranked, hybrid recall therefore

- lowers each memory's score by ``QUESTION_WEIGHT`` times the share of it that asks (its characters
  in sentences that end with a question mark): a question still comes back, below a statement that
  matches as well;
- raises the turn that follows a question towards the question's score, by the share of that turn
  that asks::

      score'(m) = score(m) * (1 - QUESTION_WEIGHT * asked(m))
                  + ANSWER_WEIGHT * asked(p) * max(score(p) - score(m), 0)

  where ``p`` is the turn just before ``m``, when it is among the candidates too. With
  ``ANSWER_WEIGHT`` 1 an answer can reach, and not pass, the score its question had before the
  first rule lowered it, and every score stays on 0..1.

Which turn comes just before which is read from the contexts that ``add_conversation`` gives each
turn (its neighbours, in order, without itself): ``p`` comes just before ``m`` when each is a line
of the other's context, ``p`` was stored first, and no line of ``m``'s context lies between them (a
line after ``p`` in ``m``'s context that is also before ``m`` in ``p``'s). Memories without such
contexts only meet the first rule. The two weights were chosen on LoCoMo's development split
(``docs/benchmarks/locomo-rerank.md`` has the recall with and without this stage).
"""

from __future__ import annotations

import re

from .models import Memory

QUESTION_WEIGHT = 0.2
ANSWER_WEIGHT = 1.0
TURN_SEPARATOR = "\n"  # between the turns of a context that add_conversation writes, read back here

# A sentence ends at . ! ? followed by a space or the end ("example.com/?q=1" ends none), or at
# the full-width and Arabic marks, which need no space.
_SENTENCE = re.compile(r".*?(?:[.!?]+(?=\s|$)|[。！？؟]+|$)", re.S)
_ASKING = ("?", "？", "؟")


def asked(text: str) -> float:
    """The share of ``text`` (0..1, by characters) in sentences that end with a question mark."""
    total = asking = 0
    for sentence in _SENTENCE.findall(text):
        sentence = sentence.strip()
        total += len(sentence)
        if sentence.rstrip(".!。！").endswith(_ASKING):  # "?", and "?!" too
            asking += len(sentence)
    return asking / total if total else 0.0


def answers_first(ranked: list[tuple[int, float, float]], rows: dict[int, Memory]) -> list[tuple[int, float, float]]:
    """``ranked`` ((key, score, relevance), best first) with the scores above, reordered."""
    if not ranked:
        return ranked
    asking = {key: asked(rows[key].content) for key, _, _ in ranked}
    score = {key: s for key, s, _ in ranked}
    before = turn_before([key for key, _, _ in ranked], rows)
    rescored = []
    for key, s, relevance in ranked:
        new = s * (1.0 - QUESTION_WEIGHT * asking[key])
        p = before.get(key)
        if p is not None:
            new += ANSWER_WEIGHT * asking[p] * max(score[p] - s, 0.0)
        rescored.append((key, new, relevance))
    rescored.sort(key=lambda ranking: -ranking[1])
    return rescored


def turn_before(keys: list[int], rows: dict[int, Memory]) -> dict[int, int]:
    """key -> the key of the turn just before it, for the pairs of these memories that are
    consecutive turns of one conversation (see the module's docstring)."""
    by_content: dict[str, list[int]] = {}
    lines: dict[int, list[str]] = {}
    for key in keys:
        by_content.setdefault(rows[key].content, []).append(key)
        context = rows[key].context
        lines[key] = context.split(TURN_SEPARATOR) if context else []
    before: dict[int, int] = {}
    for m in keys:
        content = rows[m].content
        for i, line in enumerate(lines[m]):
            for p in by_content.get(line, ()):
                if p >= m:  # stored after m (or m itself): not before it
                    continue
                try:
                    j = lines[p].index(content)
                except ValueError:
                    continue
                if not set(lines[m][i + 1:]) & set(lines[p][:j]):
                    before[m] = p
    return before
