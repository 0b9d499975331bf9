"""The behaviour suite: every phase of checks, run in order on one prepared scratch area."""

from __future__ import annotations

from collections.abc import Callable

from .errorcases import ErrorChecks
from .formats import FormatChecks
from .protocol import ProtocolChecks
from .queries import QueryChecks
from .ratelimits import RateLimitChecks
from .records import RecordChecks
from .webhooks import WebhookChecks


class Behaviour(
    QueryChecks, RecordChecks, ProtocolChecks, FormatChecks, ErrorChecks, WebhookChecks, RateLimitChecks
):
    """Every behaviour check, run in order on one prepared scratch area."""

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        """(phase name, step) in the order they run; the report times each phase."""
        steps = [
            ("filters", self.run_filters),
            ("sorting", self.run_sorting),
            ("paging", self.run_paging),
            ("records", self.run_records),
            ("writes", self.run_writes),
            ("formats", self.run_formats),
            ("errors", self.run_errors),
            ("protocol", self.run_protocol),
        ]
        # Last: both move the mock's clock, and the limited key's 429s must not slow the rest.
        if self.options.webhooks or self.options.webhook_retries:
            steps.append(("webhooks", self.run_webhooks))
        if self.options.limited_key:
            steps.append(("rate-limits", self.run_rate_limits))
        return steps
