"""Unit tests of mockserver.domain's value rules (no HTTP): slugs, value checks, formats, clock, ids."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from unittest.mock import patch

import pytest

from mockserver.domain import clock as clock_module
from mockserver.domain.clock import Clock, format_timestamp, from_us, to_us
from mockserver.domain.ids import IdSource
from mockserver.domain.schema import (
    EMPTY,
    FieldDef,
    FieldType,
    check_value,
    is_email,
    is_http_url,
    is_number,
    is_phone,
    parse_date,
    parse_datetime_us,
    parse_instant_operand,
    slugify,
)

US = 1_000_000

# --- slugs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        pytest.param("Full Name", "full_name", id="space"),
        pytest.param("Created At", "created_at", id="reserved-system-name"),
        pytest.param("LinkedIn", "linkedin", id="camel-case"),
        pytest.param("HQ Country", "hq_country", id="acronym"),
        pytest.param("Deal Value ($)", "deal_value", id="symbols-run"),
        pytest.param("a.b-c/d", "a_b_c_d", id="each-separator"),
        pytest.param("Tax -- ID", "tax_id", id="run-of-separators-is-one-underscore"),
        pytest.param("Q3 2024 Target", "q3_2024_target", id="digits"),
        pytest.param("already_snake", "already_snake", id="underscore-is-not-alphanumeric-but-stays-single"),
        pytest.param("ID", "id", id="upper-case"),
    ],
)
def test_slugify_lowercases_and_turns_runs_of_non_alphanumerics_into_one_underscore(
    name: str, slug: str
) -> None:
    assert slugify(name) == slug


def test_slugify_only_yields_lowercase_ascii_alphanumerics_and_underscores() -> None:
    for name in ["Über Größe", "日本語 name", "a\tb\nc", "x__y", "Ünïcödé Fïeld"]:
        assert re.fullmatch(r"[a-z0-9_]*", slugify(name)), name
        assert "__" not in slugify(name), name


# --- check_value -----------------------------------------------------------------------------


def field(ftype: FieldType, **options: Any) -> FieldDef:
    return FieldDef(id="fld_t", name="T", slug="t", type=ftype, options=options or None)


STATUS = field(FieldType.STATUS, stages=["new", "active", "churned"])
DROPDOWN = field(FieldType.DROPDOWN, choices=["Enterprise", "SMB"])
MULTI = field(FieldType.MULTI_SELECT, choices=["vip", "beta"])
REFERENCE = field(FieldType.REFERENCE, object_id="obj_companies")

RECORDS = {("obj_companies", "rec_company"), ("obj_contacts", "rec_contact")}
USERS = {"user_alice"}


def check(f: FieldDef, value: Any) -> tuple[Any, str | None]:
    return check_value(f, value, lambda o, r: (o, r) in RECORDS, lambda u: u in USERS)


ACCEPTED = [
    pytest.param(field(FieldType.TEXT), "x" * 255, id="text-255"),
    pytest.param(field(FieldType.TEXT), "ß" * 255, id="text-255-non-ascii"),
    pytest.param(field(FieldType.LONG_TEXT), "y" * 100_000, id="long-text-100k"),
    pytest.param(field(FieldType.NUMBER), 3, id="number-int"),
    pytest.param(field(FieldType.NUMBER), -0.5, id="number-float"),
    pytest.param(field(FieldType.CURRENCY), 10_000.99, id="currency"),
    pytest.param(field(FieldType.EMAIL), "a@b", id="email-dotless-domain"),
    pytest.param(field(FieldType.EMAIL), "Jane.Doe+x@Example.COM", id="email-mixed-case"),
    pytest.param(field(FieldType.PHONE), "(555) 010-6070", id="phone"),
    pytest.param(field(FieldType.PHONE), "+49 30 90182095", id="phone-international"),
    pytest.param(field(FieldType.URL), "https://example.com", id="url"),
    pytest.param(field(FieldType.IMAGE), "http://img.example/x.png", id="image"),
    pytest.param(field(FieldType.DATE), "2000-02-29", id="date-leap-century"),
    pytest.param(field(FieldType.DATETIME), "2024-01-15T10:30:00Z", id="datetime-z"),
    pytest.param(field(FieldType.DATETIME), "2024-01-15T10:30:00.123456+01:00", id="datetime-micro-offset"),
    pytest.param(field(FieldType.BOOLEAN), False, id="boolean-false"),
    pytest.param(STATUS, "active", id="status"),
    pytest.param(DROPDOWN, "SMB", id="dropdown"),
    pytest.param(MULTI, ["beta", "vip"], id="multi-select"),
    pytest.param(REFERENCE, "rec_company", id="reference"),
    pytest.param(field(FieldType.USER), "user_alice", id="user"),
]


@pytest.mark.parametrize(("f", "value"), ACCEPTED)
def test_check_value_accepts_a_valid_value_and_stores_it_unchanged(f: FieldDef, value: Any) -> None:
    stored, message = check(f, value)
    assert message is None
    assert stored == value


REJECTED = [
    pytest.param(field(FieldType.TEXT), "x" * 256, id="text-256"),
    pytest.param(field(FieldType.TEXT), 1, id="text-number"),
    pytest.param(field(FieldType.LONG_TEXT), ["x"], id="long-text-array"),
    pytest.param(field(FieldType.NUMBER), math.nan, id="number-nan"),
    pytest.param(field(FieldType.NUMBER), math.inf, id="number-inf"),
    pytest.param(field(FieldType.NUMBER), True, id="number-bool"),
    pytest.param(field(FieldType.CURRENCY), "12", id="currency-string"),
    pytest.param(field(FieldType.CURRENCY), -math.inf, id="currency-minus-inf"),
    pytest.param(field(FieldType.EMAIL), "a@", id="email-no-domain"),
    pytest.param(field(FieldType.EMAIL), "a b@c.d", id="email-space"),
    pytest.param(field(FieldType.PHONE), "12345 6", id="phone-6-digits"),
    pytest.param(field(FieldType.PHONE), "1" * 16, id="phone-16-digits"),
    pytest.param(field(FieldType.PHONE), "555#0100", id="phone-hash"),
    pytest.param(field(FieldType.URL), "mailto:a@b.c", id="url-mailto"),
    pytest.param(field(FieldType.URL), "https://exa mple.com", id="url-space"),
    pytest.param(field(FieldType.IMAGE), "ftp://img.example/x.png", id="image-ftp"),
    pytest.param(field(FieldType.DATE), "2100-02-29", id="date-not-leap-century"),
    pytest.param(field(FieldType.DATE), "2024-04-31", id="date-april-31"),
    pytest.param(field(FieldType.DATETIME), "2024-01-15T10:30:00", id="datetime-naive"),
    pytest.param(field(FieldType.DATETIME), "2024-01-15T10:30:00+0100", id="datetime-offset-no-colon"),
    pytest.param(field(FieldType.DATETIME), "2024-02-30T10:30:00Z", id="datetime-impossible"),
    pytest.param(field(FieldType.BOOLEAN), "false", id="boolean-string"),
    pytest.param(STATUS, "ACTIVE", id="status-wrong-case"),
    pytest.param(STATUS, "lost", id="status-not-a-stage"),
    pytest.param(DROPDOWN, "smb", id="dropdown-wrong-case"),
    pytest.param(MULTI, "vip", id="multi-select-string"),
    pytest.param(MULTI, ["vip", "gold"], id="multi-select-unknown"),
    pytest.param(REFERENCE, "rec_contact", id="reference-other-object"),
    pytest.param(REFERENCE, "rec_missing", id="reference-missing"),
    pytest.param(field(FieldType.USER), "user_bob", id="user-unknown"),
]


@pytest.mark.parametrize(("f", "value"), REJECTED)
def test_check_value_rejects_an_invalid_value_with_a_message(f: FieldDef, value: Any) -> None:
    stored, message = check(f, value)
    assert stored is None
    assert isinstance(message, str) and message


@pytest.mark.parametrize("ftype", list(FieldType), ids=str)
def test_null_empties_every_type(ftype: FieldType) -> None:
    f = {FieldType.STATUS: STATUS, FieldType.DROPDOWN: DROPDOWN, FieldType.MULTI_SELECT: MULTI}.get(
        ftype, field(ftype)
    )
    assert check(f, None) == (EMPTY, None)


@pytest.mark.parametrize(
    "ftype",
    [
        FieldType.TEXT,
        FieldType.LONG_TEXT,
        FieldType.EMAIL,
        FieldType.PHONE,
        FieldType.URL,
        FieldType.IMAGE,
        FieldType.STATUS,
        FieldType.DROPDOWN,
        FieldType.REFERENCE,
        FieldType.USER,
    ],
    ids=str,
)
def test_empty_string_empties_string_valued_types(ftype: FieldType) -> None:
    f = {FieldType.STATUS: STATUS, FieldType.DROPDOWN: DROPDOWN}.get(ftype, field(ftype))
    assert check(f, "") == (EMPTY, None)


@pytest.mark.parametrize(
    "ftype", [FieldType.NUMBER, FieldType.CURRENCY, FieldType.BOOLEAN, FieldType.DATE], ids=str
)
def test_empty_string_is_invalid_for_number_currency_boolean_and_date(ftype: FieldType) -> None:
    stored, message = check(field(ftype), "")
    assert stored is None and message


def test_empty_array_empties_a_multi_select() -> None:
    assert check(MULTI, []) == (EMPTY, None)


def test_reference_check_asks_about_the_target_object_of_the_field() -> None:
    asked: list[tuple[str, str]] = []

    def record_exists(object_id: str, record_id: str) -> bool:
        asked.append((object_id, record_id))
        return True

    assert check_value(REFERENCE, "rec_x", record_exists, lambda u: False) == ("rec_x", None)
    assert asked == [("obj_companies", "rec_x")]


# --- format helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("jane@example.com", True),
        ("jane@localhost", True),
        ("o'brien@example.ie", True),
        ("x@sub-domain.example", True),
        ("jane", False),
        ("jane@@example.com", False),
        ("jane@-example.com", False),
        ("jane@example..com", False),
        ("", False),
    ],
)
def test_is_email_follows_whatwg(value: str, ok: bool) -> None:
    assert is_email(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("1234567", True),
        ("+1 (555) 987-6543", True),
        ("1.2.3.4.5.6.7", True),
        ("123456789012345", True),
        ("123456", False),
        ("1234567890123456", False),
        ("+44 20 7946 069x", False),
        ("", False),
    ],
)
def test_is_phone_counts_7_to_15_digits_among_allowed_characters(value: str, ok: bool) -> None:
    assert is_phone(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("https://example.com", True),
        ("HTTP://EXAMPLE.COM/x", True),
        ("https://example.com:8443/p?q#f", True),
        ("https://example.com:99999", False),
        ("https:///path", False),
        ("ws://example.com", False),
        ("//example.com", False),
        ("", False),
    ],
)
def test_is_http_url_needs_http_or_https_and_a_host(value: str, ok: bool) -> None:
    assert is_http_url(value) is ok


def test_parse_date_returns_the_calendar_date_or_none() -> None:
    assert parse_date("2024-02-29") == datetime(2024, 2, 29).date()
    for bad in ("2024-02-30", "20240229", "2024-2-29", " 2024-02-29", "2024-02-29 "):
        assert parse_date(bad) is None, bad


def test_parse_datetime_us_honours_the_offset() -> None:
    utc = parse_datetime_us("2024-01-15T10:30:00Z")
    assert utc == to_us(datetime(2024, 1, 15, 10, 30, tzinfo=UTC))
    assert parse_datetime_us("2024-01-15T12:30:00+02:00") == utc
    assert parse_datetime_us("2024-01-15T10:30Z") == utc
    assert parse_datetime_us("2024-01-15T10:30:00.250Z") == utc + US // 4
    assert parse_datetime_us("2024-01-15T10:30:00") is None
    assert parse_datetime_us("2024-01-15") is None


def test_parse_instant_operand_reads_a_date_as_its_midnight_utc() -> None:
    assert parse_instant_operand("2024-01-01") == to_us(datetime(2024, 1, 1, tzinfo=UTC))
    assert parse_instant_operand("2024-01-01T00:00:00-01:00") == to_us(datetime(2024, 1, 1, 1, tzinfo=UTC))
    assert parse_instant_operand("2024-01-01T00:00:00") is None
    assert parse_instant_operand("01/01/2024") is None


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (0, True),
        (-1.5, True),
        (10**20, True),
        (True, False),
        (math.nan, False),
        (math.inf, False),
        ("1", False),
    ],
)
def test_is_number_means_a_finite_json_number(value: Any, ok: bool) -> None:
    assert is_number(value) is ok


@pytest.mark.parametrize(
    ("when", "text"),
    [
        pytest.param(datetime(2024, 1, 15, 10, 30, tzinfo=UTC), "2024-01-15T10:30:00Z", id="whole-second"),
        pytest.param(
            datetime(2024, 1, 15, 10, 30, 0, 5000, tzinfo=UTC), "2024-01-15T10:30:00.005Z", id="millis"
        ),
        pytest.param(
            datetime(2024, 1, 15, 10, 30, 0, 123456, tzinfo=UTC), "2024-01-15T10:30:00.123456Z", id="micros"
        ),
        pytest.param(
            datetime(2024, 1, 15, 12, 30, tzinfo=timezone(timedelta(hours=2))),
            "2024-01-15T10:30:00Z",
            id="offset-converted-to-utc",
        ),
    ],
)
def test_format_timestamp_is_utc_with_a_fraction_only_when_needed(when: datetime, text: str) -> None:
    assert format_timestamp(to_us(when)) == text


def test_to_us_and_from_us_round_trip_and_naive_means_utc() -> None:
    when = datetime(2023, 7, 1, 8, 9, 10, 111213, tzinfo=UTC)
    assert from_us(to_us(when)) == when
    assert to_us(datetime(2023, 7, 1, 8, 9, 10)) == to_us(datetime(2023, 7, 1, 8, 9, 10, tzinfo=UTC))
    assert to_us(datetime(1970, 1, 1, tzinfo=UTC)) == 0


# --- clock -----------------------------------------------------------------------------------


START = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A fake wall clock (microseconds) the Clock reads; tests move it by hand."""
    now = [to_us(datetime(2025, 1, 1, tzinfo=UTC))]
    monkeypatch.setattr(clock_module.Clock, "_wall_us", staticmethod(lambda: now[0]))
    return now


def test_clock_follows_the_wall_clock_by_default(wall: list[int]) -> None:
    c = Clock()
    assert c.now_us() == wall[0]
    wall[0] += 7 * US
    assert c.now_us() == wall[0]
    assert not c.frozen


def test_real_clock_is_close_to_system_time() -> None:
    assert abs((Clock().now() - datetime.now(UTC)).total_seconds()) < 5


def test_frozen_clock_stands_still_while_the_wall_clock_moves(wall: list[int]) -> None:
    c = Clock()
    c.freeze(True)
    frozen_at = c.now_us()
    wall[0] += 60 * US
    assert c.now_us() == frozen_at
    assert c.frozen


def test_unfreezing_resumes_from_the_frozen_time_without_a_jump(wall: list[int]) -> None:
    c = Clock()
    c.freeze(True)
    frozen_at = c.now_us()
    wall[0] += 3600 * US
    c.freeze(False)
    assert c.now_us() == frozen_at
    wall[0] += 2 * US
    assert c.now_us() == frozen_at + 2 * US


def test_set_moves_the_clock_running_or_frozen(wall: list[int]) -> None:
    c = Clock()
    c.set(START)
    assert c.now() == START
    wall[0] += 5 * US
    assert c.now() == START + timedelta(seconds=5)
    c.freeze(True)
    c.set(START)
    wall[0] += 5 * US
    assert c.now() == START


def test_advance_adds_seconds_including_fractions(wall: list[int]) -> None:
    c = Clock(start=START, frozen=True)
    c.advance(90)
    assert c.now() == START + timedelta(seconds=90)
    c.advance(0.25)
    assert c.now() == START + timedelta(seconds=90.25)
    c.freeze(False)
    c.advance(10)
    assert c.now() == START + timedelta(seconds=100.25)


def test_clock_start_and_frozen_arguments(wall: list[int]) -> None:
    c = Clock(start=START, frozen=True)
    wall[0] += 999 * US
    assert c.now() == START


def test_reset_returns_to_the_running_wall_clock(wall: list[int]) -> None:
    c = Clock(start=START, frozen=True)
    c.reset()
    assert not c.frozen
    assert c.now_us() == wall[0]


# --- ids -------------------------------------------------------------------------------------


def take(source: IdSource, n: int = 5, prefix: str = "rec_") -> list[str]:
    return [source.new(prefix) for _ in range(n)]


def test_ids_have_the_prefix_and_16_hex_digits() -> None:
    for value in take(IdSource(3)) + take(IdSource(), prefix="fld_"):
        assert re.fullmatch(r"(rec|fld)_[0-9a-f]{16}", value), value


def test_unseeded_ids_keep_16_digits_when_the_draw_is_small() -> None:
    source = IdSource()
    with patch.object(source._rng, "getrandbits", return_value=0xABC):
        assert source.new("rec_") == "rec_0000000000000abc"


def test_same_seed_gives_the_same_id_sequence() -> None:
    assert take(IdSource(42)) == take(IdSource(42))


def test_different_seeds_give_different_ids() -> None:
    assert set(take(IdSource(42))).isdisjoint(take(IdSource(43)))


def test_unseeded_sources_do_not_repeat_each_other() -> None:
    assert set(take(IdSource())).isdisjoint(take(IdSource()))


def test_ids_in_a_sequence_are_distinct() -> None:
    ids = take(IdSource(5), n=1000)
    assert len(set(ids)) == len(ids)


def test_reset_restarts_a_seeded_sequence() -> None:
    source = IdSource(9)
    first = take(source)
    source.reset()
    assert take(source) == first
