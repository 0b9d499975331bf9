"""`pull --anonymise`: personal data in pulled records replaced by deterministic fakes (Faker).

What changes: text, long_text, email, phone, url and image values (each field but those named
with `--keep`). What stays: ids, references, users, statuses, dropdowns, multi_selects, numbers,
currencies, dates, datetimes, booleans, and which values are empty.

Equal stays equal, under the query engine's case rules:
- email compares lowercased, so every spelling of one address becomes one fake address
  (lowercase); different addresses get different fakes.
- The other string types compare exactly for `$eq`/`$in` and case-insensitively for the text
  operators. Values equal ignoring case share one fake; each spelling of it gets its own spelling
  of the fake (`ACME` -> `LOREM`, `Acme` -> `Lorem`). So two values are equal after if and only if
  they were before, both exactly and ignoring case.
Each original value (under those rules) maps to the same fake in every field of the same kind
(names, emails, ...) and every record, whatever the order: the fake is drawn from a generator
seeded with the seed, the kind and the value. A fake never equals any original value of an
anonymised field, ignoring case, and fakes of a kind never collide, so unique fields stay unique.
Substring relations (`$contains "acme"` matching `"Acme Corp"`) and the sort order of anonymised
fields are not kept: a filter that names an original value has nothing to match anyway.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .domain.schema import TEXT_MAX_CHARS, FieldType, is_email, is_http_url, is_phone

#: The types whose values are replaced.
ANONYMISED_TYPES = frozenset(
    {FieldType.TEXT, FieldType.LONG_TEXT, FieldType.EMAIL, FieldType.PHONE, FieldType.URL, FieldType.IMAGE}
)
INSTALL_HINT = "--anonymise needs Faker: pip install 'kantos-mockserver[pull]'"


def faker_available() -> bool:
    """Whether Faker (the optional `pull` extra) is installed."""
    try:
        import faker  # noqa: F401
    except ImportError:
        return False
    return True


class AnonymiseError(ValueError):
    """The options name something the pulled objects do not have."""


@dataclass(slots=True)
class FieldChange:
    """One anonymised field, for the summary."""

    object_id: str
    slug: str
    type: str
    kind: str
    values: int = 0
    distinct: set[str] = field(default_factory=set)

    def describe(self) -> str:
        return (
            f"{self.object_id}.{self.slug} ({self.type}, as {self.kind}): "
            f"{self.values} value(s), {len(self.distinct)} distinct"
        )


_WORDS = re.compile(r"[a-z0-9]+")
_COMPANY_OBJECTS = ("compan", "account", "organi", "business", "vendor", "supplier", "org")
_PEOPLE_OBJECTS = (
    "contact",
    "person",
    "people",
    "lead",
    "user",
    "member",
    "employee",
    "customer",
    "candidate",
)


def kind_of(object_slug: str, slug: str, ftype: FieldType) -> str:
    """Which fake a field gets: guessed from its type, then its slug and its object's slug."""
    if ftype is not FieldType.TEXT:
        return {
            FieldType.LONG_TEXT: "paragraphs",
            FieldType.EMAIL: "email",
            FieldType.PHONE: "phone",
            FieldType.URL: "url",
            FieldType.IMAGE: "image",
        }[ftype]
    words = set(_WORDS.findall(slug.lower()))
    if words & {"first", "given", "forename"}:
        return "first name"
    if words & {"last", "surname", "family"}:
        return "last name"
    if words & {"company", "organisation", "organization", "employer", "account", "business", "firm"}:
        return "company"
    if words & {"city", "town"}:
        return "city"
    if words & {"country"}:
        return "country"
    if words & {"address", "street"}:
        return "address"
    if words & {"title", "job", "role", "position", "occupation"}:
        return "job"
    if words & {"username", "handle", "login", "nickname"}:
        return "user name"
    if words & {"name", "contact", "person", "fullname"}:
        if any(s in object_slug.lower() for s in _COMPANY_OBJECTS):
            return "company"
        if any(s in object_slug.lower() for s in _PEOPLE_OBJECTS) or words & {"contact", "person"}:
            return "name"
    return "text"


class Anonymiser:
    """Maps original values to fakes; one instance per pull, so every field shares the mapping."""

    def __init__(self, seed: int, originals: Iterable[str]) -> None:
        from faker import Faker

        self.seed = seed
        self.faker = Faker("en_US")
        #: Every original value of an anonymised field, lowercased: no fake may equal one.
        self.originals = {v.lower() for v in originals}
        #: (kind, class key) -> the fake for that class; and per kind, the fakes taken, lowercased.
        self.base: dict[tuple[str, str], str] = {}
        self.taken: dict[str, set[str]] = defaultdict(set)
        self.spelled: dict[tuple[str, str], str] = {}

    def prepare(self, kind: str, values: Iterable[str]) -> None:
        """Draw the fakes for every value of a kind, classes in sorted order (so the outcome does
        not depend on the order records came in)."""
        classes: dict[str, set[str]] = defaultdict(set)
        for v in values:
            classes[self._class(kind, v)].add(v)
        for key in sorted(classes):
            base = self.base.get((kind, key))
            if base is None:
                base = self._draw(kind, key, min(classes[key]))
                self.base[(kind, key)] = base
            self._spell(kind, key, base, sorted(classes[key]))

    def fake(self, kind: str, value: str) -> str:
        return self.spelled[(kind, value)]

    @staticmethod
    def _class(kind: str, value: str) -> str:
        # Phones have no letters, and the other kinds compare case-insensitively in text filters.
        return value.lower()

    def _spell(self, kind: str, key: str, base: str, members: list[str]) -> None:
        if kind == "email":
            for m in members:
                self.spelled[(kind, m)] = base
            return
        used: set[str] = {self.spelled[(kind, m)] for m in members if (kind, m) in self.spelled}
        for m in members:
            if (kind, m) in self.spelled:
                continue
            candidate = base if len(members) == 1 else _case_like(m, base)
            n = 1
            while candidate in used:
                candidate = _case_variant(base, n)
                n += 1
            used.add(candidate)
            self.spelled[(kind, m)] = candidate

    def _draw(self, kind: str, key: str, sample: str) -> str:
        digest = hashlib.blake2b(f"{self.seed}\0{kind}\0{key}".encode(), digest_size=8).digest()
        self.faker.seed_instance(int.from_bytes(digest, "big"))
        taken = self.taken[kind]
        for attempt in range(8):
            candidate = _GENERATORS[kind](self.faker, sample, attempt)
            if self._free(kind, candidate):
                return candidate
        # The generator keeps repeating itself (a kind with more distinct values than it has
        # fakes, such as one-word texts): number its fakes, which always ends.
        n = len(taken)
        while True:
            n += 1
            candidate = _numbered_fake(kind, _GENERATORS[kind](self.faker, sample, 0), n)
            if self._free(kind, candidate):
                return candidate

    def _free(self, kind: str, candidate: str) -> bool:
        low = candidate.lower()
        if low in self.taken[kind] or low in self.originals or not _valid(kind, candidate):
            return False
        self.taken[kind].add(low)
        return True


def _valid(kind: str, value: str) -> bool:
    if kind == "email":
        return is_email(value)
    if kind == "phone":
        return is_phone(value)
    if kind in ("url", "image"):
        return is_http_url(value)
    if kind == "paragraphs":
        return bool(value)
    return 0 < len(value) <= TEXT_MAX_CHARS


def _case_like(original: str, fake: str) -> str:
    """`fake` with the letter case of `original` laid over its ASCII letters (the last letter's
    case carries on past the original's end)."""
    pattern = [c.isupper() for c in original if c.isalpha()]
    if not pattern:
        return fake
    out, i = [], 0
    for c in fake:
        if c.isascii() and c.isalpha():
            upper = pattern[min(i, len(pattern) - 1)]
            out.append(c.upper() if upper else c.lower())
            i += 1
        else:
            out.append(c)
    return "".join(out)


def _case_variant(fake: str, n: int) -> str:
    """The n-th spelling of `fake`: the letters whose bit is set in n flipped to upper case."""
    out = []
    for c in fake.lower():
        if c.isascii() and c.isalpha() and n:
            out.append(c.upper() if n & 1 else c)
            n >>= 1
        else:
            out.append(c)
    return "".join(out) + ("" if not n else f" {n}")


def _numbered_fake(kind: str, fake: str, n: int) -> str:
    """A fake made distinct by a number, within its kind's rules."""
    if kind == "email":
        user, _, domain = fake.partition("@")
        return f"{user}{n}@{domain}"
    if kind == "phone":
        return fake  # a new draw of digits; the loop goes on until one is free
    if kind in ("url", "image"):
        return f"{fake}?n={n}"
    suffix = f" {n}"
    limit = TEXT_MAX_CHARS if kind != "paragraphs" else len(fake) + len(suffix)
    return fake[: limit - len(suffix)] + suffix


def _numbered(value: str, attempt: int) -> str:
    return value if attempt < 5 else f"{value} {attempt}"


def _sentence(faker: Any, sample: str, attempt: int) -> str:
    if any(c.isdigit() for c in sample) and len(sample.split()) <= 3:
        # A code or a reference number ("C-00042", "INV 2024/17"): the same shape, new characters.
        return "".join(
            str(faker.random_digit())
            if c.isdigit()
            else (
                str(faker.random_uppercase_letter()) if c.isupper() else str(faker.random_lowercase_letter())
            )
            if c.isascii() and c.isalpha()
            else c
            for c in sample
        )
    words = max(1, min(len(sample.split()), 30))
    text = str(faker.sentence(nb_words=words, variable_nb_words=False))
    if not sample.endswith("."):
        text = text.rstrip(".")
    if len(text) > TEXT_MAX_CHARS:
        text = text[:TEXT_MAX_CHARS].rsplit(" ", 1)[0]
    return _numbered(text, attempt)[:TEXT_MAX_CHARS]


def _paragraphs(faker: Any, sample: str, attempt: int) -> str:
    parts = [p for p in sample.split("\n\n") if p.strip()] or [sample]
    out = []
    for p in parts[:20]:
        sentences = max(1, min(len(p) // 80 + 1, 10))
        out.append(" ".join(faker.sentences(nb=sentences)))
    return _numbered("\n\n".join(out), attempt)


def _email(faker: Any, sample: str, attempt: int) -> str:
    user = str(faker.user_name()).lower()
    if attempt >= 5:
        user += str(attempt)
    return f"{user}@{faker.safe_domain_name()}".lower()


def _phone(faker: Any, sample: str, attempt: int) -> str:
    # The original's layout with new digits: its form (and so the phone rules) holds as it did.
    return str(faker.numerify(re.sub(r"[0-9]", "#", sample)))


def _url(faker: Any, sample: str, attempt: int) -> str:
    scheme = "http" if sample.lower().startswith("http:") else "https"
    path = faker.uri_path(deep=2 if attempt < 5 else 3)
    return f"{scheme}://www.{faker.domain_name()}/{path}"


def _image(faker: Any, sample: str, attempt: int) -> str:
    scheme = "http" if sample.lower().startswith("http:") else "https"
    ext = next(
        (e for e in ("png", "jpg", "jpeg", "gif", "webp", "svg") if sample.lower().endswith("." + e)), "png"
    )
    return f"{scheme}://images.{faker.domain_name()}/{faker.uuid4()[:12]}.{ext}"


_GENERATORS: dict[str, Callable[[Any, str, int], str]] = {
    "name": lambda f, s, a: _numbered(str(f.name()), a),
    "first name": lambda f, s, a: _numbered(str(f.first_name()), a),
    "last name": lambda f, s, a: _numbered(str(f.last_name()), a),
    "company": lambda f, s, a: _numbered(str(f.company()), a),
    "city": lambda f, s, a: _numbered(str(f.city()), a),
    "country": lambda f, s, a: _numbered(str(f.country()), a),
    "address": lambda f, s, a: _numbered(str(f.street_address()), a),
    "job": lambda f, s, a: _numbered(str(f.job())[:TEXT_MAX_CHARS], a),
    "user name": lambda f, s, a: _numbered(str(f.user_name()), a),
    "text": _sentence,
    "paragraphs": _paragraphs,
    "email": _email,
    "phone": _phone,
    "url": _url,
    "image": _image,
}


def anonymise(
    objects: Sequence[Mapping[str, Any]],
    records: Mapping[str, list[dict[str, Any]]],
    seed: int,
    keep: Iterable[str] = (),
) -> tuple[dict[str, list[dict[str, Any]]], list[FieldChange], list[str]]:
    """Anonymised copies of `records` (by object id, in their JSON form) under `objects`' fields
    (`GET /api/crm/objects/{id}` documents). `keep` names fields left as they are: `slug`
    (in every object), or `object_slug.slug` / `object_id.slug`.

    Returns the records, the fields changed, and the fields kept. Raises AnonymiseError for a
    `keep` entry that names no field; ImportError when Faker is not installed.
    """
    targets, kept = plan(objects, keep)
    by_kind: dict[str, list[str]] = defaultdict(list)
    changes: list[FieldChange] = []
    for oid, slug, ftype, kind in targets:
        change = FieldChange(oid, slug, str(ftype), kind)
        for rec in records.get(oid, []):
            v = (rec.get("field_values") or {}).get(slug)
            if isinstance(v, str) and v:
                by_kind[kind].append(v)
                change.values += 1
                change.distinct.add(v)
        changes.append(change)
    anon = Anonymiser(seed, (v for values in by_kind.values() for v in values))
    for kind in sorted(by_kind):
        anon.prepare(kind, by_kind[kind])
    out: dict[str, list[dict[str, Any]]] = {}
    fields_of: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for oid, slug, _, kind in targets:
        fields_of[oid].append((slug, kind))
    for oid, recs in records.items():
        todo = fields_of.get(oid, [])
        copies = []
        for rec in recs:
            values = dict(rec.get("field_values") or {})
            for slug, kind in todo:
                v = values.get(slug)
                if isinstance(v, str) and v:
                    values[slug] = anon.fake(kind, v)
            copies.append({**rec, "field_values": values})
        out[oid] = copies
    return out, [c for c in changes if c.values], kept


def plan(
    objects: Sequence[Mapping[str, Any]], keep: Iterable[str] = ()
) -> tuple[list[tuple[str, str, FieldType, str]], list[str]]:
    """The fields to anonymise, as `(object id, slug, type, kind)`, and those `keep` names
    (`object_id.slug`); AnonymiseError when a `keep` entry names no field."""
    targets: list[tuple[str, str, FieldType, str]] = []
    keep_set = {k.strip() for k in keep if k.strip()}
    matched: set[str] = set()
    kept: list[str] = []
    for obj in objects:
        oid, oslug = str(obj["id"]), str(obj.get("slug", ""))
        for f in obj.get("fields") or []:
            try:
                ftype = FieldType(str(f.get("type")))
            except ValueError:
                continue
            slug = str(f["slug"])
            names = {slug, f"{oslug}.{slug}", f"{oid}.{slug}"} & keep_set
            if ftype not in ANONYMISED_TYPES:
                matched |= names
                continue
            if names:
                matched |= names
                kept.append(f"{oid}.{slug}")
                continue
            targets.append((oid, slug, ftype, kind_of(oslug, slug, ftype)))
    unknown = sorted(keep_set - matched)
    if unknown:
        raise AnonymiseError(
            f"--keep names no field of the pulled objects: {', '.join(unknown)} "
            "(give a field slug, or object_slug.field_slug)"
        )
    return targets, kept
