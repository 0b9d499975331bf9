"""The behaviour suite: filters, sorting and paging against the oracle, record semantics, errors."""

from __future__ import annotations

from collections.abc import Callable

from .errorcases import ErrorChecks
from .queries import QueryChecks
from .records import RecordChecks


class Behaviour(QueryChecks, RecordChecks, ErrorChecks):
    """Every behaviour check, run in order on one prepared scratch area."""

    def steps(self) -> list[Callable[[], None]]:
        return [self.run_filters, self.run_sorting, self.run_paging, self.run_records, self.run_errors]
