"""Records as CSV fixture files: read by field type, errors by file, row and column, and the
control API's CSV export."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import mockserver
from mockserver import FixtureError, MockServer, load_fixtures
from mockserver.domain.backend import FixtureSet
from mockserver.domain.fixtures import read_records_csv, records_csv

BUNDLED = Path(mockserver.__file__).parent / "fixtures"
CSV = "records/contacts.csv"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The bundled set with contacts.yaml taken out (each test writes contacts.csv)."""
    root = tmp_path / "fixtures"
    shutil.copytree(BUNDLED, root)
    (root / "records" / "contacts.yaml").unlink()
    # deals reference contacts: keep only contacts' own file in play.
    (root / "records" / "deals.yaml").unlink()
    return root


def write_csv(root: Path, text: str, *, bom: bool = False) -> None:
    (root / CSV).write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))


def contacts(fs: FixtureSet) -> list[dict[str, object]]:
    return [r.to_json() for r in fs.records if r.object_id == "obj_contacts"]


# --- reading ----------------------------------------------------------------------------------------


def test_every_bundled_record_file_round_trips_through_csv(tmp_path: Path, fixture_set: FixtureSet) -> None:
    root = tmp_path / "fx"
    shutil.copytree(BUNDLED, root)
    for i, obj in enumerate(fixture_set.objects):
        (root / "records" / f"{obj.slug}.yaml").unlink()
        text = records_csv(obj, (r.to_json() for r in fixture_set.records if r.object_id == obj.id))
        (root / "records" / f"{obj.slug}.csv").write_bytes(
            (b"\xef\xbb\xbf" if i % 2 else b"") + text.encode()
        )
    loaded = load_fixtures(root)
    assert sorted((r.to_json() for r in loaded.records), key=lambda r: r["id"]) == sorted(
        (r.to_json() for r in fixture_set.records), key=lambda r: r["id"]
    )


@pytest.mark.parametrize("bom", [False, True], ids=["utf-8", "utf-8 with BOM"])
def test_cells_are_read_by_field_type(copy: Path, bom: bool) -> None:
    write_csv(
        copy,
        "id,name,email,tags,deal_value,score,do_not_contact,birthday,notes\n"
        "rec_a,Zoë Ångström,zoe@example.org,vip;newsletter,1234.5,-3,true,1990-02-03,"
        '"two\nlines, ""quoted"""\n'
        'rec_b,José,,"[""beta""]",7,1e3,FALSE,,\n'
        "rec_c,北京,,,,,,,\n",
        bom=bom,
    )
    got = {r["id"]: r["field_values"] for r in contacts(load_fixtures(copy))}
    assert got == {
        "rec_a": {
            "name": "Zoë Ångström",
            "email": "zoe@example.org",
            "tags": ["vip", "newsletter"],
            "deal_value": 1234.5,
            "score": -3,
            "do_not_contact": True,
            "birthday": "1990-02-03",
            "notes": 'two\nlines, "quoted"',
        },
        "rec_b": {
            "name": "José",
            "tags": ["beta"],
            "deal_value": 7,
            "score": 1000.0,
            "do_not_contact": False,
        },
        "rec_c": {"name": "北京"},
    }
    assert isinstance(got["rec_b"]["deal_value"], int)


def test_without_system_columns_rows_get_ids_the_file_order_and_the_admin(copy: Path) -> None:
    write_csv(copy, "name,status\nFirst,new\nSecond,active\nThird,\n")
    fs = load_fixtures(copy)
    recs = contacts(fs)
    assert [r["id"] for r in recs] == ["rec_contacts_1", "rec_contacts_2", "rec_contacts_3"]
    assert [r["created_at"] for r in recs] == [
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:01Z",
        "2024-01-01T00:00:02Z",
    ]
    assert {r["created_by"] for r in recs} == {"user_admin"}
    assert recs[2]["field_values"] == {"name": "Third"}


def test_csv_with_system_columns_keeps_them(copy: Path) -> None:
    write_csv(
        copy,
        "created_by,id,created_at,updated_at,name\nuser_bob,rec_x,2023-05-01T10:00:00Z,2023-06-01T10:00:00.5Z,X\n",
    )
    (rec,) = contacts(load_fixtures(copy))
    assert rec == {
        "id": "rec_x",
        "object_id": "obj_contacts",
        "field_values": {"name": "X"},
        "created_at": "2023-05-01T10:00:00Z",
        "updated_at": "2023-06-01T10:00:00.500Z",
        "created_by": "user_bob",
    }


# --- errors name file, row and column ----------------------------------------------------------------

BAD = [
    pytest.param("name,deal_value\nA,1\nB,\"12,5\"\n", "row 3, column deal_value", "'.' as the decimal point",
                 id="wrong type (decimal comma)"),
    pytest.param("name,do_not_contact\nA,yes\n", "row 2, column do_not_contact", "true or false",
                 id="wrong type (boolean)"),
    pytest.param("name,emial\nA,a@b.c\n", "row 1, column emial", "unknown column", id="unknown column"),
    pytest.param("name,tags\nA,vip\nB,vip;gold\n", "row 3, column tags", "'gold'",
                 id="bad multi_select option"),
    pytest.param("name,status\nA,new\n,active\n", "row 3, column name", "is required",
                 id="missing required value"),
    pytest.param("name,email\nA,not-an-email\n", "row 2, column email", "valid email", id="bad email"),
    pytest.param("name,name\nA,B\n", "row 1, column name", "twice", id="duplicate column"),
    pytest.param("name,status\nA,new,extra\n", "row 2", "3 cells, the header 2", id="ragged row"),
    pytest.param("id,name\nrec_1,A\nrec_1,B\n", "row 3, column id", "duplicate record id", id="duplicate id"),
    pytest.param("name,created_at\nA,yesterday\n", "row 2, column created_at", "expected a datetime",
                 id="bad created_at"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "where", "message"), BAD)
def test_bad_csv_names_file_row_and_column(copy: Path, text: str, where: str, message: str) -> None:
    write_csv(copy, text)
    with pytest.raises(FixtureError) as info:
        load_fixtures(copy)
    problems = [(f, p, m) for f, p, m in info.value.problems if (f, p) == (CSV, where)]
    assert problems, info.value.problems
    assert any(message in m for _, _, m in problems), problems
    assert f"{CSV}: {where}: " in str(info.value)
    with pytest.raises(FixtureError):
        MockServer(copy)  # the mock does not start


def test_a_file_that_is_not_utf8_is_named(copy: Path) -> None:
    (copy / CSV).write_bytes("name\nZo\xeb\n".encode("latin-1"))
    with pytest.raises(FixtureError) as info:
        load_fixtures(copy)
    assert [(f, p) for f, p, _ in info.value.problems] == [(CSV, "")]
    assert "UTF-8" in str(info.value)


def test_serve_does_not_start_on_a_bad_csv_and_says_where(copy: Path) -> None:
    write_csv(copy, "name,tags,deal_value\nA,vip;gold,1\n,,x\n")
    result = subprocess.run(
        [sys.executable, "-m", "mockserver", "serve", "--port", "0", "--fixtures", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    for where in ("row 2, column tags", "row 3, column deal_value", "row 3, column name"):
        assert f"{CSV}: {where}: " in result.stderr, result.stderr
    assert "serving" not in result.stdout


def test_read_records_csv_reports_a_broken_quote() -> None:
    obj = load_fixtures(BUNDLED).objects[0]
    _, problems = read_records_csv('name\n"unterminated\n', obj, None)
    assert problems and problems[0][0].startswith("row ")


# --- GET /_mock/state?format=csv ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


def test_state_export_as_csv_holds_one_objects_records(mock: MockServer, tmp_path: Path) -> None:
    mock.reset()
    made = mock.seed("obj_contacts", [{"name": 'Ünïcödé, "Q"', "tags": ["vip", "beta"], "notes": "a\nb"}])[0]
    response = httpx.get(mock.url + "/_mock/state", params={"format": "csv", "object_id": "obj_contacts"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    obj = mock.backend.get_object("obj_contacts")
    rows, problems = read_records_csv(response.text, obj, None)
    assert not problems
    by_id = {item["id"]: item for _, item in rows}
    state = [r for r in mock.state()["records"] if r["object_id"] == "obj_contacts"]
    assert len(rows) == len(state) == 221
    for rec in state:
        item = by_id[rec["id"]]
        assert item["field_values"] == rec["field_values"]
        assert (item["created_at"], item["updated_at"], item["created_by"]) == (
            rec["created_at"], rec["updated_at"], rec["created_by"],
        )  # fmt: skip
    assert by_id[made["id"]]["field_values"]["name"] == 'Ünïcödé, "Q"'
    # The export is a fixture file: a folder holding it serves the same records.
    root = tmp_path / "fx"
    shutil.copytree(BUNDLED, root)
    (root / "records" / "contacts.yaml").unlink()
    (root / CSV).write_text(response.text, encoding="utf-8", newline="")
    loaded = [r.to_json() for r in load_fixtures(root).records if r.object_id == "obj_contacts"]
    assert sorted(loaded, key=lambda r: r["id"]) == sorted(state, key=lambda r: str(r["id"]))
    mock.reset()


@pytest.mark.parametrize(
    ("params", "status", "param"),
    [
        ({"format": "csv"}, 400, "object_id"),
        ({"object_id": "obj_contacts"}, 400, "object_id"),
        ({"format": "xml", "object_id": "obj_contacts"}, 400, "format"),
        ({"format": "csv", "object_id": "obj_nope"}, 404, None),
    ],
    ids=["csv without object_id", "object_id without csv", "unknown format", "unknown object"],
)
def test_state_export_parameters_are_checked(
    mock: MockServer, params: dict[str, str], status: int, param: str | None
) -> None:
    response = httpx.get(mock.url + "/_mock/state", params=params)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "code", "status", "details"}
    if param is not None:
        assert body["details"]["param"] == param
    else:
        assert body["details"]["object_id"] == "obj_nope"
    assert json.loads(httpx.get(mock.url + "/_mock/state").text)["version"] == 1
