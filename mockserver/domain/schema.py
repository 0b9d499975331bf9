"""Objects, fields and field types: slugs, options, and what a value of each type must be."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from .clock import to_us
from .errors import describe


class FieldType(StrEnum):
    TEXT = "text"
    LONG_TEXT = "long_text"
    NUMBER = "number"
    CURRENCY = "currency"
    EMAIL = "email"
    PHONE = "phone"
    URL = "url"
    IMAGE = "image"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"
    STATUS = "status"
    DROPDOWN = "dropdown"
    MULTI_SELECT = "multi_select"
    REFERENCE = "reference"
    USER = "user"


NUMERIC_TYPES = frozenset({FieldType.NUMBER, FieldType.CURRENCY})
#: Types whose value is a string and for which `""` means "empty" on writes.
STRING_EMPTYABLE = frozenset(
    {
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
    }
)
#: Types whose (non-empty) value is a string.
_STRING_TYPES = STRING_EMPTYABLE | {FieldType.DATE, FieldType.DATETIME}
#: `unique` makes no sense on these (CONTRACT.md, "Schema writes").
NOT_UNIQUE_TYPES = frozenset({FieldType.MULTI_SELECT, FieldType.BOOLEAN, FieldType.LONG_TEXT})
SYSTEM_FIELDS = ("id", "created_at", "updated_at", "created_by")
RESERVED_SLUGS = frozenset({*SYSTEM_FIELDS, "object_id"})
TEXT_MAX_CHARS = 255

_SLUG_RUN = re.compile(r"[^a-z0-9]+")


def slugify(name: str) -> str:
    """The name lowercased, runs of non-alphanumerics turned into `_`, trimmed of `_`."""
    return _SLUG_RUN.sub("_", name.lower()).strip("_")


@dataclass(slots=True)
class FieldDef:
    id: str
    name: str
    slug: str
    type: FieldType
    required: bool = False
    unique: bool = False
    position: int = 0
    options: dict[str, Any] | None = None
    default_value: Any = None
    has_default: bool = False
    #: status / dropdown / multi_select option names, in order (empty for other types).
    choices: tuple[str, ...] = ()
    #: option name -> its position: the sort order of status and dropdown values.
    choice_position: dict[str, int] = field(default_factory=dict)
    #: lowercased option name -> the positions of the options it folds to (filters fold case).
    choice_positions_folded: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        opts = self.options or {}
        if self.type == FieldType.STATUS:
            self.choices = tuple(opts.get("stages") or ())
        elif self.type in (FieldType.DROPDOWN, FieldType.MULTI_SELECT):
            self.choices = tuple(opts.get("choices") or ())
        self.choice_position = {}
        folded: dict[str, list[int]] = {}
        for i, choice in enumerate(self.choices):
            self.choice_position.setdefault(choice, i)
            folded.setdefault(choice.lower(), []).append(i)
        self.choice_positions_folded = {k: tuple(v) for k, v in folded.items()}

    @property
    def target_object(self) -> str | None:
        return (self.options or {}).get("object_id") if self.type == FieldType.REFERENCE else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "slug": self.slug,
            "type": str(self.type),
            "required": self.required,
            "unique": self.unique,
            "position": self.position,
        }
        if self.options is not None:
            out["options"] = self.options
        if self.has_default:
            out["default_value"] = self.default_value
        return out


@dataclass(slots=True)
class ObjectDef:
    id: str
    name: str
    slug: str
    icon: str | None
    fields: list[FieldDef] = field(default_factory=list)
    by_slug: dict[str, FieldDef] = field(default_factory=dict)
    #: `records.key_spec()`'s answers by slug, each valid while its field is the one in `by_slug`.
    key_specs: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def add_field(self, f: FieldDef) -> None:
        self.fields.append(f)
        self.by_slug[f.slug] = f

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "slug": self.slug,
            "icon": self.icon,
            "field_count": len(self.fields),
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.summary(), "fields": [f.to_json() for f in self.fields]}


# --- value formats ---------------------------------------------------------------------------

# WHATWG "valid email address": no dot needed in the domain.
_EMAIL = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)
# Only digits and "+ ( ) - . space", with 7 to 15 digits in all.
_PHONE = re.compile(r"^(?=(?:[^0-9]*[0-9]){7,15}[^0-9]*\Z)[0-9+()\-. ]+$")
# http(s), optional userinfo, a host name or [IPv6], an optional port, then no white space.
_HTTP_URL = re.compile(
    r"^[hH][tT][tT][pP][sS]?://(?:[^\s/?#@]*@)?(?:[^\s/?#@:\[\]]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?(?:[/?#]\S*)?$"
)
_UTC_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_DATETIME = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6}))?)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)


def is_email(value: str) -> bool:
    return _EMAIL.fullmatch(value) is not None


def is_phone(value: str) -> bool:
    return _PHONE.fullmatch(value) is not None


def is_http_url(value: str) -> bool:
    m = _HTTP_URL.fullmatch(value)
    return m is not None and (m.group(1) is None or int(m.group(1)) <= 65535)


def parse_date(value: str) -> date | None:
    """A real calendar date written `YYYY-MM-DD`, else None."""
    if not _DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def parse_datetime_us(value: str) -> int | None:
    """Microseconds since the epoch for `YYYY-MM-DDTHH:MM[:SS[.ffffff]]` with `Z` or `±HH:MM`."""
    us = parse_utc_seconds(value)
    if us is not None:
        return us
    if not _DATETIME.fullmatch(value):
        return None
    try:
        return to_us(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def parse_utc_seconds(value: str) -> int | None:
    """`parse_datetime_us` of the common `2024-01-15T10:30:00Z` (as `format_timestamp` writes a
    whole second), read without building a datetime; None for any other form, valid or not.

    Loading reads one or two a record, so this is table lookups: each day met so far (its
    midnight), and the hours, minutes and seconds, with only ASCII digits in range as keys."""
    if len(value) != 20 or value[19] != "Z" or value[10] != "T" or value[13] != ":" or value[16] != ":":
        return None
    day = _DAY_US.get(value[:10])
    if day is None:
        day = _day_us(value[:10])
        if day is None:
            return None
    hour = _HOUR_US.get(value[11:13])
    minute = _MINUTE_US.get(value[14:16])
    second = _SECOND_US.get(value[17:19])
    if hour is None or minute is None or second is None:
        return None
    return day + hour + minute + second


_TWO_DIGITS = {f"{i:02d}": i for i in range(60)}
_HOUR_US = {text: i * 3_600_000_000 for text, i in _TWO_DIGITS.items() if i < 24}
_MINUTE_US = {text: i * 60_000_000 for text, i in _TWO_DIGITS.items()}
_SECOND_US = {text: i * 1_000_000 for text, i in _TWO_DIGITS.items()}
#: `YYYY-MM-DD` -> its midnight UTC in microseconds since the epoch, for the days met so far.
_DAY_US: dict[str, int] = {}
#: Past this many days the table starts again (a few years of days is a few hundred kB).
_DAYS_KEPT = 20_000


def _day_us(text: str) -> int | None:
    if not _UTC_DAY.fullmatch(text):
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:  # no such day
        return None
    if len(_DAY_US) >= _DAYS_KEPT:
        _DAY_US.clear()
    us = _DAY_US[text] = (day.toordinal() - _EPOCH_ORDINAL) * 86_400_000_000
    return us


def parse_instant_operand(value: str) -> int | None:
    """A filter operand for a time field: a datetime, or a date meaning its midnight UTC."""
    d = parse_date(value)
    if d is not None:
        return to_us(datetime(d.year, d.month, d.day, tzinfo=UTC))
    return parse_datetime_us(value)


def is_number(value: Any) -> bool:
    """A finite JSON number (an integer too large for a float is not)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            return False
        return True
    return isinstance(value, float) and math.isfinite(value)


def json_number(value: int | float) -> int | float:
    """The number as stored: an integer beyond 64 bits becomes the equal float, which JSON
    encoders can write back (over HTTP such numbers arrive as floats already)."""
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return float(value)
    return value


# --- write validation ------------------------------------------------------------------------

#: Sentinel: the value empties the field (it is left out of `field_values`).
EMPTY: Any = object()

# The members every write checks against, looked up once: `FieldType.X` goes through the enum's
# metaclass, about 75 ns a time (Python 3.11), five of them for a long_text value.
_TEXT, _STATUS, _DROPDOWN = FieldType.TEXT, FieldType.STATUS, FieldType.DROPDOWN
_REFERENCE, _USER = FieldType.REFERENCE, FieldType.USER
_BOOLEAN, _MULTI_SELECT = FieldType.BOOLEAN, FieldType.MULTI_SELECT


def check_value(
    f: FieldDef,
    value: Any,
    record_exists: Callable[[str, str], bool],
    user_exists: Callable[[str], bool],
) -> tuple[Any, str | None]:
    """Return (stored value or EMPTY, None), or (None, message) when the value is invalid."""
    if value is None:
        return EMPTY, None
    t = f.type
    if value == "" and isinstance(value, str):
        if t in STRING_EMPTYABLE:
            return EMPTY, None
        return None, f"expected {_expected(f)}, got an empty string"
    if isinstance(value, str) and t in _STRING_TYPES:
        return _check_string(f, value, record_exists, user_exists)
    if t in NUMERIC_TYPES:
        if is_number(value):
            return json_number(value), None
        return None, f"expected a finite number, got {describe(value)}"
    if t is _BOOLEAN:
        if isinstance(value, bool):
            return value, None
        return None, f"expected true or false, got {describe(value)}"
    if t is _MULTI_SELECT:
        return _check_multi(f, value)
    return None, f"expected {_expected(f)}, got {describe(value)}"


def _check_string(
    f: FieldDef,
    value: str,
    record_exists: Callable[[str, str], bool],
    user_exists: Callable[[str], bool],
) -> tuple[Any, str | None]:
    t = f.type
    has_format = _STRING_FORMATS.get(t)
    if has_format is not None:
        if has_format(value):
            return value, None
        return None, f"expected {_expected(f)}, got {value!r}"
    if t is _TEXT:
        if len(value) > TEXT_MAX_CHARS:
            return None, f"text is at most {TEXT_MAX_CHARS} characters, got {len(value)}"
    elif t is _STATUS or t is _DROPDOWN:
        if value not in f.choice_position:
            return None, f"expected one of {list(f.choices)}, got {value!r}"
    elif t is _REFERENCE:
        target = f.target_object or ""
        if not record_exists(target, value):
            return None, f"expected the id of an existing record of {target}, got {value!r}"
    elif t is _USER and not user_exists(value):
        return None, f"expected the id of an existing user, got {value!r}"
    return value, None


_STRING_FORMATS: dict[FieldType, Callable[[str], bool]] = {
    FieldType.EMAIL: is_email,
    FieldType.PHONE: is_phone,
    FieldType.URL: is_http_url,
    FieldType.IMAGE: is_http_url,
    FieldType.DATE: lambda v: parse_date(v) is not None,
    FieldType.DATETIME: lambda v: parse_datetime_us(v) is not None,
}


def _check_multi(f: FieldDef, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, list):
        return None, f"expected an array of {list(f.choices)}, got {describe(value)}"
    if not value:
        return EMPTY, None
    bad = [v for v in value if not isinstance(v, str) or v not in f.choices]
    if bad:
        return None, f"expected values among {list(f.choices)}, got {bad!r}"
    if len(set(value)) != len(value):
        return None, "each option may appear only once"
    return list(value), None


_EXPECTED = {
    FieldType.TEXT: f"a string of at most {TEXT_MAX_CHARS} characters",
    FieldType.LONG_TEXT: "a string",
    FieldType.NUMBER: "a finite number",
    FieldType.CURRENCY: "a finite number",
    FieldType.EMAIL: "a valid email address",
    FieldType.PHONE: "a phone number of 7-15 digits using only digits, '+', '(', ')', '-', '.' and spaces",
    FieldType.URL: "an http or https URL",
    FieldType.IMAGE: "an http or https URL",
    FieldType.DATE: "a date as YYYY-MM-DD",
    FieldType.DATETIME: "an ISO 8601 datetime with an offset, such as 2024-01-15T10:30:00Z",
    FieldType.BOOLEAN: "true or false",
    FieldType.STATUS: "one of the status's stages",
    FieldType.DROPDOWN: "one of the dropdown's choices",
    FieldType.MULTI_SELECT: "an array of the field's choices",
    FieldType.REFERENCE: "a record id",
    FieldType.USER: "a user id",
}


def _expected(f: FieldDef) -> str:
    if f.type in (FieldType.STATUS, FieldType.DROPDOWN):
        return f"one of {list(f.choices)}"
    return _EXPECTED[f.type]
