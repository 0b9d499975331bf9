"""The `/api` path's query-string parser gives exactly what `urllib.parse.parse_qsl` gives."""

from __future__ import annotations

from urllib.parse import parse_qsl

from hypothesis import example, given
from hypothesis import strategies as st

from mockserver.http.api import query_items

# The characters that mean something to the parser, hex digits for escapes, and a few others
# (a query string arrives as bytes decoded as latin-1, so any of the first 256 code points).
QS = st.text(alphabet=st.sampled_from([*"&=+%;?aZ09fF2C7E", "é", "\x00", " ", "\xff"]), max_size=40)


@given(QS)
@example("object_id=obj_contacts&filters=%7B%22name%22%3A%7B%22%24contains%22%3A%22an+n%22%7D%7D")
@example("a&&b=&=c&d==e&%zz=%E9%C3%A9&x=%")
def test_query_items_is_parse_qsl_with_blank_values(qs: str) -> None:
    assert query_items(qs) == parse_qsl(qs, keep_blank_values=True)
