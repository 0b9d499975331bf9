"""The text index of one field: postings of every 1- to 4-letter piece of its folded values.

`$contains` with a fragment of up to four letters is then one posting list, exactly; a longer one
is the shortest posting of its four-letter pieces, each candidate checked with `in`. `$starts_with`
and `$ends_with` have postings of their own, of each value's first and last one to four letters.
A posting is an `array('i')` of document numbers, ascending: a document is one record's folded
value, numbered in the order written, so a write appends (new numbers are the highest). A delete
only marks its document dead, and counts it against each of its pieces' postings; a posting is
compacted once half of it is dead, the whole index once half of its documents are.

Folding is the query engine's: the field index's key (`str.lower()` of the value), or the value's
`lower()` for `id`, whose key is the value itself. A fragment folded the same way is a substring of
a folded value exactly when the engine's test says so, whatever `lower()` does to the length of
non-ASCII text, because pieces are cut from the folded value, never folded one by one.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator
from itertools import compress, repeat
from operator import add, contains

#: The longest piece indexed: fragments up to this long are answered from one posting, exactly.
#: Four, not three: a longer fragment's candidates (the shortest posting of its pieces) were too
#: many to check within a millisecond with three, and four costs a fifth more memory.
PIECE = 4
#: Postings this short are never compacted (dead entries cost little there).
MIN_COMPACT = 32
#: The whole index renumbers its documents once this share of them is dead, and more than
#: `MIN_REBUILD` of them.
DEAD_SHARE = 0.5
MIN_REBUILD = 64


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


class TextIndex:
    """Postings of one field's folded, non-empty values (see the module docstring)."""

    def __init__(self, fold: Callable[[str], str], entries: Iterable[tuple[str, str]]) -> None:
        """`entries`: (record id, the field's index key) for each record whose value is not empty;
        `fold` turns a key into the folded value the engine tests (folded once: `lower()` twice
        need not be `lower()` once)."""
        self.fold = fold
        self._build([(rid, fold(key)) for rid, key in entries])

    def _build(self, entries: list[tuple[str, str]]) -> None:
        #: document -> record id, and -> folded value ("" once dead: no fragment is in it).
        self.docs: list[str] = []
        self.folded: list[str] = []
        self.doc_of: dict[str, int] = {}
        #: piece -> documents, for pieces anywhere, at the start, at the end.
        self.inner: dict[str, array[int]] = {}
        self.first: dict[str, array[int]] = {}
        self.last: dict[str, array[int]] = {}
        #: (table, piece) -> dead documents still in that posting.
        self.dead: dict[tuple[int, str], int] = {}
        self.n_dead = 0
        self.docs = [rid for rid, _ in entries]
        self.folded = [value for _, value in entries]
        self.doc_of = dict(zip(self.docs, range(len(self.docs)), strict=True))
        # Cut each distinct value once (names repeat) and add its documents together; postings
        # are then out of order where values repeat, and sorted once, in C.
        groups: dict[str, list[int]] = {}
        for doc, value in enumerate(self.folded):
            same = groups.get(value)
            if same is None:
                groups[value] = [doc]
            else:
                same.append(doc)
        tables = (self.inner, self.first, self.last)
        for value, docs in groups.items():
            single = len(docs) == 1
            for table, pieces in zip(tables, _pieces(value), strict=True):
                get = table.get
                for piece in pieces:
                    posting = get(piece)
                    if posting is None:
                        table[piece] = array("i", docs)
                    elif single:
                        posting.append(docs[0])
                    else:
                        posting.extend(docs)
        if len(groups) < len(self.folded):
            for table in tables:
                for piece, posting in table.items():
                    table[piece] = array("i", sorted(posting))

    def __len__(self) -> int:
        """Live documents: the records whose value is not empty."""
        return len(self.doc_of)

    def add(self, rid: str, key: str) -> None:
        self._add(rid, self.fold(key))

    def _add(self, rid: str, value: str) -> None:
        doc = len(self.docs)
        self.docs.append(rid)
        self.folded.append(value)
        self.doc_of[rid] = doc
        for table, pieces in zip((self.inner, self.first, self.last), _pieces(value), strict=True):
            for piece in pieces:
                posting = table.get(piece)
                if posting is None:
                    table[piece] = array("i", (doc,))
                else:
                    posting.append(doc)

    def remove(self, rid: str) -> None:
        doc = self.doc_of.pop(rid, None)
        if doc is None:
            return
        value = self.folded[doc]
        self.docs[doc] = ""
        self.folded[doc] = ""
        self.n_dead += 1
        if self.n_dead > MIN_REBUILD and self.n_dead > DEAD_SHARE * len(self.docs):
            self._build([(r, self.folded[d]) for d, r in enumerate(self.docs) if r])
            return
        tables = (self.inner, self.first, self.last)
        for t, (table, pieces) in enumerate(zip(tables, _pieces(value), strict=True)):
            for piece in pieces:
                dead = self.dead.get((t, piece), 0) + 1
                posting = table[piece]
                if dead == len(posting):  # all dead: drop the piece
                    del table[piece]
                    self.dead.pop((t, piece), None)
                elif dead * 2 > len(posting) and len(posting) >= MIN_COMPACT:
                    folded = self.folded
                    table[piece] = array("i", [d for d in posting if folded[d]])
                    self.dead.pop((t, piece), None)
                else:
                    self.dead[t, piece] = dead

    # --- lookups ----------------------------------------------------------------------------

    def _posting(self, op: str, needle: str) -> tuple[array[int], int, bool]:
        """The posting to read for `op` (`$contains`, `$starts_with` or `$ends_with`) and a folded,
        non-empty needle; its dead entries; whether every live entry matches (no check needed)."""
        n = len(needle)
        if n <= PIECE:
            t = 0 if op == "$contains" else 1 if op == "$starts_with" else 2
            table = (self.inner, self.first, self.last)[t]
            posting = table.get(needle)
            if posting is None:
                return _EMPTY, 0, True
            return posting, self.dead.get((t, needle), 0), True
        # The shortest posting of the needle's pieces: every match is in each of them.
        options: list[tuple[int, str]] = [(0, needle[i : i + PIECE]) for i in range(n - PIECE + 1)]
        if op == "$starts_with":
            options.append((1, needle[:PIECE]))
        elif op == "$ends_with":
            options.append((2, needle[-PIECE:]))
        tables = (self.inner, self.first, self.last)
        best: array[int] | None = None
        best_dead = 0
        for t, piece in options:
            posting = tables[t].get(piece)
            if posting is None:
                return _EMPTY, 0, True
            if best is None or len(posting) < len(best):
                best, best_dead = posting, self.dead.get((t, piece), 0)
        assert best is not None
        return best, best_dead, False

    def _checks(self, op: str, needle: str, posting: array[int]) -> Iterator[bool]:
        values = map(self.folded.__getitem__, posting)
        if op == "$contains":
            return map(contains, values, repeat(needle))
        if op == "$starts_with":
            return map(str.startswith, values, repeat(needle))
        return map(str.endswith, values, repeat(needle))

    def count(self, op: str, needle: str) -> int:
        """How many records match `op` (a positive text operator) with a folded, non-empty needle."""
        return self.count_or_docs(op, needle)[0]

    def count_or_docs(self, op: str, needle: str) -> tuple[int, list[int] | None]:
        """The count, and the matching documents too when counting had to check candidates
        (listing them then costs little more; checking them again would cost as much again)."""
        posting, dead, exact = self._posting(op, needle)
        if exact:
            return len(posting) - dead, None
        # A dead document's folded value is "": no check passes on it.
        docs = list(compress(posting, self._checks(op, needle, posting)))
        return len(docs), docs

    def ids_of(self, docs: list[int]) -> list[str]:
        return list(map(self.docs.__getitem__, docs))

    def ids(self, op: str, needle: str) -> list[str]:
        """The ids of the records that match, in no particular order."""
        posting, dead, exact = self._posting(op, needle)
        docs = map(self.docs.__getitem__, posting)
        if exact and not dead:
            return list(docs)
        if exact:
            return [r for r in docs if r]
        return list(compress(docs, self._checks(op, needle, posting)))


_EMPTY: array[int] = array("i")
