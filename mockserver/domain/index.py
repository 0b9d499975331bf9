"""Per-object record storage with ordered per-field indexes, kept current on every write.

Each `FieldIndex` holds `(sort_key, id)` pairs of the records whose value is not empty in a
`SortedList`, and the ids of the empty ones in another. That one structure answers equality,
`$in`, ranges, prefixes and `$empty` by bisection, and yields records in sort order without
sorting. Indexes are built on first use of a field (so memory is spent only on the fields a
test suite filters or sorts on) and then maintained at O(log n) per write.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sortedcontainers import SortedList

from .records import KeySpec, Kind, Record

#: Sorts after every record id (ids are ASCII).
ID_MAX = "\U0010ffff"


def window(
    sl: SortedList,
    start: int,
    stop: int,
    key_at: int,
    group: Callable[[Any], tuple[int, int]],
    desc: bool,
    offset: int,
    count: int,
) -> list[str]:
    """Ids at positions `offset..offset+count` of the entries `sl[start:stop]` in sort order:
    ascending, or descending with ties still by id ascending. Entries end with the id and hold
    their sort key at `key_at`; `group(key)` is the span of the entries with that key.

    One slice of the SortedList, widened in descending order to whole groups of equal keys at
    its two ends (only those can be cut), then reordered group by group."""
    count = min(count, stop - start - offset)
    if count <= 0:
        return []
    if not desc:
        return [entry[-1] for entry in sl[start + offset : start + offset + count]]
    hi = stop - offset  # the window, in ascending positions: [hi - count, hi)
    lo = hi - count
    # One slice with a neighbour on each side: a group of equal keys can only be cut where a
    # neighbour shares the key of the window's end. Only then ask `group` where it starts or ends.
    a, b = max(start, lo - 1), min(stop, hi + 1)
    chunk = sl[a:b]
    first_key, last_key = chunk[lo - a][key_at], chunk[hi - 1 - a][key_at]
    cut_low = a < lo and chunk[0][key_at] == first_key
    cut_high = b > hi and chunk[-1][key_at] == last_key
    if cut_low or cut_high:
        g_lo = max(start, group(first_key)[0]) if cut_low else lo
        g_hi = min(stop, group(last_key)[1]) if cut_high else hi
        chunk = sl[g_lo:g_hi]
    else:
        g_lo, g_hi = lo, hi
        chunk = chunk[lo - a : hi - a]
    ordered: list[str] = []
    i = len(chunk)
    while i > 0:  # groups from the highest key down, each read ascending (ids ascending)
        j = i - 1
        key = chunk[j][key_at]
        while j > 0 and chunk[j - 1][key_at] == key:
            j -= 1
        if i - j == 1:
            ordered.append(chunk[j][-1])
        else:
            ordered.extend([entry[-1] for entry in chunk[j:i]])
        i = j
    first = offset - (stop - g_hi)  # descending position of `ordered[0]` is stop - g_hi
    return ordered[first : first + count]


class FieldIndex:
    def __init__(self, spec: KeySpec, records: Iterable[Record]) -> None:
        self.spec = spec
        self.keys: dict[str, Any] = {}
        pairs: list[tuple[Any, str]] = []
        empties: list[str] = []
        get, sort_key = spec.get, spec.sort_key
        # multi_select: option -> ids that have it, for "has this option" lookups.
        self.options: dict[str, set[str]] | None = {} if spec.kind == Kind.MULTI else None
        for rec in records:
            value = get(rec)
            if value is None:
                empties.append(rec.id)
                continue
            key = sort_key(value)
            self.keys[rec.id] = key
            pairs.append((key, rec.id))
            if self.options is not None:
                for opt in value:
                    self.options.setdefault(opt, set()).add(rec.id)
        self.sorted = SortedList(pairs)
        self.empties = SortedList(empties)

    def add(self, rec: Record) -> None:
        value = self.spec.get(rec)
        if value is None:
            self.empties.add(rec.id)
            return
        key = self.spec.sort_key(value)
        self.keys[rec.id] = key
        self.sorted.add((key, rec.id))
        if self.options is not None:
            for opt in value:
                self.options.setdefault(opt, set()).add(rec.id)

    def remove(self, rec: Record) -> None:
        key = self.keys.pop(rec.id, None)
        if key is None:
            self.empties.discard(rec.id)
            return
        self.sorted.discard((key, rec.id))
        if self.options is not None:
            for opt in self.spec.get(rec) or ():
                ids = self.options.get(opt)
                if ids is not None:
                    ids.discard(rec.id)

    # --- lookups: each returns ids, or a count, without touching the records -------------

    def count_range(self, lo: Any, lo_incl: bool, hi: Any, hi_incl: bool) -> int:
        start, stop = self._bounds(lo, lo_incl, hi, hi_incl)
        return max(0, stop - start)

    def ids_range(self, lo: Any, lo_incl: bool, hi: Any, hi_incl: bool) -> list[str]:
        start, stop = self._bounds(lo, lo_incl, hi, hi_incl)
        return [pair[1] for pair in self.sorted[start:stop]] if stop > start else []

    def _bounds(self, lo: Any, lo_incl: bool, hi: Any, hi_incl: bool) -> tuple[int, int]:
        sl = self.sorted
        start = 0 if lo is None else sl.bisect_left((lo,)) if lo_incl else sl.bisect_right((lo, ID_MAX))
        stop = len(sl) if hi is None else sl.bisect_right((hi, ID_MAX)) if hi_incl else sl.bisect_left((hi,))
        return start, stop

    # --- ordering ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.sorted) + len(self.empties)

    def page(self, desc: bool, offset: int, limit: int) -> list[str]:
        """Ids of one page of the whole ordering: values (asc or desc, ties by id ascending),
        then the empty ones by id ascending."""
        sl = self.sorted
        n_values = len(sl)

        def group(key: Any) -> tuple[int, int]:
            return sl.bisect_left((key,)), sl.bisect_right((key, ID_MAX))

        ids = window(sl, 0, n_values, 0, group, desc, offset, limit)
        if len(ids) < limit:
            skip = max(0, offset - n_values)
            ids += self.empties[skip : skip + limit - len(ids)]
        return ids

    def iter_order(self, desc: bool) -> Iterator[str]:
        """Every id in sort order (see `at`)."""
        if not desc:
            for _, rid in self.sorted:
                yield rid
        else:
            group: list[str] = []
            group_key: Any = None
            for key, rid in reversed(self.sorted):
                if group and key != group_key:
                    yield from reversed(group)
                    group = []
                group_key = key
                group.append(rid)
            yield from reversed(group)
        yield from self.empties


class CompositeIndex:
    """Records whose `eq` fields all hold a value, ordered by (their keys..., sort key, id).

    Entries are `(*eq_keys, 0, sort_key, id)`, or `(*eq_keys, 1, id)` when the sort field is
    empty, so that for one combination of eq keys the values come first, then the empties. A
    query of exact equalities (plus a range on the sort field) is then one contiguous span:
    its count and any page are bisections, as in SQLite with an index on those columns.
    """

    def __init__(self, eq: tuple[KeySpec, ...], sort: KeySpec, records: Iterable[Record]) -> None:
        self.eq = eq
        self.sort = sort
        self.keys: dict[str, tuple[Any, ...]] = {}
        for rec in records:
            key = self._key(rec)
            if key is not None:
                self.keys[rec.id] = key
        self.sorted = SortedList(self.keys.values())

    def _key(self, rec: Record) -> tuple[Any, ...] | None:
        prefix = []
        for spec in self.eq:
            value = spec.get(rec)
            if value is None:
                return None  # an empty value never equals anything
            prefix.append(spec.sort_key(value))
        value = self.sort.get(rec)
        if value is None:
            return (*prefix, 1, rec.id)
        return (*prefix, 0, self.sort.sort_key(value), rec.id)

    def add(self, rec: Record) -> None:
        key = self._key(rec)
        if key is not None:
            self.keys[rec.id] = key
            self.sorted.add(key)

    def remove(self, rec: Record) -> None:
        key = self.keys.pop(rec.id, None)
        if key is not None:
            self.sorted.discard(key)

    def _span(self, eq_keys: tuple[Any, ...], bounds: tuple[Any, bool, Any, bool] | None) -> tuple[int, int]:
        """Where the entries with these eq keys and a sort-field value within `bounds` lie."""
        sl = self.sorted
        lo, lo_incl, hi, hi_incl = bounds if bounds is not None else (None, True, None, True)
        if lo is None:
            start = sl.bisect_left((*eq_keys, 0))
        elif lo_incl:
            start = sl.bisect_left((*eq_keys, 0, lo))
        else:
            start = sl.bisect_right((*eq_keys, 0, lo, ID_MAX))
        if hi is None:
            stop = sl.bisect_left((*eq_keys, 1))
        elif hi_incl:
            stop = sl.bisect_right((*eq_keys, 0, hi, ID_MAX))
        else:
            stop = sl.bisect_left((*eq_keys, 0, hi))
        return start, max(start, stop)

    def _empty_span(self, eq_keys: tuple[Any, ...]) -> tuple[int, int]:
        return self.sorted.bisect_left((*eq_keys, 1)), self.sorted.bisect_left((*eq_keys, 2))

    def count(self, keysets: tuple[tuple[Any, ...], ...], bounds: tuple[Any, bool, Any, bool] | None) -> int:
        """Matches for any combination of the keys; `bounds` (a range, or all-None for
        "not empty") leaves out the records whose sort field is empty."""
        total = 0
        for eq_keys in itertools.product(*keysets):
            start, stop = self._span(eq_keys, bounds)
            total += stop - start
            if bounds is None:
                e_start, e_stop = self._empty_span(eq_keys)
                total += e_stop - e_start
        return total

    def matcher(
        self, keysets: tuple[tuple[Any, ...], ...], bounds: tuple[Any, bool, Any, bool] | None
    ) -> Callable[[str], bool]:
        """The same condition as `count`, for one record id (from its entry, no record read)."""
        keys = self.keys
        sets = [frozenset(k) for k in keysets]
        n = len(sets)
        lo, lo_incl, hi, hi_incl = bounds if bounds is not None else (None, True, None, True)

        def match(rid: str) -> bool:
            entry = keys.get(rid)
            if entry is None or any(entry[i] not in sets[i] for i in range(n)):
                return False
            if entry[n] == 1:  # the sort field is empty
                return bounds is None
            value = entry[n + 1]
            if lo is not None and (value < lo or (value == lo and not lo_incl)):
                return False
            return hi is None or value < hi or (value == hi and hi_incl)

        return match

    def page(
        self,
        eq_keys: tuple[Any, ...],
        bounds: tuple[Any, bool, Any, bool] | None,
        desc: bool,
        offset: int,
        limit: int,
    ) -> tuple[list[str], int]:
        """The ids of one page and the total, for these eq keys and sort-field bounds."""
        sl = self.sorted
        start, stop = self._span(eq_keys, bounds)
        # A range on the sort field excludes its empty values; otherwise they follow, by id.
        empty_start, empty_stop = self._empty_span(eq_keys) if bounds is None else (0, 0)
        n_values = stop - start
        total = n_values + (empty_stop - empty_start)

        def group(key: Any) -> tuple[int, int]:
            return sl.bisect_left((*eq_keys, 0, key)), sl.bisect_right((*eq_keys, 0, key, ID_MAX))

        ids = window(sl, start, stop, len(eq_keys) + 1, group, desc, offset, limit)
        if len(ids) < limit and empty_stop > empty_start:
            skip = empty_start + max(0, offset - n_values)
            ids += [entry[-1] for entry in sl[skip : min(empty_stop, skip + limit - len(ids))]]
        return ids, total


#: Composite indexes kept per object; past this the least recently used one is dropped.
MAX_COMPOSITES = 16


class ObjectStore:
    """The records of one object, with lazily built, then maintained, field indexes."""

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}
        self.indexes: dict[str, FieldIndex] = {}
        self.composites: dict[tuple[tuple[str, ...], str], CompositeIndex] = {}

    def composite(self, eq: tuple[KeySpec, ...], sort: KeySpec) -> CompositeIndex:
        name = (tuple(s.slug for s in eq), sort.slug)
        idx = self.composites.pop(name, None)
        if idx is None:
            idx = CompositeIndex(eq, sort, self.records.values())
            if len(self.composites) >= MAX_COMPOSITES:
                del self.composites[next(iter(self.composites))]
        self.composites[name] = idx  # (re)inserted last: the dict's order is recency
        return idx

    def __len__(self) -> int:
        return len(self.records)

    def index(self, spec: KeySpec) -> FieldIndex:
        idx = self.indexes.get(spec.slug)
        if idx is None:
            idx = self.indexes[spec.slug] = FieldIndex(spec, self.records.values())
        return idx

    def drop_index(self, slug: str) -> None:
        self.indexes.pop(slug, None)
        for name in [n for n in self.composites if slug in n[0] or slug == n[1]]:
            del self.composites[name]

    def insert(self, rec: Record) -> None:
        self.records[rec.id] = rec
        for idx in self.indexes.values():
            idx.add(rec)
        for comp in self.composites.values():
            comp.add(rec)

    def remove(self, rec: Record) -> None:
        del self.records[rec.id]
        for idx in self.indexes.values():
            idx.remove(rec)
        for comp in self.composites.values():
            comp.remove(rec)

    def replace(self, old: Record, new: Record) -> None:
        self.records[new.id] = new
        for idx in self.indexes.values():
            get = idx.spec.get
            if get(old) != get(new):
                idx.remove(old)
                idx.add(new)
        for comp in self.composites.values():
            comp.remove(old)
            comp.add(new)
