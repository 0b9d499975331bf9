"""Per-object record storage with ordered per-field indexes, kept current on every write.

Each `FieldIndex` holds `(sort_key, id)` pairs of the records whose value is not empty in a
`SortedList`, and the ids of the empty ones in another. That one structure answers equality,
`$in`, ranges, prefixes and `$empty` by bisection, and yields records in sort order without
sorting. Indexes are built on first use of a field (so memory is spent only on the fields a
test suite filters or sorts on) and then maintained at O(log n) per write.
"""

from __future__ import annotations

import itertools
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from operator import itemgetter
from typing import Any

from sortedcontainers import SortedList

from .records import BULK, KeySpec, Kind, Record, release_memory
from .textindex import TextIndex

#: Sorts after every record id (ids are ASCII).
ID_MAX = "\U0010ffff"
#: A composite index entry: `(sort_key, id, eq_keys)`.
_Entry = tuple[Any, str, tuple[Any, ...]]
#: Composite index groups this large or larger keep their numeric sort keys in arrays.
ARRAY_MIN = 64
#: Entries per chunk of a composite index group (a chunk is cut in two past twice this).
CHUNK = 1024


def window(
    entries: Sequence[tuple[Any, ...]] | _Run,
    start: int,
    stop: int,
    group: Callable[[Any], tuple[int, int]],
    desc: bool,
    offset: int,
    count: int,
) -> list[str]:
    """Ids at positions `offset..offset+count` of `entries[start:stop]` in sort order: ascending,
    or descending with ties still by id ascending. Entries are `(sort_key, id, ...)`, ascending;
    `group(key)` is the span of the entries with that key.

    One slice (a SortedList's or a list's), widened in descending order to whole groups of equal
    keys at its two ends (only those can be cut), then sorted by key, descending, in C: the sort
    is stable, so equal keys keep their ids ascending."""
    count = min(count, stop - start - offset)
    if count <= 0:
        return []
    if not desc:
        return list(map(_ID, entries[start + offset : start + offset + count]))
    hi = stop - offset  # the window, in ascending positions: [hi - count, hi)
    lo = hi - count
    # One slice with a neighbour on each side: a group of equal keys can only be cut where a
    # neighbour shares the key of the window's end. Only then ask `group` where it starts or ends.
    a, b = max(start, lo - 1), min(stop, hi + 1)
    chunk = entries[a:b]
    first_key, last_key = chunk[lo - a][0], chunk[hi - 1 - a][0]
    cut_low = a < lo and chunk[0][0] == first_key
    cut_high = b > hi and chunk[-1][0] == last_key
    if cut_low or cut_high:
        g_lo = max(start, group(first_key)[0]) if cut_low else lo
        g_hi = min(stop, group(last_key)[1]) if cut_high else hi
        chunk = entries[g_lo:g_hi]
    else:
        g_hi = hi
        chunk = chunk[lo - a : hi - a]
    ordered = sorted(chunk, key=_KEY, reverse=True)  # stable, reverse too: ties keep ids ascending
    first = offset - (stop - g_hi)  # descending position of `ordered[0]` is stop - g_hi
    return list(map(_ID, ordered[first : first + count]))


_KEY = itemgetter(0)
_ID = itemgetter(1)


def _same(key: str) -> str:
    return key


class FieldIndex:
    def __init__(self, spec: KeySpec, records: Iterable[Record]) -> None:
        self.spec = spec
        self.keys: dict[str, Any] = {}
        pairs: list[tuple[Any, str]] = []
        empties: list[str] = []
        get, sort_key = spec.get, spec.sort_key
        # multi_select: option -> ids that have it, for "has this option" lookups.
        self.options: dict[str, set[str]] | None = {} if spec.kind == Kind.MULTI else None
        # One string object for each distinct text key (names repeat: 1,000,000 contacts have a
        # few thousand), 50-60 bytes less for each record that shares it.
        distinct: dict[str, str] = {}
        for rec in records:
            value = get(rec)
            if value is None:
                empties.append(rec.id)
                continue
            key = sort_key(value)
            if type(key) is str:
                key = distinct.setdefault(key, key)
            self.keys[rec.id] = key
            pairs.append((key, rec.id))
            if self.options is not None:
                for opt in value:
                    self.options.setdefault(opt, set()).add(rec.id)
        self.sorted = SortedList(pairs)
        self.empties = SortedList(empties)
        #: The text operators' index (text-like fields), built on their first use.
        self.text: TextIndex | None = None

    def text_index(self) -> TextIndex:
        """The field's text index, built from its keys on first use. Keys of text-like fields are
        their values lowercased, as text operators fold them; `id`'s are the ids as they are."""
        if self.text is None:
            self.text = TextIndex(str.lower if self.spec.slug == "id" else _same, self.keys.items())
            if len(self.keys) >= BULK:
                release_memory()
        return self.text

    def add(self, rec: Record) -> None:
        value = self.spec.get(rec)
        if value is None:
            self.empties.add(rec.id)
            return
        key = self.spec.sort_key(value)
        self.keys[rec.id] = key
        self.sorted.add((key, rec.id))
        if self.text is not None:
            self.text.add(rec.id, key)
        if self.options is not None:
            for opt in value:
                self.options.setdefault(opt, set()).add(rec.id)

    def remove(self, rec: Record) -> None:
        key = self.keys.pop(rec.id, None)
        if key is None:
            self.empties.discard(rec.id)
            return
        self.sorted.discard((key, rec.id))
        if self.text is not None:
            self.text.remove(rec.id)
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

        ids = window(sl, 0, n_values, group, desc, offset, limit)
        if len(ids) < limit:
            skip = max(0, offset - n_values)
            ids += self.empties[skip : skip + limit - len(ids)]
        return ids

    def ids_in_order(self, desc: bool) -> Iterator[str]:
        """`iter_order`, iterated in C when ascending."""
        if desc:
            return self.iter_order(True)
        return itertools.chain(map(_ID, self.sorted), self.empties)

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


class _Run:
    """One composite-index group of two entries or more, in order, in chunks of about `CHUNK`.

    A write moves the tail of one chunk, not of the whole group: with groups of about 17,000
    entries (100,000 contacts over six statuses), a list and an array per group made a status
    change four memmoves (a list's and an array's in the group it left and the one it joined) of
    up to 140 KB each, and ten times that at 1,000,000. Bisections
    stay in C: one over the chunks' last entries (or keys), one inside the chunk. Positions add
    the chunk's start, from `starts`, rebuilt in C after a write changed them, on the next read.

    Where every key is one a float holds exactly and the group has `ARRAY_MIN` entries or more,
    `nums` keeps each chunk's keys again in an `array('d')` and `nmaxes` their last keys, and
    key bisections read those (8 contiguous bytes a probe, not a tuple and a number object)."""

    __slots__ = ("chunks", "maxes", "n", "nmaxes", "nums", "starts")

    def __init__(self, entries: list[_Entry]) -> None:
        """`entries`: sorted, at least two."""
        self.chunks = [entries[i : i + CHUNK] for i in range(0, len(entries), CHUNK)]
        self.maxes = [chunk[-1] for chunk in self.chunks]
        self.n = len(entries)
        self.starts: list[int] | None = None
        self.nums: list[array[float]] | None = None
        self.nmaxes: array[float] | None = None
        self._count_numbers()

    def _count_numbers(self) -> None:
        """Give the run its arrays of keys, if it is large enough and floats hold its keys."""
        if self.n >= ARRAY_MIN and all(_exact_float(entry[0]) for chunk in self.chunks for entry in chunk):
            self.nums = [array("d", map(_KEY, chunk)) for chunk in self.chunks]
            self.nmaxes = array("d", [keys[-1] for keys in self.nums])

    def __len__(self) -> int:
        return self.n

    def _starts(self) -> list[int]:
        starts = self.starts
        if starts is None:
            starts = self.starts = list(itertools.accumulate(map(len, self.chunks[:-1]), initial=0))
        return starts

    def __getitem__(self, where: slice) -> list[_Entry]:
        """The entries at these positions (a slice with no step), as a list."""
        chunks = self.chunks
        if len(chunks) == 1:
            return chunks[0][where]
        start, stop, _ = where.indices(self.n)
        if start >= stop:
            return []
        starts = self._starts()
        first = bisect_right(starts, start) - 1
        last = bisect_right(starts, stop - 1) - 1
        if first == last:
            return chunks[first][start - starts[first] : stop - starts[first]]
        out = chunks[first][start - starts[first] :]
        for k in range(first + 1, last):
            out += chunks[k]
        out += chunks[last][: stop - starts[last]]
        return out

    def bisect(self, probe: tuple[Any, ...], right: bool) -> int:
        """`bisect_left` (or `bisect_right`) of `probe` over all the entries."""
        cut = bisect_right if right else bisect_left
        chunks = self.chunks
        if len(chunks) == 1:
            return cut(chunks[0], probe)
        i = cut(self.maxes, probe)
        if i == len(chunks):
            return self.n
        return self._starts()[i] + cut(chunks[i], probe)

    def bisect_key(self, key: Any, right: bool) -> int:
        """The same, for a sort key alone: before (or after) every entry with this key."""
        nums, nmaxes = self.nums, self.nmaxes
        if nums is None or nmaxes is None:
            return self.bisect((key, ID_MAX) if right else (key,), right)
        cut = bisect_right if right else bisect_left
        if len(nums) == 1:
            return cut(nums[0], key)
        i = cut(nmaxes, key)
        if i == len(nums):
            return self.n
        return self._starts()[i] + cut(nums[i], key)

    def _locate(self, entry: _Entry) -> tuple[int, int]:
        """The chunk that holds (or would hold) this entry, and its position there. With arrays
        of keys, the bisections read those, and compare entries only among equal keys."""
        chunks, nums, nmaxes = self.chunks, self.nums, self.nmaxes
        last = len(chunks) - 1
        if nums is None or nmaxes is None:
            i = 0 if not last else min(bisect_left(self.maxes, entry), last)
            return i, bisect_left(chunks[i], entry)
        key = entry[0]
        i = 0 if not last else min(bisect_left(nmaxes, key), last)
        if i < last and nmaxes[i] == key and self.maxes[i] < entry:  # equal keys run on
            i = min(bisect_left(self.maxes, entry, i), last)
        keys = nums[i]
        lo = bisect_left(keys, key)
        hi = bisect_right(keys, key, lo)
        return i, lo if lo == hi else bisect_left(chunks[i], entry, lo, hi)

    def insert(self, entry: _Entry) -> None:
        i, at = self._locate(entry)
        chunk = self.chunks[i]
        chunk.insert(at, entry)
        self.n += 1
        self.starts = None
        last = at == len(chunk) - 1
        if last:
            self.maxes[i] = entry
        nums = self.nums
        if nums is not None and self.nmaxes is not None:
            if _exact_float(entry[0]):
                nums[i].insert(at, entry[0])
                if last:
                    self.nmaxes[i] = entry[0]
            else:  # a key a float cannot hold: this run bisects its entries from now on
                self.nums = self.nmaxes = None
        elif self.n == ARRAY_MIN:
            self._count_numbers()
        if len(chunk) > 2 * CHUNK:
            self._rechunk(i, i + 1)

    def remove(self, entry: _Entry) -> None:
        """Take out an entry the run holds."""
        i, at = self._locate(entry)
        chunk = self.chunks[i]
        del chunk[at]
        self.n -= 1
        self.starts = None
        nums = self.nums
        if nums is not None:
            del nums[i][at]
        if chunk and at == len(chunk):
            self.maxes[i] = chunk[-1]
            if nums is not None and self.nmaxes is not None:
                self.nmaxes[i] = nums[i][-1]
        if len(self.chunks) > 1 and len(chunk) * 4 < CHUNK:  # empty or small: join a neighbour
            j = i + 1 if i + 1 < len(self.chunks) else i - 1
            self._rechunk(min(i, j), max(i, j) + 1)

    def _rechunk(self, lo: int, hi: int) -> None:
        """Cut chunks `lo..hi-1` again into as few chunks of at most `CHUNK` as even as can be."""
        joined = [entry for chunk in self.chunks[lo:hi] for entry in chunk]
        pieces = max(1, -(-len(joined) // CHUNK))
        size = -(-len(joined) // pieces)
        cuts = range(0, len(joined), size)
        chunks = [joined[at : at + size] for at in cuts]
        self.chunks[lo:hi] = chunks
        self.maxes[lo:hi] = [chunk[-1] for chunk in chunks]
        if self.nums is not None and self.nmaxes is not None:
            keys = array("d", itertools.chain.from_iterable(self.nums[lo:hi]))
            self.nums[lo:hi] = [keys[at : at + size] for at in cuts]
            self.nmaxes[lo:hi] = array("d", [chunk[-1][0] for chunk in chunks])
        self.starts = None


class CompositeIndex:
    """Records whose `eq` fields all hold a value, in groups by those fields' keys. In a group,
    the records whose sort field holds a value are `(sort_key, id, eq_keys)` entries in order
    (a `_Run` of chunks), and the others are ids, in order. A query of exact equalities, plus a
    range on the sort field, is then one run of one group: its count and any page take at most
    two bisections, done in C (as in SQLite with an index on those columns).

    Chunked lists, not SortedLists: a bisection is then two C calls, not a Python method walking
    SortedList's positional tree. A group of one record (an `$eq` on email makes 100,000 of them)
    holds its entry without a run around it."""

    def __init__(self, eq: tuple[KeySpec, ...], sort: KeySpec, records: Iterable[Record]) -> None:
        self.eq = eq
        self.sort = sort
        #: The fields it groups and orders by.
        self.slugs = frozenset([spec.slug for spec in eq] + [sort.slug])
        #: id -> its entry: `(sort_key, id, eq_keys)`, or `(None, id, eq_keys)` when the sort
        #: field is empty (sort keys are never None).
        self.keys: dict[str, _Entry] = {}
        #: eq keys -> the group's entries in order, or its one entry.
        self.values: dict[tuple[Any, ...], _Run | _Entry] = {}
        #: eq keys -> the ids of the group's records whose sort field is empty, in order (a
        #: SortedList: a write into tens of thousands of them moves no list's tail).
        self.empties: dict[tuple[Any, ...], SortedList] = {}
        empties: dict[tuple[Any, ...], list[str]] = {}
        collected: dict[tuple[Any, ...], list[_Entry]] = {}
        for rec in records:
            entry = self._entry(rec, collected)
            if entry is None:
                continue
            self.keys[rec.id] = entry
            group = entry[2]
            if entry[0] is None:
                empties.setdefault(group, []).append(rec.id)
                continue
            collected.setdefault(group, []).append(entry)
        for group, entries in collected.items():
            if len(entries) == 1:
                self.values[group] = entries[0]
            else:
                entries.sort()
                self.values[group] = _Run(entries)
        for group, ids in empties.items():
            self.empties[group] = SortedList(ids)

    def _entry(
        self, rec: Record, collected: dict[tuple[Any, ...], list[_Entry]] | None = None
    ) -> _Entry | None:
        eq_keys = []
        for spec in self.eq:
            value = spec.get(rec)
            if value is None:
                return None  # an empty value never equals anything
            eq_keys.append(spec.sort_key(value))
        group = tuple(eq_keys)
        # One tuple per group, shared by its entries.
        if collected is not None:
            held: Any = collected.get(group)
            if held:
                group = held[0][2]
        else:
            held = self.values.get(group)
            if held is not None:
                group = (held.chunks[0][0] if isinstance(held, _Run) else held)[2]
        value = self.sort.get(rec)
        return (None if value is None else self.sort.sort_key(value), rec.id, group)

    def _group(self, group: tuple[Any, ...]) -> _Run | list[_Entry]:
        held = self.values.get(group)
        if held is None:
            return _NO_ENTRIES
        return held if isinstance(held, _Run) else [held]

    def add(self, rec: Record) -> None:
        entry = self._entry(rec)
        if entry is not None:
            self._put(entry)

    def _put(self, entry: _Entry) -> None:
        self.keys[entry[1]] = entry
        key, _, group = entry
        if key is None:
            ids = self.empties.get(group)
            if ids is None:
                ids = self.empties[group] = SortedList()
            ids.add(entry[1])
            return
        held = self.values.get(group)
        if held is None:
            self.values[group] = entry
        elif isinstance(held, _Run):
            held.insert(entry)
        else:
            self.values[group] = _Run(sorted([held, entry]))

    def remove(self, rec: Record) -> None:
        entry = self.keys.pop(rec.id, None)
        if entry is None:
            return
        group = entry[2]
        if entry[0] is None:
            ids = self.empties[group]
            ids.remove(rec.id)
            if not ids:
                del self.empties[group]
            return
        held = self.values[group]
        if not isinstance(held, _Run):  # the group's one entry
            del self.values[group]
            return
        held.remove(entry)
        if held.n == 1:
            self.values[group] = held.chunks[0][0]

    def _span(
        self, eq_keys: tuple[Any, ...], bounds: tuple[Any, bool, Any, bool] | None
    ) -> tuple[_Run | list[_Entry], int, int]:
        """The group with these eq keys, and where its entries with a sort-field value within
        `bounds` lie (all of them without bounds)."""
        entries = self._group(eq_keys)
        if bounds is None:
            return entries, 0, len(entries)
        lo, lo_incl, hi, hi_incl = bounds
        start = 0 if lo is None else _key_cut(entries, lo, not lo_incl)
        stop = len(entries) if hi is None else _key_cut(entries, hi, hi_incl)
        return entries, start, max(start, stop)

    def count(self, keysets: tuple[tuple[Any, ...], ...], bounds: tuple[Any, bool, Any, bool] | None) -> int:
        """Matches for any combination of the keys; `bounds` (a range, or all-None for
        "not empty") leaves out the records whose sort field is empty."""
        total = 0
        for eq_keys in itertools.product(*keysets):
            _, start, stop = self._span(eq_keys, bounds)
            total += stop - start
            if bounds is None:
                total += len(self.empties.get(eq_keys, ()))
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
            if entry is None:
                return False
            group = entry[2]
            if any(group[i] not in sets[i] for i in range(n)):
                return False
            value = entry[0]
            if value is None:  # the sort field is empty
                return bounds is None
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
        entries, start, stop = self._span(eq_keys, bounds)
        # A range on the sort field excludes its empty values; otherwise they follow, by id.
        empties = self.empties.get(eq_keys, _NO_IDS) if bounds is None else _NO_IDS
        n_values = stop - start

        def group(key: Any) -> tuple[int, int]:
            return _key_cut(entries, key, False), _key_cut(entries, key, True)

        ids = window(entries, start, stop, group, desc, offset, limit)
        if len(ids) < limit and empties:
            skip = max(0, offset - n_values)
            ids += empties[skip : skip + limit - len(ids)]
        return ids, n_values + len(empties)


def _key_cut(entries: _Run | list[_Entry], key: Any, right: bool) -> int:
    """Before (or after) the entries with this sort key: a group's run, or the list of a group of
    none or one."""
    if isinstance(entries, _Run):
        return entries.bisect_key(key, right)
    return bisect_right(entries, (key, ID_MAX)) if right else bisect_left(entries, (key,))


def _exact_float(key: Any) -> bool:
    """Whether a float holds this sort key exactly (so it compares and orders as the key does)."""
    kind = type(key)
    if kind is float:
        return True
    if kind is int:
        if -_EXACT <= key <= _EXACT:
            return True
        try:
            return bool(float(key) == key)
        except OverflowError:
            return False
    return False


#: Every integer up to this size is a float exactly (2 ** 53); past it, some are.
_EXACT = 2**53


_NO_ENTRIES: list[_Entry] = []
_NO_IDS: list[str] = []


#: Composite indexes kept per object; past this the least recently used one is dropped.
MAX_COMPOSITES = 16


class ObjectStore:
    """The records of one object, with lazily built, then maintained, field indexes."""

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}
        self.indexes: dict[str, FieldIndex] = {}
        self.composites: dict[tuple[tuple[str, ...], str], CompositeIndex] = {}

    def composite(self, eq: tuple[KeySpec, ...], sort: KeySpec) -> CompositeIndex:
        name = (tuple([s.slug for s in eq]), sort.slug)
        idx = self.composites.pop(name, None)
        if idx is None:
            idx = CompositeIndex(eq, sort, self.records.values())
            if len(self.records) >= BULK:
                release_memory()
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
            if len(self.records) >= BULK:
                release_memory()
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

    def replace(self, old: Record, new: Record, touched: AbstractSet[str] | None = None) -> None:
        """`new` in place of `old`. `touched`: the fields the write set (and `updated_at`); an
        index of none of them keeps its keys and is not looked at. None: look at every index."""
        self.records[new.id] = new
        for slug, idx in self.indexes.items():
            if touched is not None and slug not in touched:
                continue
            get = idx.spec.get
            if get(old) != get(new):
                idx.remove(old)
                idx.add(new)
        for comp in self.composites.values():
            if touched is not None and comp.slugs.isdisjoint(touched):
                continue
            entry = comp._entry(new)
            if entry is not None and comp.keys.get(new.id) == entry:
                continue  # the fields it orders and groups by kept their keys: nothing moves
            comp.remove(old)
            if entry is not None:
                comp._put(entry)
