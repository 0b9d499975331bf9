"""Injectable id source: random by default, reproducible with a seed."""

from __future__ import annotations

import random

_ALPHABET = "0123456789abcdef"


class IdSource:
    """Makes `rec_`, `fld_` and other prefixed ids. A seed gives the same sequence every run."""

    def __init__(self, seed: int | None = None) -> None:
        self._seed = seed
        self._rng = random.Random(seed) if seed is not None else random.SystemRandom()

    def new(self, prefix: str, length: int = 16) -> str:
        if self._seed is None:
            # One draw from the OS for the whole id: a draw per character (16 reads of urandom)
            # was a tenth of what a POST cost under load (py-spy).
            return f"{prefix}{self._rng.getrandbits(4 * length):0{length}x}"
        # Seeded: the same sequence as ever, so a seed still gives the ids it always gave.
        return prefix + "".join(self._rng.choice(_ALPHABET) for _ in range(length))

    def reset(self) -> None:
        if self._seed is not None:
            self._rng = random.Random(self._seed)
