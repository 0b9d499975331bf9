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
        return prefix + "".join(self._rng.choice(_ALPHABET) for _ in range(length))

    def reset(self) -> None:
        if self._seed is not None:
            self._rng = random.Random(self._seed)
