"""`kantos-mock pull`: round trips through YAML and CSV, anonymising, rate limits and resuming."""

from __future__ import annotations

import functools
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mockserver import MockServer, create_app
from mockserver.anonymise import ANONYMISED_TYPES
from mockserver.conformance.battery import Battery
from mockserver.conformance.oracle import Oracle, object_def, record
from mockserver.domain.backend import FixtureSet
from mockserver.domain.fixtures import load_fixtures
from mockserver.domain.schema import FieldType
from mockserver.pull import EXIT_INTERRUPTED, EXIT_OK, PullOptions, pull
from mockserver.server import DEFAULT_API_KEY

PEOPLE = 1_100
ORGS = 40
FIRST = ["Zoë", "José", "Ånge", "Łukasz", "Mei", "Ola", "Anna", "Søren", "Chloé", "Dmitri", "Aiyana", "Tomás"]
LAST = ["Ångström", "Müller", "O'Brien", "Nguyễn", "Smith", "García", "Kowalski", "Ōta", "Dubois", "Ivanov"]
TAGS = ["vip", "newsletter", "R&D; Ops", "beta", "[legacy]"]


def _source_fixtures(root: Path) -> Path:
    """A fixture set with every field type, 1,100 people and non-ASCII text, written by hand
    (not by the code under test)."""
    rng = random.Random(16)
    objects = [
        {
            "id": "obj_orgs",
            "name": "Orgs",
            "slug": "orgs",
            "icon": "building",
            "fields": [
                {"name": "Name", "type": "text", "required": True, "unique": True},
                {"name": "Country", "type": "text"},
                {"name": "Website", "type": "url", "unique": True},
            ],
        },
        {
            "id": "obj_people",
            "name": "People",
            "slug": "people",
            "fields": [
                {"name": "Name", "type": "text", "required": True},
                {"name": "Email", "type": "email", "unique": True},
                {"name": "Alt email", "type": "email"},
                {"name": "Phone", "type": "phone"},
                {"name": "Homepage", "type": "url"},
                {"name": "Avatar", "type": "image"},
                {"name": "Notes", "type": "long_text"},
                {"name": "Nickname", "type": "text"},
                {"name": "Score", "type": "number"},
                {"name": "Budget", "type": "currency"},
                {"name": "Birthday", "type": "date"},
                {"name": "Last seen", "type": "datetime"},
                {"name": "Active", "type": "boolean"},
                {"name": "Stage", "type": "status", "options": {"stages": ["new", "won", "lost"]}},
                {"name": "Tier", "type": "dropdown", "options": {"choices": ["Gold", "Silver", "Bronze"]}},
                {"name": "Tags", "type": "multi_select", "options": {"choices": TAGS}},
                {"name": "Org", "type": "reference", "options": {"object_id": "obj_orgs"}},
                {"name": "Owner", "type": "user"},
                {"name": "Code", "type": "text", "unique": True},
            ],
        },
    ]
    users = [
        {"id": "user_admin", "name": "Ada Admin", "email": "ada@example.org", "admin": True},
        *({"id": f"user_{n}", "name": f"Üser {n}", "email": f"u{n}@example.org"} for n in range(4)),
    ]
    keys = [{"key": DEFAULT_API_KEY, "type": "server", "user": "user_admin", "plan": "enterprise"}]
    orgs = []
    for i in range(ORGS):
        values: dict[str, Any] = {
            "name": f"Société {i} «Ünïcode» GmbH",
            "website": f"https://org{i}.example/ü",
        }
        if i % 3:
            values["country"] = ["Österreich", "Deutschland", "DEUTSCHLAND", "Japan 日本"][i % 4]
        orgs.append(_rec(f"rec_org_{i:03d}", i, values))
    people = []
    for i in range(PEOPLE):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        values = {"name": f"{first} {last}" if i % 50 else f"{first.upper()} {last.upper()}"}
        if i % 10:
            values["email"] = f"{first.lower()}.{i}@Example.org".replace("ë", "e").replace("é", "e")
            values["email"] = values["email"].encode("ascii", "ignore").decode()
        if i % 4 == 0:
            values["alt_email"] = ["Shared@Example.org", "shared@example.org", "other@example.org"][i % 3]
        if i % 3:
            values["phone"] = f"+49 (30) {rng.randint(1000000, 9999999)}" if i % 2 else "555-0100"
        if i % 5:
            values["homepage"] = f"https://people.example/~{first.lower()}{i % 300}"
        if i % 7 == 0:
            values["avatar"] = f"https://img.example/{i}.png"
        if i % 6 == 0:
            values["notes"] = f"Met at the fair,\n\n“quoted”, 'single', \"double\"; 北京 {i % 40}."
        if i % 2:
            values["nickname"] = ["ACME", "acme", "Acme", "Beta", "[bracket]", "a,b"][i // 2 % 6]
        if i % 8:
            values["score"] = rng.choice([0, -3, 17, 2.5, 0.1, 1e20, 12345678901234])
        if i % 9:
            values["budget"] = round(rng.uniform(0, 5000), 2)
        if i % 4:
            values["birthday"] = f"19{50 + i % 50:02d}-0{1 + i % 9}-{1 + i % 28:02d}"
        if i % 5 != 1:
            values["last_seen"] = f"2024-03-{1 + i % 28:02d}T{i % 24:02d}:15:00{'Z' if i % 2 else '+05:30'}"
        if i % 3 != 2:
            values["active"] = bool(i % 2)
        values["stage"] = ["new", "won", "lost"][i % 3]
        if i % 4 != 3:
            values["tier"] = ["Gold", "Silver", "Bronze"][i % 3]
        if i % 3:
            values["tags"] = sorted({TAGS[i % 5], TAGS[(i // 5) % 5]})
        if i % 10 != 9:
            values["org"] = f"rec_org_{i % ORGS:03d}"
        values["owner"] = f"user_{i % 4}"
        values["code"] = f"C-{i:05d}"
        people.append(_rec(f"rec_p_{i:05d}", i // 3, values, fraction=i % 11 == 0))
    root.mkdir(parents=True)
    (root / "records").mkdir()
    for name, data in (
        ("objects", {"objects": objects}),
        ("users", {"users": users}),
        ("api_keys", {"keys": keys}),
    ):
        (root / f"{name}.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    for slug, recs in (("orgs", orgs), ("people", people)):
        (root / "records" / f"{slug}.yaml").write_text(
            yaml.safe_dump({"records": recs}, allow_unicode=True), encoding="utf-8"
        )
    return root


def _rec(rid: str, minute: int, values: dict[str, Any], fraction: bool = False) -> dict[str, Any]:
    # Three people share each minute: the default order relies on the id breaking ties.
    stamp = f"2023-05-{1 + minute // 1440:02d}T{minute // 60 % 24:02d}:{minute % 60:02d}:00"
    return {
        "id": rid,
        "created_at": stamp + (".250Z" if fraction else "Z"),
        "updated_at": stamp.replace("2023", "2024") + "Z",
        "created_by": "user_1" if minute % 2 else "user_admin",
        "field_values": values,
    }


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _source_fixtures(tmp_path_factory.mktemp("source") / "fixtures")


@pytest.fixture(scope="module")
def source(source_dir: Path) -> Iterator[MockServer]:
    with _serve(source_dir) as mock:
        yield mock


@functools.cache
def _loaded(directory: Path) -> FixtureSet:
    """A fixture folder the tests only read, loaded once."""
    return load_fixtures(directory)


def _serve(directory: Path) -> MockServer:
    """A mock on `directory` without the response self-check: these tests compare hundreds of
    pages of 100 records between two mocks, and validating each against the spec took 20 s of
    the 21 (the self-check is on everywhere else, on the same handlers)."""
    return MockServer(app=create_app(directory, validate_responses=False))


def _pull(mock: MockServer, out: Path, **options: Any) -> int:
    return pull(PullOptions(base_url=mock.url, api_key=mock.api_key, out=out, **options))


def _oracles(mock: MockServer) -> dict[str, Oracle]:
    with mock.client() as c:
        out = {}
        for summary in c.get("/api/crm/objects").json()["data"]:
            obj, _ = object_def(c.get(f"/api/crm/objects/{summary['id']}").json())
            docs = mock.state()["records"]
            out[obj.id] = Oracle(obj, [record(d) for d in docs if d["object_id"] == obj.id])
        return out


def _battery(oracle: Oracle) -> list[dict[str, Any]]:
    """Queries for one object: the kit's filter battery, a sort on every field both ways, paging."""
    raw = {r.id: r.to_json() for r in oracle.records.values()}
    probes = Battery(oracle, raw, random.Random(5), quick=False).probes()
    queries: list[dict[str, Any]] = [{"filters": p.filters, "sort": "id", "per_page": 100} for p in probes]
    for f in [*oracle.obj.fields, *("id", "created_at", "updated_at", "created_by")]:
        slug = f if isinstance(f, str) else f.slug
        for order in ("asc", "desc"):
            queries.append({"sort": slug, "order": order, "per_page": 50, "page": 2})
    queries += [{"page": p, "per_page": 100} for p in range(1, 13)]
    queries += [{"page": 3}, {"per_page": 7, "page": 158}, {"per_page": 1, "page": 1100}]
    return [{"object_id": oracle.obj.id, **q} for q in queries]


def _answers(mock: MockServer, queries: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    from mockserver.conformance.client import _query_items

    with mock.client() as c:
        return [
            (r.status_code, r.json())
            for r in (c.get("/api/crm/records/query", params=_query_items(q)) for q in queries)
        ]


@pytest.fixture(scope="module")
def source_answers(source: MockServer) -> list[tuple[str, dict[str, Any], tuple[int, Any]]]:
    """Each object's battery of queries with the source's answers: (object id, query, answer).
    The tests only read the source, so it is asked once."""
    queries = [(oid, q) for oid, o in _oracles(source).items() for q in _battery(o)]
    answers = _answers(source, [q for _, q in queries])
    return [(oid, q, a) for (oid, q), a in zip(queries, answers, strict=True)]


# --- round trip ------------------------------------------------------------------------------------


@pytest.mark.parametrize("record_format", ["yaml", "csv"])
def test_a_pulled_folder_answers_every_query_as_the_source(
    source: MockServer,
    source_answers: list[tuple[str, dict[str, Any], tuple[int, Any]]],
    tmp_path: Path,
    record_format: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "pulled"
    assert _pull(source, out, record_format=record_format) == EXIT_OK
    files = sorted(p.name for p in (out / "records").iterdir())
    assert files == [f"orgs.{record_format}", f"people.{record_format}"]
    err = capsys.readouterr().err
    assert f"{PEOPLE + ORGS} record(s)" in err and DEFAULT_API_KEY in err
    assert not (out / ".pull").exists()
    queries = [q for _, q, _ in source_answers]
    assert len(queries) > 300
    with _serve(out) as copy:
        with source.client() as a, copy.client() as b:
            assert a.get("/api/crm/objects").json() == b.get("/api/crm/objects").json()
            for oid in ("obj_orgs", "obj_people"):
                assert a.get(f"/api/crm/objects/{oid}").json() == b.get(f"/api/crm/objects/{oid}").json()
        expected, got = [a for _, _, a in source_answers], _answers(copy, queries)
    differ = [(q, e, g) for q, e, g in zip(queries, expected, got, strict=True) if e != g]
    assert not differ, f"{len(differ)} of {len(queries)} answers differ; the first: {differ[0]}"
    assert sum(1 for status, body in expected if status == 200 and body["data"]) > 200


def test_users_become_placeholders_and_a_local_admin_key_is_added(source: MockServer, tmp_path: Path) -> None:
    out = tmp_path / "pulled"
    assert _pull(source, out, limit=50) == EXIT_OK
    fs = load_fixtures(out)
    # user_2 and user_3 are referenced only by user fields, user_1 and user_admin by created_by.
    assert set(fs.users) == {"user_admin", "user_0", "user_1", "user_2", "user_3", "user_local_admin"}
    assert all(not u.name.startswith(("Ada", "Üser")) for u in fs.users.values())
    key = fs.keys[DEFAULT_API_KEY]
    assert key.user.id == "user_local_admin" and key.user.admin


def test_objects_and_limit_take_a_subset_with_what_it_references(source: MockServer, tmp_path: Path) -> None:
    out = tmp_path / "pulled"
    assert _pull(source, out, objects=["people"], limit=30) == EXIT_OK
    fs = load_fixtures(out)  # passes: every reference holds
    people = [r for r in fs.records if r.object_id == "obj_people"]
    orgs = {r.id for r in fs.records if r.object_id == "obj_orgs"}
    with source.client() as c:
        first = c.get("/api/crm/records/query", params={"object_id": "obj_people", "per_page": 30}).json()
    assert [r.id for r in people] == [r["id"] for r in first["data"]]
    assert orgs == {r.values["org"] for r in people if "org" in r.values}
    assert len(orgs) < ORGS


def test_pull_writes_nothing_to_the_source(source: MockServer, tmp_path: Path) -> None:
    source.clear_requests()
    assert _pull(source, tmp_path / "pulled", limit=10) == EXIT_OK
    methods = {e["method"] for e in source.requests()}
    assert methods == {"GET"}


def test_pull_refuses_a_folder_that_is_not_a_fixture_set(source: MockServer, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    assert _pull(source, tmp_path) != EXIT_OK
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"


# --- anonymising -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anonymised(source: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("anon") / "a"
    # CSV: YAML files of 1,100 records take seconds to write and read back, CSV a fraction.
    assert _pull(source, out, anonymise=True, seed=42, record_format="csv") == EXIT_OK
    return out


def _values_by_field(records: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for r in records:
        for slug, v in r.values.items():
            out[(r.object_id, slug)][r.id] = v
    return out


def _anonymised_fields(source_dir: Path) -> dict[tuple[str, str], FieldType]:
    fs = _loaded(source_dir)
    return {(o.id, f.slug): f.type for o in fs.objects for f in o.fields if f.type in ANONYMISED_TYPES}


def test_anonymising_leaves_no_original_value(source_dir: Path, anonymised: Path) -> None:
    fields = _anonymised_fields(source_dir)
    before = _values_by_field(_loaded(source_dir).records)
    after = _values_by_field(_loaded(anonymised).records)
    originals = {str(v).lower() for key in fields for v in before[key].values()}
    for key in fields:
        assert before[key].keys() == after[key].keys(), f"{key}: empty values must stay empty"
        survivors = {v for v in after[key].values() if str(v).lower() in originals}
        assert not survivors, f"{key}: original values survived: {sorted(survivors)[:5]}"
    assert {str(a).lower() for a in after[("obj_people", "name")].values()}.isdisjoint(
        {f"{f} {la}".lower() for f in FIRST for la in LAST}
    )


def test_anonymising_changes_nothing_else(source_dir: Path, anonymised: Path) -> None:
    fields = _anonymised_fields(source_dir)
    src = {r.id: r for r in _loaded(source_dir).records}
    out = {r.id: r for r in _loaded(anonymised).records}
    assert src.keys() == out.keys()
    for rid, r in src.items():
        o = out[rid]
        assert (o.created_at, o.updated_at, o.created_by) == (r.created_at, r.updated_at, r.created_by)
        kept = {k: v for k, v in r.values.items() if (r.object_id, k) not in fields}
        assert {k: v for k, v in o.values.items() if (r.object_id, k) not in fields} == kept


def test_anonymising_keeps_equal_values_equal_and_unique_values_unique(
    source_dir: Path, anonymised: Path
) -> None:
    fields = _anonymised_fields(source_dir)
    before = _values_by_field(_loaded(source_dir).records)
    after = _values_by_field(_loaded(anonymised).records)

    def partition(values: dict[str, Any], fold: bool) -> set[frozenset[str]]:
        groups: dict[str, set[str]] = defaultdict(set)
        for rid, v in values.items():
            groups[v.lower() if fold else v].add(rid)
        return {frozenset(g) for g in groups.values()}

    for key, ftype in fields.items():
        # email compares lowercased; the other types exactly ($eq) and ignoring case (text operators).
        folds = (True,) if ftype is FieldType.EMAIL else (False, True)
        for fold in folds:
            assert partition(before[key], fold) == partition(after[key], fold), (key, fold)
    # The source has real case-only variants, so the check above has something to hold.
    assert len(partition(before[("obj_people", "nickname")], False)) > len(
        partition(before[("obj_people", "nickname")], True)
    )
    for obj in _loaded(anonymised).objects:
        for f in obj.fields:
            if f.unique:
                values = list(after[(obj.id, f.slug)].values())
                assert len({v.lower() for v in values}) == len(values), f.slug


def test_anonymised_copy_matches_the_same_records_for_filters_on_other_values(
    source_answers: list[tuple[str, dict[str, Any], tuple[int, Any]]], anonymised: Path, source_dir: Path
) -> None:
    fields = _anonymised_fields(source_dir)

    def names_no_anonymised_value(filters: dict[str, Any], oid: str) -> bool:
        for slug, cond in filters.items():
            if (oid, slug) in fields and not (isinstance(cond, dict) and set(cond) == {"$empty"}):
                return False
        return True

    chosen = [
        (q, a)
        for oid, q, a in source_answers
        if "filters" in q and names_no_anonymised_value(q["filters"], oid)
    ]
    queries = [q for q, _ in chosen]
    assert any(any((q["object_id"], s) in fields for s in q["filters"]) for q in queries)  # $empty ones
    with _serve(anonymised) as copy:
        expected, got = [a for _, a in chosen], _answers(copy, queries)

    def ids(answer: tuple[int, Any]) -> Any:
        status, body = answer
        return (status, [r["id"] for r in body["data"]], body["pagination"]) if status == 200 else answer

    differ = [q for q, e, g in zip(queries, expected, got, strict=True) if ids(e) != ids(g)]
    assert not differ, f"{len(differ)} of {len(queries)} filters match other records; the first: {differ[0]}"


def test_anonymising_twice_with_one_seed_gives_identical_files(
    source: MockServer, anonymised: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    again = tmp_path / "b"
    assert _pull(source, again, anonymise=True, seed=42, record_format="csv") == EXIT_OK
    err = capsys.readouterr().err
    files = sorted(p.relative_to(anonymised) for p in anonymised.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for f in files:
        assert (anonymised / f).read_bytes() == (again / f).read_bytes(), f
    for key in _anonymised_fields(again):
        assert f"{key[0]}.{key[1]} (" in err, f"the summary does not list {key}"
    other = tmp_path / "c"
    assert _pull(source, other, anonymise=True, seed=43, record_format="csv") == EXIT_OK
    assert (other / "records" / "people.csv").read_bytes() != (again / "records" / "people.csv").read_bytes()


def test_keep_leaves_a_field_as_it_is(source: MockServer, source_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "k"
    keep = ["people.nickname", "website"]
    assert _pull(source, out, anonymise=True, seed=1, keep=keep, record_format="csv") == EXIT_OK
    before = _values_by_field(_loaded(source_dir).records)
    after = _values_by_field(load_fixtures(out).records)
    assert after[("obj_people", "nickname")] == before[("obj_people", "nickname")]
    assert after[("obj_orgs", "website")] == before[("obj_orgs", "website")]
    assert after[("obj_people", "homepage")] != before[("obj_people", "homepage")]
    assert _pull(source, tmp_path / "bad", anonymise=True, seed=1, keep=["nicknam"]) != EXIT_OK


# --- rate limits and resuming ----------------------------------------------------------------------


@pytest.fixture
def bundled() -> Iterator[MockServer]:
    with MockServer() as mock:
        yield mock


def _ids(mock: MockServer) -> list[str]:
    return sorted(r["id"] for r in mock.state()["records"])


def test_pull_keeps_to_a_low_rate_limit_and_waits_as_retry_after_says(
    bundled: MockServer, tmp_path: Path
) -> None:
    bundled.set_key(bundled.api_key, per_minute=4)
    bundled.fault("GET", "/api/crm/records/query", status=429, headers={"Retry-After": "7"}, times=2, body={})
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the mock's time passes instead of ours
        waits.append(seconds)
        bundled.clock.advance(seconds)

    out = tmp_path / "pulled"
    assert pull(PullOptions(bundled.url, bundled.api_key, out), sleep=sleep) == EXIT_OK
    assert sorted(r.id for r in load_fixtures(out).records) == _ids(bundled)
    assert waits.count(7.0) == 2
    statuses = [e["status"] for e in bundled.requests(path="/api/*")]
    # 4 schema requests and 6 pages, 4 a minute: the pull waited for each new window, so the
    # only 429s it met were the two the fault rule sent.
    assert statuses.count(429) == 2 and statuses.count(200) == 10
    assert sum(waits) >= 14 + 60


def test_an_interrupted_pull_resumes_where_it_stopped(bundled: MockServer, tmp_path: Path) -> None:
    bundled.clock.freeze("2024-06-01T12:00:00Z")
    bundled.set_key(bundled.api_key, per_day=6)  # objects, 3 objects' fields, then 2 pages
    out = tmp_path / "pulled"
    options = PullOptions(bundled.url, bundled.api_key, out, max_wait=60)
    assert pull(options, sleep=lambda s: None) == EXIT_INTERRUPTED
    assert (out / ".pull" / "state.json").is_file()
    # What an interruption between writing a page and its checkpoint leaves: lines past the
    # checkpoint, the last one cut short.
    with (out / ".pull" / "obj_contacts.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"id": "rec_extra", "object_id": "obj_contacts", "field_values": {}}\n{"id": "rec_cut')
    bundled.set_key(bundled.api_key, per_day=1000)
    bundled.clear_requests()
    options.resume = True
    assert pull(options, sleep=lambda s: None) == EXIT_OK
    assert sorted(r.id for r in load_fixtures(out).records) == _ids(bundled)
    again = [e["query"] for e in bundled.requests(path="/api/*")]
    assert len(again) == 4  # the 4 pages not pulled before: no schema request, no page twice
    assert not (out / ".pull").exists()


def test_anonymise_without_faker_says_how_to_install_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['faker'] = None\n"
        "from mockserver.cli import main\n"
        f"sys.exit(main(['pull', '--base-url', 'http://127.0.0.1:9', '--api-key', 'k', "
        f"'--out', {str(tmp_path)!r}, '--anonymise']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "pip install 'kantos-mockserver[pull]'" in result.stderr


def test_pull_from_the_command_line(bundled: MockServer, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = subprocess.run(
        [sys.executable, "-m", "mockserver", "pull", "--base-url", bundled.url, "--api-key", bundled.api_key,
         "--out", str(out), "--format", "csv", "--objects", "obj_companies"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "obj_companies: 70/70 records" in result.stderr
    assert sorted(p.name for p in (out / "records").iterdir()) == ["companies.csv"]
    check = subprocess.run(
        [sys.executable, "-m", "mockserver", "check-fixtures", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr


def test_a_refused_key_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(401, json={"code": "UNAUTHORIZED"}))
    options = PullOptions("http://kantos.test", "wrong", tmp_path / "x")
    assert pull(options, transport=transport) == 1
    assert "401" in capsys.readouterr().err


def test_an_unreachable_source_fails_at_once_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    slept: list[float] = []
    options = PullOptions("http://kantos.test", "k", tmp_path / "x")
    assert pull(options, transport=httpx.MockTransport(refuse), sleep=slept.append) == 1
    assert "cannot reach http://kantos.test" in capsys.readouterr().err
    assert not slept and not (tmp_path / "x").exists()
