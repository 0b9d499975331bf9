"""The text index of one field: postings of every 1- to 4-letter piece of its distinct folded values.

Postings hold values, not records: each distinct folded value has a number (its `vid`, in the
order first written) and its holders (the ids of the records that hold it). Names repeat (100,000
contacts hold about 3,500 names), so a posting is short and a fragment's candidates are few; an
email is one record's, so there the two are the same. A fragment of up to four letters is one
posting, exactly; a longer one is the shortest posting of its four-letter pieces, each candidate
checked with `in`. `$starts_with` and `$ends_with` have postings of their own, of each value's
first and last one to four letters.

A posting is an `array('i')` of value numbers, ascending: a new value appends (new numbers are the
highest). A posting's count of records is its length, minus its dead values, plus `extra`: the
holders past the first of each of its values. A value whose last holder goes is dead: it stays in
its postings (holding no one, folded to "": no fragment is in it), counted against each, and a
posting is compacted once half of it is dead, the whole index once half of its values are.

Folding is the query engine's: the field index's key (`str.lower()` of the value), or the value's
`lower()` for `id`, whose key is the value itself. A fragment folded the same way is a substring of
a folded value exactly when the engine's test says so, whatever `lower()` does to the length of
non-ASCII text, because pieces are cut from the folded value, never folded one by one.
"""

from __future__ import annotations

from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable
from functools import partial
from itertools import compress, repeat
from operator import add, contains
from typing import TypeAlias

#: The longest piece indexed: fragments up to this long are answered from one posting, exactly.
#: Four, not three: a longer fragment's candidates (the shortest posting of its pieces) were too
#: many to check within a millisecond with three, and four costs a fifth more memory.
PIECE = 4
#: Postings this short are never compacted (dead entries cost little there).
MIN_COMPACT = 32
#: The whole index renumbers its values once this share of them is dead, and more than
#: `MIN_REBUILD` of them.
DEAD_SHARE = 0.5
MIN_REBUILD = 64

#: A posting of this many values or more, over a 32nd of all of them, is a bitmap: a bytearray
#: with bit `vid % 8` of byte `vid // 8` set for each of its values (dead ones cleared), so a piece
#: that most emails hold (".com", "exam") costs a bit per value rather than 4 bytes.
DENSE_MIN = 256
DENSE_SHARE = 32

_OPS = {"$contains": 0, "$starts_with": 1, "$ends_with": 2}


def _pieces(s: str) -> tuple[set[str], tuple[str, ...], tuple[str, ...]]:
    """(every piece of 1-4 letters, the first 1-4 letters, the last 1-4 letters) of a folded value;
    the pieces cut by `map` in C (a comprehension of slices took twice as long). Written out for
    `PIECE` = 4: a change there changes this too."""
    pairs = list(map(add, s, s[1:]))
    threes = list(map(add, pairs, s[2:]))
    inner = set(s)
    inner.update(pairs)
    inner.update(threes)
    inner.update(map(add, threes, s[3:]))
    k = min(len(s), PIECE)
    return inner, (s[:1], s[:2], s[:3], s[:4])[:k], (s[-1:], s[-2:], s[-3:], s[-4:])[:k]


Posting: TypeAlias = "array[int] | bytearray"
_BITS = bytes.maketrans(b"01", b"\x00\x01")


def _bitmap(posting: Iterable[int], n: int) -> bytearray:
    """A bitmap of room for `n` values holding these."""
    mask = bytearray(n)  # a byte per value, set in C, then packed to bits through a binary numeral
    deque(map(mask.__setitem__, posting, repeat(1)), maxlen=0)
    numeral = mask[::-1].translate(_UNBITS)
    return bytearray(int(numeral or b"0", 2).to_bytes((n + 7) // 8 or 1, "little"))


_UNBITS = bytes.maketrans(b"\x00\x01", b"01")


def _flags(bits: int) -> bytes:
    """A byte per value, 1 for those whose bit is set (up to the highest set), made in C."""
    return bin(bits)[:1:-1].encode().translate(_BITS)


def _vids(bitmap: bytearray) -> list[int]:
    """The values a bitmap holds, ascending."""
    flags = _flags(int.from_bytes(bitmap, "little"))
    return list(compress(range(len(flags)), flags))


def _size(posting: Posting) -> int:
    """How many values a posting holds (live ones only, for a bitmap)."""
    if isinstance(posting, bytearray):
        return int.from_bytes(posting, "little").bit_count()
    return len(posting)


class TextIndex:
    """Postings of one field's distinct folded, non-empty values (see the module docstring)."""

    def __init__(self, fold: Callable[[str], str], entries: Iterable[tuple[str, str]]) -> None:
        """`entries`: (record id, the field's index key) for each record whose value is not empty;
        `fold` turns a key into the folded value the engine tests (folded once: `lower()` twice
        need not be `lower()` once)."""
        self.fold = fold
        self._build((rid, fold(key)) for rid, key in entries)

    def _build(self, entries: Iterable[tuple[str, str]]) -> None:
        #: record id -> its folded value.
        self.value_of: dict[str, str] = {}
        #: folded value -> its number, for the live values.
        self.vid_of: dict[str, int] = {}
        #: vid -> folded value ("" once dead), its holders (one id bare, "" once dead), how many.
        self.values: list[str] = []
        self.holders: list[str | list[str]] = []
        self.sizes: array[int] = array("i")
        #: piece -> values, for pieces anywhere, at the start, at the end.
        self.tables: tuple[dict[str, Posting], ...] = ({}, {}, {})
        #: per table, piece -> dead values still in its posting; holders past each value's first.
        self.dead: tuple[dict[str, int], ...] = ({}, {}, {})
        self.extra: tuple[Counter[str], ...] = (Counter(), Counter(), Counter())
        self.n_dead = 0
        value_of, vid_of, values, holders, sizes = (
            self.value_of,
            self.vid_of,
            self.values,
            self.holders,
            self.sizes,
        )
        for rid, value in entries:
            value_of[rid] = value
            vid = vid_of.get(value)
            if vid is None:
                vid_of[value] = len(values)
                values.append(value)
                holders.append(rid)
                sizes.append(1)
            else:
                held = holders[vid]
                if isinstance(held, str):
                    holders[vid] = [held, rid]
                else:
                    held.append(rid)
                sizes[vid] += 1
        # Values in number order: each posting is appended to in ascending order, and turns into
        # a bitmap as soon as it is dense (a dense array, grown and then dropped, would leave its
        # memory to the allocator, not to the system).
        n = len(values)
        dense = max(DENSE_MIN, n // DENSE_SHARE)
        for vid, value in enumerate(values):
            byte, bit = vid >> 3, 1 << (vid & 7)
            cut = _pieces(value)
            for table, pieces in zip(self.tables, cut, strict=True):
                get = table.get
                for piece in pieces:
                    posting = get(piece)
                    if posting is None:
                        table[piece] = array("i", (vid,))
                    elif type(posting) is bytearray:
                        posting[byte] |= bit
                    else:
                        posting.append(vid)
                        if len(posting) >= dense:
                            table[piece] = _bitmap(posting, n)
            more = sizes[vid] - 1
            if more:
                for extra, pieces in zip(self.extra, cut, strict=True):
                    for piece in pieces:
                        extra[piece] = extra.get(piece, 0) + more

    def __len__(self) -> int:
        """Live records: those whose value is not empty."""
        return len(self.value_of)

    def add(self, rid: str, key: str) -> None:
        value = self.fold(key)
        self.value_of[rid] = value
        vid = self.vid_of.get(value)
        if vid is None:  # a new value: appended to its pieces' postings
            vid = self.vid_of[value] = len(self.values)
            self.values.append(value)
            self.holders.append(rid)
            self.sizes.append(1)
            byte, bit = vid >> 3, 1 << (vid & 7)
            dense = len(self.values) // DENSE_SHARE
            for table, dead_of, pieces in zip(self.tables, self.dead, _pieces(value), strict=True):
                for piece in pieces:
                    posting = table.get(piece)
                    if posting is None:
                        table[piece] = array("i", (vid,))
                    elif isinstance(posting, bytearray):
                        if byte >= len(posting):
                            posting.extend(bytes(byte - len(posting) + 64))
                        posting[byte] |= bit
                    else:
                        posting.append(vid)
                        if len(posting) >= DENSE_MIN and len(posting) > dense:  # live ones only
                            table[piece] = _bitmap(
                                compress(posting, map(self.sizes.__getitem__, posting)), vid + 1
                            )
                            dead_of.pop(piece, None)
            return
        held = self.holders[vid]
        if isinstance(held, str):
            self.holders[vid] = [held, rid]
        else:
            held.append(rid)
        self.sizes[vid] += 1
        for extra, pieces in zip(self.extra, _pieces(value), strict=True):
            extra.update(pieces)  # counted in C

    def remove(self, rid: str) -> None:
        value = self.value_of.pop(rid, None)
        if value is None:
            return
        vid = self.vid_of[value]
        if self.sizes[vid] > 1:  # other records keep the value: one holder fewer
            held = self.holders[vid]
            assert isinstance(held, list)
            held.remove(rid)
            if len(held) == 1:
                self.holders[vid] = held[0]
            self.sizes[vid] -= 1
            for extra, pieces in zip(self.extra, _pieces(value), strict=True):
                for piece in pieces:
                    left = extra[piece] - 1
                    if left:
                        extra[piece] = left
                    else:
                        del extra[piece]
            return
        del self.vid_of[value]
        self.values[vid] = ""
        self.holders[vid] = ""
        self.sizes[vid] = 0
        self.n_dead += 1
        if self.n_dead > MIN_REBUILD and self.n_dead > DEAD_SHARE * len(self.values):
            self._build(list(self.value_of.items()))
            return
        sizes = self.sizes
        byte, unset = vid >> 3, 0xFF ^ (1 << (vid & 7))
        for table, dead_of, pieces in zip(self.tables, self.dead, _pieces(value), strict=True):
            for piece in pieces:
                posting = table[piece]
                if isinstance(posting, bytearray):
                    posting[byte] &= unset
                    continue
                dead = dead_of.get(piece, 0) + 1
                if dead == len(posting):  # all dead: drop the piece
                    del table[piece]
                    dead_of.pop(piece, None)
                elif dead * 2 > len(posting) and len(posting) >= MIN_COMPACT:
                    table[piece] = array("i", compress(posting, map(sizes.__getitem__, posting)))
                    dead_of.pop(piece, None)
                else:
                    dead_of[piece] = dead

    # --- lookups ----------------------------------------------------------------------------

    def _posting(self, op: str, needle: str) -> tuple[Posting | bytes, int, bool]:
        """The posting to read for `op` (`$contains`, `$starts_with` or `$ends_with`) and a folded,
        non-empty needle, and whether every live value in it matches (no check needed): then with
        the records it holds, else -1. A posting to check is an array, or `_flags` (bytes)."""
        n = len(needle)
        if n <= PIECE:
            t = _OPS[op]
            posting = self.tables[t].get(needle)
            if posting is None:
                return _EMPTY, 0, True
            if isinstance(posting, bytearray):
                return posting, _size(posting) + self.extra[t].get(needle, 0), True
            return posting, len(posting) - self.dead[t].get(needle, 0) + self.extra[t].get(needle, 0), True
        # The shortest posting of the needle's pieces: every match is in each of them.
        options: list[tuple[int, str]] = [(0, needle[i : i + PIECE]) for i in range(n - PIECE + 1)]
        if op == "$starts_with":
            options.append((1, needle[:PIECE]))
        elif op == "$ends_with":
            options.append((2, needle[-PIECE:]))
        best: array[int] | None = None
        bitmaps: list[bytearray] = []
        for t, piece in options:
            posting = self.tables[t].get(piece)
            if posting is None:
                return _EMPTY, 0, True
            if isinstance(posting, bytearray):
                bitmaps.append(posting)
            elif best is None or len(posting) < len(best):
                best = posting
        if best is not None:
            return best, -1, False
        # Every piece is common: the values in all of them.
        both = int.from_bytes(bitmaps[0], "little")
        for bitmap in bitmaps[1:]:
            both &= int.from_bytes(bitmap, "little")
        return _flags(both), -1, False

    def count(self, op: str, needle: str) -> int:
        """How many records match `op` (a positive text operator) with a folded, non-empty needle."""
        return self.match(op, needle)[0]

    def match(self, op: str, needle: str) -> tuple[int, Callable[[], list[str]]]:
        """The count, and a function that lists the ids of the records that match (in no particular
        order; a caller that needs only the count never lists them)."""
        posting, total, exact = self._posting(op, needle)
        if exact:
            assert not isinstance(posting, bytes)  # flags are never exact
            return total, partial(self.ids_of, posting)
        check = _CHECKS[op]
        unique = len(self.value_of) == len(self.vid_of)  # one record per live value
        if isinstance(posting, bytes):  # flags: the candidates' values and results, all in C
            passes = bytes(map(check, compress(self.values, posting), repeat(needle)))
            total = passes.count(1) if unique else sum(compress(compress(self.sizes, posting), passes))
            return total, partial(self._flagged, posting, passes)
        # A dead value is "": no check passes on it.
        vids = list(compress(posting, map(check, map(self.values.__getitem__, posting), repeat(needle))))
        total = len(vids) if unique else sum(map(self.sizes.__getitem__, vids))
        return total, partial(self.ids_of, vids)

    def _flagged(self, flags: bytes, passes: bytes) -> list[str]:
        return self.ids_of(list(compress(compress(range(len(flags)), flags), passes)))

    def ids_of(self, vids: Posting | list[int]) -> list[str]:
        """The ids of the records that hold these values (a posting, or a list of values), in no
        particular order."""
        if isinstance(vids, bytearray):
            vids = _vids(vids)
        held = map(self.holders.__getitem__, vids)
        if len(self.value_of) == len(self.vid_of):  # every holder bare ("" once dead)
            return list(filter(None, held))  # type: ignore[arg-type]
        out: list[str] = []
        for h in held:
            if isinstance(h, str):
                if h:
                    out.append(h)
            else:
                out += h
        return out

    def ids(self, op: str, needle: str) -> list[str]:
        """The ids of the records that match, in no particular order."""
        return self.match(op, needle)[1]()


_CHECKS: dict[str, Callable[[str, str], bool]] = {
    "$contains": contains,
    "$starts_with": str.startswith,
    "$ends_with": str.endswith,
}
_EMPTY: array[int] = array("i")
