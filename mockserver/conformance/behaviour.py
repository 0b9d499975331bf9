"""The behaviour suite: filters, sorting and paging against the oracle, record semantics, errors."""

from __future__ import annotations

from collections.abc import Callable

from .errorcases import ErrorChecks
from .formats import FormatChecks
from .protocol import ProtocolChecks
from .queries import QueryChecks
from .records import RecordChecks


class Behaviour(QueryChecks, RecordChecks, ProtocolChecks, FormatChecks, ErrorChecks):
    """Every behaviour check, run in order on one prepared scratch area."""

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        """(phase name, step) in the order they run; the report times each phase."""
        return [
            ("filters", self.run_filters),
            ("sorting", self.run_sorting),
            ("paging", self.run_paging),
            ("records", self.run_records),
            ("writes", self.run_writes),
            ("formats", self.run_formats),
            ("errors", self.run_errors),
            ("protocol", self.run_protocol),
        ]
