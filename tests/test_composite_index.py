"""`index.CompositeIndex` against sorting by hand, while records come and go.

A composite index keeps, per combination of exact keys, its entries in order in chunks of about
`CHUNK` (a bare entry for a group of one), and for groups of `ARRAY_MIN` entries or more whose keys
floats hold exactly, the keys again in arrays that bisections read. The query-engine properties
reach it through `Backend`, but their values seldom sit exactly on a range's bound, where a
bisection that is off by one shows. Here values and bounds come from one small pool (with 2**53
and 2**53 + 1, which are the same float), groups grow and shrink through one, two and many
entries, `ARRAY_MIN` is the served one or 2, so that small groups take the array path too, and
`CHUNK` is the served one or 4, so that groups are cut into chunks, and chunks split and join, as
writes come.
"""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockserver.domain import index
from mockserver.domain.index import CompositeIndex
from mockserver.domain.records import Record, key_spec
from mockserver.domain.schema import FieldDef, FieldType, ObjectDef

OBJ = "obj_things"
STAGES = ["a", "b"]
BIG = 2**53
NUMBERS = [0, 1, BIG, BIG + 1, float(BIG)]
# Every bound the pool allows on one side, and a few on both: each checked after every write.
BOUNDS: list[tuple[Any, bool, Any, bool] | None] = [
    None,
    (None, True, None, True),  # `$empty: false`
    *[(v, incl, None, True) for v in NUMBERS for incl in (True, False)],
    *[(None, True, v, incl) for v in NUMBERS for incl in (True, False)],
    (1, True, BIG, True),
    (0, False, BIG + 1, False),
    (BIG, True, BIG + 1, True),
]


def make_object() -> ObjectDef:
    obj = ObjectDef(OBJ, "Things", "things", None)
    obj.add_field(FieldDef("fld_s", "s", "s", FieldType.STATUS, position=0, options={"stages": STAGES}))
    obj.add_field(FieldDef("fld_n", "n", "n", FieldType.NUMBER, position=1))
    return obj


def record(i: int, s: str | None, n: Any) -> Record:
    values = {k: v for k, v in (("s", s), ("n", n)) if v is not None}
    return Record(f"rec_{i:04d}", OBJ, values, 0, 0, "user_a")


Bounds = tuple[Any, bool, Any, bool] | None

# 2**53 + 1 is rarer than the others: a group that holds it keeps no array, and groups should
# often have one when it arrives.
values_st = st.tuples(
    st.sampled_from([*STAGES, None]), st.sampled_from([0, 0, 1, 1, BIG, float(BIG), BIG + 1, None])
)
# Writes, two adds to a remove: ("add", values) | ("remove", which of the records, by id order)
write_st = st.one_of(
    st.tuples(st.just("add"), values_st),
    st.tuples(st.just("add"), values_st),
    st.tuples(st.just("remove"), st.integers(0, 200)),
)


class ByHand:
    """The index's answers, from the records alone: values in bounds, ordered (ties by id
    ascending), then, without bounds, the empty ones by id. Each group is sorted once, both ways,
    and each bound filters that order (which keeps it)."""

    def __init__(self, records: dict[str, Record]) -> None:
        self.groups: dict[str, tuple[list[Record], list[Record], list[str]]] = {}
        for stage in STAGES:
            mine = [r for r in records.values() if r.values.get("s") == stage]
            valued = sorted((r for r in mine if "n" in r.values), key=lambda r: r.id)
            asc = sorted(valued, key=lambda r: r.values["n"])  # stable: ties keep ids ascending
            desc = sorted(valued, key=lambda r: r.values["n"], reverse=True)
            self.groups[stage] = (asc, desc, sorted(r.id for r in mine if "n" not in r.values))

    def page(self, stage: str, bounds: Bounds, desc: bool, offset: int, limit: int) -> tuple[list[str], int]:
        asc_order, desc_order, empty = self.groups[stage]
        valued = desc_order if desc else asc_order
        if bounds is not None:
            lo, lo_incl, hi, hi_incl = bounds
            valued = [
                r
                for r in valued
                if (lo is None or r.values["n"] > lo or (lo_incl and r.values["n"] == lo))
                and (hi is None or r.values["n"] < hi or (hi_incl and r.values["n"] == hi))
            ]
        ordered = [r.id for r in valued]
        if bounds is None:
            ordered += empty
        return ordered[offset : offset + limit], len(ordered)


@pytest.mark.parametrize(
    ("array_min", "chunk"),
    [(index.ARRAY_MIN, index.CHUNK), (2, index.CHUNK), (index.ARRAY_MIN, 4), (2, 4)],
    ids=["as-served", "arrays-from-2-entries", "chunks-of-4", "arrays-and-chunks-of-4"],
)
@settings(max_examples=60, deadline=None)
@given(initial=st.lists(values_st, max_size=12), writes=st.lists(write_st, min_size=10, max_size=40))
def test_pages_and_counts_agree_with_sorting_by_hand(
    array_min: int, chunk: int, initial: list[tuple[str | None, Any]], writes: list[tuple[Any, ...]]
) -> None:
    obj = make_object()
    s_spec, n_spec = key_spec(obj, "s"), key_spec(obj, "n")
    assert s_spec is not None and n_spec is not None
    records = {r.id: r for r in (record(i, s, n) for i, (s, n) in enumerate(initial))}
    with patch.object(index, "ARRAY_MIN", array_min), patch.object(index, "CHUNK", chunk):
        idx = CompositeIndex((s_spec,), n_spec, records.values())
        check(idx, records)
        for made, (kind, arg) in enumerate(writes, start=len(initial)):
            if kind == "add":
                rec = record(made, *arg)
                records[rec.id] = rec
                idx.add(rec)
            elif records:
                rec = records.pop(sorted(records)[arg % len(records)])
                idx.remove(rec)
            check(idx, records)


def check(idx: CompositeIndex, records: dict[str, Record]) -> None:
    """Every group, every bound of the pool, both orders: the whole ordering, a page cut inside
    it, the count, and the matcher; and each group's chunks as they should be."""
    for held in idx.values.values():
        if isinstance(held, index._Run):
            check_run(held)
    by_hand = ByHand(records)
    for rank, stage in enumerate(STAGES):
        for bounds in BOUNDS:
            match = idx.matcher(((rank,),), bounds)
            for desc in (False, True):
                ordered, total = by_hand.page(stage, bounds, desc, 0, 1000)
                assert idx.page((rank,), bounds, desc, 0, 1000) == (ordered, total), (stage, bounds, desc)
                assert idx.page((rank,), bounds, desc, 1, 2) == (ordered[1:3], total), (stage, bounds, desc)
            assert idx.count(((rank,),), bounds) == total
            assert sum(match(rid) for rid in records) == total


def check_run(run: index._Run) -> None:
    """A group's chunks: none empty, none past twice `CHUNK`, their entries in order, and what
    bisections read (last entries, keys, last keys, starts) saying the same as the entries."""
    assert run.chunks and all(run.chunks) and all(len(c) <= 2 * index.CHUNK for c in run.chunks)
    entries = [entry for chunk in run.chunks for entry in chunk]
    assert entries == sorted(entries) and run.n == len(entries) >= 2
    assert run.maxes == [chunk[-1] for chunk in run.chunks]
    if run.nums is not None:
        assert [list(keys) for keys in run.nums] == [[e[0] for e in chunk] for chunk in run.chunks]
        assert run.nmaxes is not None and list(run.nmaxes) == [chunk[-1][0] for chunk in run.chunks]
    starts = run._starts()
    assert starts == [sum(map(len, run.chunks[:k])) for k in range(len(run.chunks))]
    assert all(run[k : k + 3] == entries[k : k + 3] for k in range(len(entries)))


def test_a_large_group_is_cut_into_chunks_that_split_and_join_as_writes_come() -> None:
    """The served `CHUNK`: 5,000 records in one group make several chunks; removing most of them
    joins chunks again; every page still agrees with sorting by hand."""
    obj = make_object()
    s_spec, n_spec = key_spec(obj, "s"), key_spec(obj, "n")
    assert s_spec is not None and n_spec is not None
    records = {r.id: r for r in (record(i, "a", i % 97) for i in range(5_000))}
    idx = CompositeIndex((s_spec,), n_spec, records.values())
    run = idx.values[(0,)]
    assert isinstance(run, index._Run)
    first = len(run.chunks)
    assert first == -(-5_000 // index.CHUNK)
    for i in range(5_000, 15_000):  # inserts spread over every chunk: each grows past 2 * CHUNK
        rec = record(i, "a", i % 89)
        records[rec.id] = rec
        idx.add(rec)
    check_run(run)
    assert len(run.chunks) >= 2 * first and run.nums is not None
    pages_agree(idx, records)
    for rid in sorted(records)[:14_900]:
        idx.remove(records.pop(rid))
    check_run(run)
    assert len(run.chunks) == 1
    pages_agree(idx, records)


def pages_agree(idx: CompositeIndex, records: dict[str, Record]) -> None:
    """Pages at the start, inside and across chunks, in both orders, with and without bounds."""
    by_hand = ByHand(records)
    for bounds in [None, (10, True, 50, False), (30, False, 88, True), (60, True, None, True)]:
        total = idx.count(((0,),), bounds)
        assert total == by_hand.page("a", bounds, False, 0, 0)[1]
        for desc in (False, True):
            for offset in (0, 1_000, 2_040, total // 2, total - 10):
                page = idx.page((0,), bounds, desc, offset, 25)
                assert page == by_hand.page("a", bounds, desc, offset, 25), (bounds, desc, offset)
