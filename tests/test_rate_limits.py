"""Rate limits per key and plan: headers, 429 with Retry-After, windows on the mock's clock."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from kantos_support import ADMIN_KEY, FREE_KEY, INTAKE_KEY, SERVER_KEY

from mockserver.domain.auth import PLANS

# 2030-01-01T00:00:10Z: 10 s into a minute, so a minute window ends 50 s later.
START = datetime(2030, 1, 1, 0, 0, 10, tzinfo=UTC)
START_S = int(START.timestamp())


@pytest.fixture
def frozen(client: httpx.Client) -> httpx.Client:
    client.post("/_mock/clock", json={"freeze": True, "set": START.isoformat()}).raise_for_status()
    return client


def objects(client: httpx.Client, key: str) -> httpx.Response:
    return client.get("/api/crm/objects", headers={"X-Api-Key": key})


def limit_key(client: httpx.Client, key: str, **limits: object) -> None:
    client.patch(f"/_mock/keys/{key}", json=limits).raise_for_status()


@pytest.mark.parametrize("key", [ADMIN_KEY, SERVER_KEY, FREE_KEY], ids=["admin", "server", "free"])
def test_every_api_response_carries_the_minute_window(frozen: httpx.Client, key: str) -> None:
    first, second = objects(frozen, key), objects(frozen, key)
    limit = int(first.headers["x-ratelimit-limit"])
    assert int(first.headers["x-ratelimit-remaining"]) == limit - 1
    assert int(second.headers["x-ratelimit-remaining"]) == limit - 2
    assert int(first.headers["x-ratelimit-reset"]) == START_S - START_S % 60 + 60


def test_errors_count_and_carry_the_headers_too(frozen: httpx.Client) -> None:
    missing = frozen.get("/api/crm/record/rec_nope")
    assert missing.status_code == 404
    assert missing.headers["x-ratelimit-remaining"].isdigit()


def test_free_plan_allows_100_a_minute_then_429_with_retry_after(frozen: httpx.Client) -> None:
    assert PLANS["free"][0] == 100
    statuses = [objects(frozen, FREE_KEY).status_code for _ in range(101)]
    assert statuses == [200] * 100 + [429]
    refused = objects(frozen, FREE_KEY)
    assert refused.status_code == 429
    body = refused.json()
    assert (body["code"], body["status"]) == ("RATE_LIMITED", 429)
    assert int(refused.headers["retry-after"]) == 50  # seconds left in the clock minute
    assert refused.headers["x-ratelimit-remaining"] == "0"


def test_the_next_minute_window_opens_when_the_clock_advances(frozen: httpx.Client) -> None:
    limit_key(frozen, SERVER_KEY, per_minute=2)
    assert [objects(frozen, SERVER_KEY).status_code for _ in range(3)] == [200, 200, 429]
    retry = int(objects(frozen, SERVER_KEY).headers["retry-after"])
    frozen.post("/_mock/clock", json={"advance": retry - 1}).raise_for_status()
    assert objects(frozen, SERVER_KEY).status_code == 429
    frozen.post("/_mock/clock", json={"advance": 1}).raise_for_status()
    assert objects(frozen, SERVER_KEY).status_code == 200


def test_the_day_window_binds_across_minutes_until_midnight_utc(frozen: httpx.Client) -> None:
    limit_key(frozen, SERVER_KEY, per_minute=10, per_day=3)
    ok = [objects(frozen, SERVER_KEY) for _ in range(3)]
    # The day has fewer requests left than the minute, so the headers describe the day.
    assert [r.headers["x-ratelimit-limit"] for r in ok] == ["3", "3", "3"]
    assert ok[-1].headers["x-ratelimit-remaining"] == "0"
    frozen.post("/_mock/clock", json={"advance": 120}).raise_for_status()
    refused = objects(frozen, SERVER_KEY)
    assert refused.status_code == 429
    midnight = START_S - START_S % 86_400 + 86_400
    assert int(refused.headers["retry-after"]) == midnight - (START_S + 120)
    frozen.post("/_mock/clock", json={"set": "2030-01-02T00:00:00Z"}).raise_for_status()
    assert objects(frozen, SERVER_KEY).status_code == 200


def test_401s_and_429s_use_no_quota(frozen: httpx.Client) -> None:
    limit_key(frozen, SERVER_KEY, per_minute=2)
    for _ in range(5):
        assert frozen.get("/api/crm/objects", headers={"X-Api-Key": "wrong"}).status_code == 401
    assert objects(frozen, SERVER_KEY).headers["x-ratelimit-remaining"] == "1"
    assert objects(frozen, SERVER_KEY).status_code == 200
    for _ in range(5):
        assert objects(frozen, SERVER_KEY).status_code == 429
    frozen.post("/_mock/clock", json={"advance": 60}).raise_for_status()
    after = objects(frozen, SERVER_KEY)
    assert (after.status_code, after.headers["x-ratelimit-remaining"]) == (200, "1")


def test_limits_are_per_key(frozen: httpx.Client) -> None:
    limit_key(frozen, SERVER_KEY, per_minute=1)
    assert [objects(frozen, SERVER_KEY).status_code for _ in range(2)] == [200, 429]
    assert objects(frozen, FREE_KEY).status_code == 200


def test_intake_keys_are_counted_before_their_403(frozen: httpx.Client) -> None:
    limit_key(frozen, INTAKE_KEY, per_minute=1)
    assert objects(frozen, INTAKE_KEY).status_code == 403
    assert objects(frozen, INTAKE_KEY).status_code == 429


def test_a_plan_change_sets_its_limits_and_reset_restores_the_fixture_plan(frozen: httpx.Client) -> None:
    changed = frozen.patch(f"/_mock/keys/{SERVER_KEY}", json={"plan": "free"})
    assert (changed.json()["plan"], changed.json()["per_minute"]) == ("free", 100)
    assert objects(frozen, SERVER_KEY).headers["x-ratelimit-limit"] == "100"
    frozen.post("/_mock/reset").raise_for_status()
    assert objects(frozen, SERVER_KEY).headers["x-ratelimit-limit"] == str(PLANS["professional"][0])


def test_a_tenant_has_limits_of_its_own(frozen: httpx.Client) -> None:
    limit_key(frozen, SERVER_KEY, per_minute=1)
    assert objects(frozen, SERVER_KEY).status_code == 200
    other = frozen.get("/api/crm/objects", headers={"X-Api-Key": SERVER_KEY, "X-Mock-Tenant": "other"})
    assert other.headers["x-ratelimit-limit"] == str(PLANS["professional"][0])
