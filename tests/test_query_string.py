"""The `/api` path's query-string parser gives exactly what `urllib.parse.parse_qsl` gives."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote

from hypothesis import example, given
from hypothesis import strategies as st

from mockserver.http.api import query_items, unquote_value

# The characters that mean something to the parser, hex digits for escapes, and a few others
# (a query string arrives as bytes decoded as latin-1, so any of the first 256 code points).
QS = st.text(alphabet=st.sampled_from([*"&=+%;?aZ09fF2C7E", "é", "\x00", " ", "\xff"]), max_size=40)
# What the C-level decoding in `unquote_value` must not misread: backslashes and the letters of
# Python's escapes (\x, \u, \N{...}), and escapes of every kind: ASCII, UTF-8, broken, cut short.
ENCODED = st.lists(
    st.sampled_from(["%", "%4", "%41", "%5C", "%5c", "%7F", "%80", "%C3%A9", "%E2%82%AC", "%F0", "%zz"])
    | st.text(alphabet=st.sampled_from([*"\\xuUN{}0aF8%+", "é", "\x00"]), max_size=4),
    max_size=12,
).map("".join)


@given(QS)
@example("object_id=obj_contacts&filters=%7B%22name%22%3A%7B%22%24contains%22%3A%22an+n%22%7D%7D")
@example("a&&b=&=c&d==e&%zz=%E9%C3%A9&x=%")
def test_query_items_is_parse_qsl_with_blank_values(qs: str) -> None:
    assert query_items(qs) == parse_qsl(qs, keep_blank_values=True)


@given(ENCODED | st.text(max_size=30))
@example("\\x41%41")
@example("%5Cx41")
@example("%C3%28")
@example("a%E9b")
def test_unquote_value_is_unquote(value: str) -> None:
    assert unquote_value(value) == unquote(value)
