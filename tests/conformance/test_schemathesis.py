"""schemathesis proves the mock (or the server at KANTOS_BASE_URL) conforms to openapi.yaml.

Every operation of the contract, every check schemathesis has, configured by schemathesis.toml
(the same file `st run` reads; see kantos_conformance.py for the environment overrides):

- `test_operation_conforms`: per operation, the examples, coverage and fuzzing phases, valid and
  invalid input, with status codes, content types, response schemas and headers, negative data
  rejection, positive data acceptance, unsupported methods (405 with `Allow`), missing and wrong
  API keys (401) and response time checked on every response;
- `TestKantosWorkflows`: the stateful phase, following openapi.yaml's links - create a record,
  read it, update it, delete it, and find it gone (use after free, resource availability);
- `test_every_operation_reached_with_valid_and_invalid_input`: the budget was enough to get a
  2xx and a rejected invalid request from every operation, so nothing passed vacuously.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from kantos_conformance import BASE_URL, STATS, load_schema, new_app

# In process, one app serves the per-operation tests in order (as `st run` would), and another
# serves the stateful phase.
schema = load_schema(None if BASE_URL else new_app())
STATEFUL_APP = None if BASE_URL else new_app()
stateful_schema = load_schema(STATEFUL_APP)

# Each stateful scenario starts from the fixtures, so the same scenario always meets the same
# state (Hypothesis replays scenarios and rejects a server whose answers drift between them).
# In process the app is reset. A live mock is reset through its control API, in a tenant of
# its own (`X-Mock-Tenant`: an isolated copy of the fixture state), so the scenarios do not
# disturb the per-operation tests; a server without that API is used as it is.
TENANT = "kantos-conformance-stateful"
_live_reset: list[bool] = []


def reset_live_tenant() -> None:
    if _live_reset and not _live_reset[0]:
        return
    try:
        response = httpx.post(f"{BASE_URL}/_mock/reset", headers={"X-Mock-Tenant": TENANT}, timeout=10)
        ok = response.status_code == 200
    except httpx.HTTPError:
        ok = False
    if not _live_reset:
        _live_reset.append(ok)


@schema.parametrize()
def test_operation_conforms(case: schemathesis.Case) -> None:
    response = case.call()
    STATS.record(case, response.status_code)
    case.validate_response(response, transport_kwargs={})


class KantosWorkflows(stateful_schema.as_state_machine()):  # type: ignore[misc]
    def setup(self) -> None:
        super().setup()
        if STATEFUL_APP is not None:
            getattr(STATEFUL_APP.state, "registry", STATEFUL_APP.state.tenants).reset(None)
        else:
            reset_live_tenant()

    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
        return {} if STATEFUL_APP is not None else {"headers": {"X-Mock-Tenant": TENANT}}

    def after_call(self, response: schemathesis.Response, case: schemathesis.Case) -> None:
        super().after_call(response, case)
        STATS.record(case, response.status_code)


TestKantosWorkflows = KantosWorkflows.TestCase
# The stateful phase's budget from schemathesis.toml (scenarios, steps per scenario,
# derandomized), with the phases and health checks schemathesis' own runner uses for it.
TestKantosWorkflows.settings = hypothesis.settings(
    stateful_schema.config.get_hypothesis_settings(phase="stateful"),
    phases=[hypothesis.Phase.generate],
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)


def _operations() -> list[str]:
    return sorted(op.ok().label for op in schema.get_all_operations())


def test_every_operation_reached_with_valid_and_invalid_input(request: pytest.FixtureRequest) -> None:
    """Each operation answered some valid request with 2xx and rejected some invalid one with 4xx."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("statistics are per process; run without -n to check reachability")
    ran = {item.name for item in request.session.items}
    wanted = [label for label in _operations() if f"test_operation_conforms[{label}]" in ran]
    if not wanted:
        pytest.skip("the per-operation tests were deselected")
    problems = []
    for label in wanted:
        positive = STATS.statuses(label, "positive")
        negative = STATS.statuses(label, "negative")
        if not any(200 <= s < 300 for s in positive):
            problems.append(f"{label}: no valid request got a 2xx (positive statuses: {dict(positive)})")
        if not any(400 <= s < 500 for s in negative):
            problems.append(f"{label}: no invalid request was rejected (negative statuses: {dict(negative)})")
    assert not problems, "the budget did not reach every operation:\n" + "\n".join(problems)
