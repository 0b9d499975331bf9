"""`index.window`, the one function every index page goes through, against sorting by hand.

It reads a descending page from one slice of ascending entries, widening the slice only where a
group of equal keys is cut by the page's edges; keys drawn from a few values make such groups
common, and the page's edges fall anywhere in them.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from hypothesis import given
from hypothesis import strategies as st
from sortedcontainers import SortedList

from mockserver.domain.index import ID_MAX, window


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[tuple[int, str]], int, int, bool, int, int]:
    n = draw(st.integers(0, 40))
    spread = draw(st.sampled_from([1, 3, 8, 100]))
    keys = draw(st.lists(st.integers(0, spread), min_size=n, max_size=n))
    entries = sorted((k, f"rec_{i:03d}") for i, k in enumerate(keys))
    start = draw(st.integers(0, n))
    stop = draw(st.integers(start, n))
    return entries, start, stop, draw(st.booleans()), draw(st.integers(0, n + 2)), draw(st.integers(0, 12))


@given(cases())
def test_a_window_is_the_slice_of_the_entries_sorted_by_hand(
    case: tuple[list[tuple[int, str]], int, int, bool, int, int],
) -> None:
    entries, start, stop, desc, offset, count = case
    sl = SortedList(entries)

    def group(key: int) -> tuple[int, int]:
        return sl.bisect_left((key,)), sl.bisect_right((key, ID_MAX))

    # Descending by key, ties always by id ascending.
    ordered = sorted(entries[start:stop], key=lambda e: (-e[0], e[1]) if desc else e)
    expected = [rid for _, rid in ordered[offset : offset + count]]
    assert window(sl, start, stop, group, desc, offset, count) == expected
    # The same from a plain list (composite indexes keep theirs so).
    plain = list(entries)

    def plain_group(key: int) -> tuple[int, int]:
        return bisect_left(plain, (key,)), bisect_right(plain, (key, ID_MAX))

    assert window(plain, start, stop, plain_group, desc, offset, count) == expected
