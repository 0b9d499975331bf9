"""The anonymiser on its own: kinds of fake, order independence, many values, type rules."""

from __future__ import annotations

from typing import Any

import pytest

from mockserver.anonymise import AnonymiseError, anonymise, kind_of
from mockserver.domain.schema import TEXT_MAX_CHARS, FieldType, is_email, is_http_url, is_phone

OBJECTS = [
    {
        "id": "obj_contacts",
        "slug": "contacts",
        "fields": [
            {"slug": "name", "type": "text"},
            {"slug": "code", "type": "text", "unique": True},
            {"slug": "email", "type": "email", "unique": True},
            {"slug": "phone", "type": "phone"},
            {"slug": "site", "type": "url"},
            {"slug": "photo", "type": "image"},
            {"slug": "bio", "type": "long_text"},
            {"slug": "stage", "type": "status", "options": {"stages": ["a", "b"]}},
        ],
    }
]


def _records(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"rec_{i}",
            "object_id": "obj_contacts",
            "field_values": {
                "name": f"Person {i % 97}",
                "code": f"code{i:05d}",
                "email": f"p{i}@Example.org",
                "phone": "+1 (555) 010-" + f"{i % 10_000:04d}",
                "site": f"https://example.org/{i % 50}",
                "photo": f"https://img.example.org/{i}.jpg",
                "bio": "x" * 300 + f" {i % 3}",
                "stage": "a",
            },
        }
        for i in range(n)
    ]


def test_many_one_word_values_still_get_distinct_valid_fakes() -> None:
    records = _records(3_000)
    out, changes, _ = anonymise(OBJECTS, {"obj_contacts": records}, seed=9)
    fakes = out["obj_contacts"]
    for slug in ("code", "email", "photo"):
        values = [r["field_values"][slug] for r in fakes]
        assert len({v.lower() for v in values}) == len(values) == 3_000, slug
    originals = {str(v).lower() for r in records for k, v in r["field_values"].items() if k != "stage"}
    for r in fakes:
        v = r["field_values"]
        assert len(v["code"]) <= TEXT_MAX_CHARS and len(v["name"]) <= TEXT_MAX_CHARS
        assert is_email(v["email"]) and is_phone(v["phone"])
        assert is_http_url(v["site"]) and is_http_url(v["photo"])
        assert v["stage"] == "a"
        assert not {str(x).lower() for k, x in v.items() if k != "stage"} & originals
    assert {c.slug for c in changes} == {"name", "code", "email", "phone", "site", "photo", "bio"}


def test_fakes_do_not_depend_on_record_order_or_on_other_records() -> None:
    records = _records(200)
    a, _, _ = anonymise(OBJECTS, {"obj_contacts": records}, seed=3)
    b, _, _ = anonymise(OBJECTS, {"obj_contacts": records[::-1]}, seed=3)
    by_id = {r["id"]: r for r in b["obj_contacts"]}
    assert all(r == by_id[r["id"]] for r in a["obj_contacts"])
    c, _, _ = anonymise(OBJECTS, {"obj_contacts": records}, seed=4)
    assert a != c


def test_email_spellings_become_one_lowercase_address() -> None:
    records = [
        {"id": f"r{i}", "object_id": "obj_contacts", "field_values": {"email": e}}
        for i, e in enumerate(["Ann@X.org", "ann@x.org", "bob@x.org"])
    ]
    out, _, _ = anonymise(OBJECTS, {"obj_contacts": records}, seed=1)
    emails = [r["field_values"]["email"] for r in out["obj_contacts"]]
    assert emails[0] == emails[1] == emails[0].lower() != emails[2]


@pytest.mark.parametrize(
    ("object_slug", "slug", "ftype", "kind"),
    [
        ("contacts", "name", FieldType.TEXT, "name"),
        ("companies", "name", FieldType.TEXT, "company"),
        ("deals", "name", FieldType.TEXT, "text"),
        ("contacts", "first_name", FieldType.TEXT, "first name"),
        ("contacts", "job_title", FieldType.TEXT, "job"),
        ("companies", "hq_country", FieldType.TEXT, "country"),
        ("contacts", "notes", FieldType.LONG_TEXT, "paragraphs"),
        ("contacts", "anything", FieldType.PHONE, "phone"),
    ],
)
def test_kind_is_guessed_from_type_and_slugs(
    object_slug: str, slug: str, ftype: FieldType, kind: str
) -> None:
    assert kind_of(object_slug, slug, ftype) == kind


def test_keep_must_name_a_field() -> None:
    with pytest.raises(AnonymiseError, match="nope"):
        anonymise(OBJECTS, {"obj_contacts": []}, seed=1, keep=["nope"])
    out, changes, kept = anonymise(
        OBJECTS, {"obj_contacts": _records(5)}, seed=1, keep=["contacts.email", "stage"]
    )
    assert kept == ["obj_contacts.email"]
    assert "email" not in {c.slug for c in changes}
    assert [r["field_values"]["email"] for r in out["obj_contacts"]] == [
        f"p{i}@Example.org" for i in range(5)
    ]


def test_a_generator_that_repeats_itself_gets_numbered_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    import mockserver.anonymise as module

    monkeypatch.setitem(module._GENERATORS, "text", lambda f, s, a: str(f.random_element(["Alpha", "Beta"])))
    out, _, _ = anonymise(OBJECTS, {"obj_contacts": _records(500)}, seed=2)
    codes = [r["field_values"]["code"] for r in out["obj_contacts"]]
    assert len(set(codes)) == 500
    assert all(c.split(" ")[0] in ("Alpha", "Beta") and len(c) <= TEXT_MAX_CHARS for c in codes)
