"""The text index on its own, against `in`, `startswith` and `endswith` over the live values: many
writes on few distinct values, so postings die, are compacted, turn into bitmaps and are rebuilt
(with the thresholds lowered as far as they go, and as served)."""

from __future__ import annotations

from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver.domain import textindex
from mockserver.domain.textindex import TextIndex

# Folded already (the index is given folded keys); non-ASCII, spaces and dots; short, so values
# repeat and fragments of any length up to past a piece (4) match some.
VALUES = st.text(st.sampled_from("abc .ßİσ"), min_size=1, max_size=7)
CHECKS = {
    "$contains": lambda v, n: n in v,
    "$starts_with": str.startswith,
    "$ends_with": str.endswith,
}


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[str], list[tuple[int, str]], list[str]]:
    """Initial values; writes (a value to add, or "" to remove the record at that position of the
    live ones); needles to ask after each write."""
    initial = draw(st.lists(VALUES, max_size=40))
    writes = draw(st.lists(st.tuples(st.integers(0, 60), st.one_of(st.just(""), VALUES)), max_size=80))
    needles = draw(st.lists(VALUES, min_size=1, max_size=6))
    return initial, writes, needles


def agree(index: TextIndex, live: dict[str, str], needles: list[str]) -> None:
    assert len(index) == len(live)
    for needle in needles:
        for op, check in CHECKS.items():
            expected = sorted(rid for rid, value in live.items() if check(value, needle))
            assert index.count(op, needle) == len(expected), (op, needle)
            assert sorted(index.ids(op, needle)) == expected, (op, needle)


@settings(max_examples=300, deadline=None)
@given(histories())
@pytest.mark.parametrize(
    ("min_compact", "min_rebuild", "dense_min", "dense_share"),
    [
        (textindex.MIN_COMPACT, textindex.MIN_REBUILD, textindex.DENSE_MIN, textindex.DENSE_SHARE),
        (1, 1, 1, 1),
        (2, 8, 3, 4),
        (1, 1_000, 2, 2),
    ],
    ids=["as-served", "everything-early", "bitmaps-from-3", "bitmaps-never-rebuilt"],
)
def test_the_text_index_agrees_with_the_values_through_writes(
    min_compact: int,
    min_rebuild: int,
    dense_min: int,
    dense_share: int,
    history: tuple[list[str], list[tuple[int, str]], list[str]],
) -> None:
    initial, writes, needles = history
    with (
        patch.object(textindex, "MIN_COMPACT", min_compact),
        patch.object(textindex, "MIN_REBUILD", min_rebuild),
        patch.object(textindex, "DENSE_MIN", dense_min),
        patch.object(textindex, "DENSE_SHARE", dense_share),
    ):
        live = {f"r{i}": value for i, value in enumerate(initial)}
        index = TextIndex(lambda key: key, list(live.items()))
        agree(index, live, needles)
        for n, (at, value) in enumerate(writes):
            if value:
                rid = f"w{n}"
                live[rid] = value
                index.add(rid, value)
            elif live:
                rid = sorted(live)[at % len(live)]
                del live[rid]
                index.remove(rid)
            agree(index, live, needles)
