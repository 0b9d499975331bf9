"""`kantos-mock pull`: a live Kantos-compatible server's objects, fields and records as a fixture set."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .anonymise import INSTALL_HINT
from .conformance.client import _limits
from .domain.fixtures import RECORD_FORMATS, FixtureError, load_fixtures, write_fixture_set
from .domain.schema import FieldType, parse_datetime_us
from .server import DEFAULT_API_KEY

PER_PAGE = 100
#: The checkpoint folder inside `--out`, for `--resume`; removed when the pull completes.
CHECKPOINT = ".pull"
CHECKPOINT_VERSION = 1
#: Below this share of the window's requests left, the pull spreads the rest over the window.
SLOW_DOWN_BELOW = 0.1
#: The longest pause between two requests while pacing: a window is a minute.
MAX_PACE_WAIT = 60.0
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 3
COMMENT = "Written by kantos-mock pull. Check it with: kantos-mock check-fixtures DIR"


class PullError(Exception):
    """The pull cannot go on; `resumable` when running it again with --resume can finish it."""

    def __init__(self, message: str, resumable: bool = False) -> None:
        super().__init__(message)
        self.resumable = resumable


@dataclass(slots=True)
class Stats:
    requests: int = 0
    waited: float = 0.0
    rate_limited: int = 0
    started: float = field(default_factory=time.monotonic)


class SourceClient:
    """GETs from the source server (a pull never writes), keeping to its rate limit: it slows down
    as `X-RateLimit-Remaining` runs low, and on a 429 waits as `Retry-After` says."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        max_wait: float = 900.0,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time,
        notify: Callable[[str], None] = lambda message: None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_wait = max_wait
        self.sleep, self.now, self.notify = sleep, now, notify
        self.stats = Stats()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"X-Api-Key": api_key, "Accept": "application/json"},
            timeout=timeout,
            limits=_limits(self.base_url),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """The decoded JSON of a 200 answer; any other answer raises PullError."""
        failures = 0
        while True:
            try:
                response = self._http.get(path, params=params)
            except httpx.TransportError as exc:
                failures += 1
                if not self.stats.requests:  # never reached: a wrong URL, not a lost connection
                    raise PullError(f"cannot reach {self.base_url}: {exc}") from exc
                if failures > 3:
                    raise PullError(f"{self.base_url}{path}: no answer ({exc})", resumable=True) from exc
                self._wait(2.0**failures, f"no answer ({type(exc).__name__}); trying again")
                continue
            self.stats.requests += 1
            if response.status_code == 429:
                self.stats.rate_limited += 1
                self._wait(self._retry_after(response), "rate limited (429)")
                continue
            if response.status_code >= 500 and failures < 3:
                failures += 1
                self._wait(2.0**failures, f"{response.status_code} from the server; trying again")
                continue
            self._pace(response.headers)
            if response.status_code != 200:
                raise PullError(_refusal(path, response), resumable=response.status_code >= 500)
            try:
                return response.json()
            except ValueError as exc:
                raise PullError(f"GET {path}: the answer is not JSON: {exc}") from exc

    def _retry_after(self, response: httpx.Response) -> float:
        raw = response.headers.get("retry-after", "")
        try:
            wait = max(float(raw), 0.0)
        except ValueError:
            wait = 1.0
        if wait > self.max_wait:
            raise PullError(
                f"rate limited: the server says to wait {wait:.0f} s (Retry-After), more than "
                f"--max-wait {self.max_wait:.0f} s",
                resumable=True,
            )
        return wait

    def _pace(self, headers: httpx.Headers) -> None:
        """Spread the requests left in the window over the time left in it, once few are left."""
        try:
            limit = int(headers["x-ratelimit-limit"])
            remaining = int(headers["x-ratelimit-remaining"])
            reset = float(headers["x-ratelimit-reset"])
        except (KeyError, ValueError):
            return
        if remaining >= max(1, int(limit * SLOW_DOWN_BELOW)):
            return
        window = min(max(reset - self.now(), 0.0), MAX_PACE_WAIT)
        wait = window / (remaining + 1)
        if wait >= 0.001:
            self._wait(wait, f"{remaining} request(s) left in this rate-limit window", quiet=wait < 1)

    def _wait(self, seconds: float, why: str, quiet: bool = False) -> None:
        if not quiet:
            self.notify(f"{why}: waiting {seconds:.1f} s")
        self.stats.waited += seconds
        self.sleep(seconds)


def _refusal(path: str, response: httpx.Response) -> str:
    try:
        body = response.json()
        detail = f"{body.get('code')}: {body.get('error')}" if isinstance(body, dict) else response.text[:200]
    except ValueError:
        detail = response.text[:200]
    hint = {
        401: " (check --api-key)",
        403: " (pull needs a server key, not an intake key)",
    }.get(response.status_code, "")
    return f"GET {path}: {response.status_code} {detail}{hint}"


@dataclass(slots=True)
class PullOptions:
    base_url: str
    api_key: str
    out: Path
    objects: list[str] | None = None
    limit: int | None = None
    record_format: str = "yaml"
    resume: bool = False
    anonymise: bool = False
    seed: int | None = None
    keep: list[str] = field(default_factory=list)
    max_wait: float = 900.0
    timeout: float = 30.0


@dataclass(slots=True)
class PullResult:
    objects: list[dict[str, Any]]
    records: dict[str, list[dict[str, Any]]]
    users: list[str]
    admin_user: str
    files: list[Path]
    changed: list[str]
    kept: list[str]
    stats: Stats


class Puller:
    """One pull: schema, pages of records with a checkpoint after each, references, users, files."""

    def __init__(
        self, options: PullOptions, client: SourceClient, progress: Callable[[str], None] = lambda m: None
    ) -> None:
        self.o = options
        self.client = client
        self.progress = progress
        self.checkpoint = options.out / CHECKPOINT
        self.state: dict[str, Any] = {}

    # --- checkpoint -------------------------------------------------------------------------

    def _start(self) -> None:
        out = self.o.out
        if out.exists() and not out.is_dir():
            raise PullError(f"--out {out}: not a folder")
        if (
            out.is_dir()
            and any(out.iterdir())
            and not ((out / "objects.yaml").exists() or self.checkpoint.exists())
        ):
            raise PullError(
                f"--out {out}: the folder is not empty and holds no fixture set; give a new folder"
            )
        if self.o.resume and (self.checkpoint / "state.json").is_file():
            self.state = json.loads((self.checkpoint / "state.json").read_text(encoding="utf-8"))
            if (
                self.state.get("version") != CHECKPOINT_VERSION
                or self.state.get("base_url") != self.client.base_url
            ):
                raise PullError(
                    f"--resume: {self.checkpoint} is a pull from {self.state.get('base_url')!r}, "
                    f"not {self.client.base_url!r}; run without --resume to start again"
                )
            done = sum(o["count"] for o in self.state["progress"].values())
            self.progress(f"resuming: {done} record(s) already pulled")
            return
        if self.o.resume:
            self.progress(f"--resume: no interrupted pull in {out}; starting from the beginning")
        if self.checkpoint.exists():
            shutil.rmtree(self.checkpoint)
        self.state = {"version": CHECKPOINT_VERSION, "base_url": self.client.base_url, "progress": {}}

    def _save(self) -> None:
        self.checkpoint.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint / "state.json.tmp"
        tmp.write_text(json.dumps(self.state), encoding="utf-8")
        os.replace(tmp, self.checkpoint / "state.json")

    # --- the pull ---------------------------------------------------------------------------

    def run(self) -> PullResult:
        self._start()
        objects = self._schema()
        if self.o.anonymise:
            from .anonymise import AnonymiseError, plan

            try:
                plan(objects, self.o.keep)  # a --keep typo stops the pull before it starts
            except AnonymiseError as exc:
                raise PullError(str(exc)) from None
        by_id = {o["id"]: o for o in objects}
        records: dict[str, list[dict[str, Any]]] = {}
        for obj in objects:
            if obj["id"] in self.state["selected"]:
                records[obj["id"]] = self._records(obj)
            else:
                records[obj["id"]] = []
        self._referenced(by_id, records)
        changed: list[str] = []
        kept: list[str] = []
        if self.o.anonymise:
            from .anonymise import anonymise

            seed = self.o.seed if self.o.seed is not None else int.from_bytes(os.urandom(8), "big")
            records, changes, kept = anonymise(objects, records, seed, self.o.keep)
            changed = [c.describe() for c in changes]
        users = user_ids(objects, records)
        admin = next(
            a for n in range(1000) if (a := "user_local_admin" + (f"_{n}" if n else "")) not in users
        )
        files = write_fixture_set(
            self.o.out,
            [_fixture_object(o) for o in objects],
            [
                {"id": admin, "name": "Local admin", "email": "local-admin@example.invalid", "admin": True},
                *(
                    {"id": u, "name": f"User {i}", "email": f"user{i}@example.invalid", "admin": False}
                    for i, u in enumerate(users, 1)
                ),
            ],
            [
                {
                    "key": DEFAULT_API_KEY,
                    "name": "Local admin key (made by kantos-mock pull)",
                    "type": "server",
                    "user": admin,
                    "plan": "enterprise",
                    "per_minute": 100_000,
                    "per_day": 10_000_000,
                }
            ],
            records,
            record_format=self.o.record_format,
            comment=COMMENT,
        )
        shutil.rmtree(self.checkpoint, ignore_errors=True)
        return PullResult(objects, records, users, admin, files, changed, kept, self.client.stats)

    def _schema(self) -> list[dict[str, Any]]:
        if "objects" in self.state:
            return list(self.state["objects"])
        listing = self.client.get("/api/crm/objects")
        summaries = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(summaries, list):
            raise PullError('GET /api/crm/objects: expected {"data": [...]}')
        ids = [str(s["id"]) for s in summaries if isinstance(s, dict) and "id" in s]
        slugs = {str(s.get("slug")): str(s["id"]) for s in summaries if isinstance(s, dict) and "id" in s}
        wanted = ids
        if self.o.objects:
            unknown = [w for w in self.o.objects if w not in ids and w not in slugs]
            if unknown:
                raise PullError(
                    f"--objects: no object {', '.join(unknown)} on the server; it has {', '.join(ids)}"
                )
            wanted = [slugs.get(w, w) for w in self.o.objects]
        docs: dict[str, dict[str, Any]] = {}
        queue = list(wanted)
        while queue:  # the objects asked for, and every object their references point at
            oid = queue.pop(0)
            if oid in docs:
                continue
            doc = self.client.get(f"/api/crm/objects/{oid}")
            if not isinstance(doc, dict) or not isinstance(doc.get("fields"), list):
                raise PullError(f"GET /api/crm/objects/{oid}: expected an object with its fields")
            docs[oid] = doc
            for f in doc["fields"]:
                target = (f.get("options") or {}).get("object_id") if f.get("type") == "reference" else None
                if isinstance(target, str) and target not in docs:
                    queue.append(target)
        extra = sorted(set(docs) - set(wanted))
        if extra:
            self.progress(f"objects: also {', '.join(extra)} (referenced), with the records referenced only")
        objects = [docs[i] for i in ids if i in docs] + [docs[i] for i in docs if i not in ids]
        self.state["objects"] = objects
        self.state["selected"] = wanted
        self._save()
        self.progress(f"objects: {len(objects)} ({', '.join(o['id'] for o in objects)})")
        return objects

    def _records(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        oid = obj["id"]
        progress = self.state["progress"].setdefault(oid, {"next_page": 1, "count": 0, "done": False})
        path = self.checkpoint / f"{_safe(oid)}.jsonl"
        pulled = _read_jsonl(path)
        if len(pulled) != progress["count"]:  # lines written after the last checkpoint go
            del pulled[progress["count"] :]
            path.write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pulled), encoding="utf-8"
            )
        seen = {r["id"] for r in pulled}
        limit = self.o.limit
        started = shown = time.monotonic()
        while not progress["done"]:
            page = progress["next_page"]
            body = self.client.get(
                "/api/crm/records/query", {"object_id": oid, "per_page": PER_PAGE, "page": page}
            )
            data = body.get("data") if isinstance(body, dict) else None
            pagination = body.get("pagination") if isinstance(body, dict) else None
            if not isinstance(data, list) or not isinstance(pagination, dict):
                raise PullError(f'records of {oid}, page {page}: expected {{"data", "pagination"}}')
            total = int(pagination.get("total") or 0)
            new = [r for r in data if isinstance(r, dict) and r.get("id") not in seen]
            if limit is not None:
                new = new[: max(limit - len(pulled), 0)]
            with path.open("a", encoding="utf-8") as fh:
                for r in new:
                    fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            pulled += new
            seen.update(r["id"] for r in new)
            last = page >= int(pagination.get("total_pages") or 0) or not data
            progress.update(
                next_page=page + 1,
                count=len(pulled),
                done=last or (limit is not None and len(pulled) >= limit),
            )
            self._save()
            now = time.monotonic()
            if progress["done"] or now - shown >= 1.0:
                shown = now
                rate = len(pulled) / max(now - started, 1e-6)
                self.progress(f"{oid}: {len(pulled)}/{min(total, limit or total)} records ({rate:,.0f}/s)")
        return pulled

    def _referenced(
        self, objects: dict[str, dict[str, Any]], records: dict[str, list[dict[str, Any]]]
    ) -> None:
        """Fetch, one by one, the records that pulled records reference but the pull left out
        (beyond `--limit`, or of objects not in `--objects`), until every reference holds."""
        have = {oid: {r["id"] for r in recs} for oid in objects for recs in [records.get(oid, [])]}
        refs = {
            oid: [
                (str(f["slug"]), str((f.get("options") or {}).get("object_id")))
                for f in obj["fields"]
                if f.get("type") == "reference"
            ]
            for oid, obj in objects.items()
        }
        todo = [(oid, r) for oid, recs in records.items() for r in recs]
        fetched = 0
        while todo:
            missing: dict[str, set[str]] = {}
            for oid, rec in todo:
                values = rec.get("field_values") or {}
                for slug, target in refs.get(oid, ()):
                    value = values.get(slug)
                    if isinstance(value, str) and value and value not in have.get(target, ()):
                        missing.setdefault(target, set()).add(value)
            todo = []
            for target, ids in sorted(missing.items()):
                for rid in sorted(ids):
                    rec = self.client.get(f"/api/crm/record/{rid}")
                    records.setdefault(target, []).append(rec)
                    have.setdefault(target, set()).add(rid)
                    todo.append((target, rec))
                    fetched += 1
        if fetched:
            self.progress(f"references: {fetched} more record(s) fetched so that every reference holds")
        for recs in records.values():  # the source's default order: created_at, then id
            recs.sort(key=lambda r: (_instant(r["created_at"]), r["id"]))


def _instant(stamp: str) -> int:
    return parse_datetime_us(stamp) or 0


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            break  # a line cut short by an interruption: it and what follows are pulled again
    return out


def _fixture_object(doc: dict[str, Any]) -> dict[str, Any]:
    """An object as `GET /api/crm/objects/{id}` gives it, in the form of objects.yaml."""
    out: dict[str, Any] = {"id": doc["id"], "name": doc["name"], "slug": doc["slug"]}
    if isinstance(doc.get("icon"), str):
        out["icon"] = doc["icon"]
    fields = []
    for f in sorted(doc["fields"], key=lambda f: (f.get("position", 0), f.get("slug", ""))):
        item: dict[str, Any] = {
            "id": f["id"],
            "name": f["name"],
            "slug": f["slug"],
            "type": f["type"],
            "required": bool(f.get("required", False)),
            "unique": bool(f.get("unique", False)),
        }
        if f.get("options") is not None:
            item["options"] = f["options"]
        if f.get("default_value") is not None:
            item["default_value"] = f["default_value"]
        fields.append(item)
    out["fields"] = fields
    return out


def user_ids(objects: Iterable[dict[str, Any]], records: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Every user the records name: as `created_by` or as the value of a user field."""
    user_fields = {
        o["id"]: [f["slug"] for f in o["fields"] if f.get("type") == FieldType.USER] for o in objects
    }
    found: set[str] = set()
    for oid, recs in records.items():
        slugs = user_fields.get(oid, [])
        for r in recs:
            found.add(r["created_by"])
            values = r.get("field_values") or {}
            found.update(values[s] for s in slugs if isinstance(values.get(s), str) and values[s])
    return sorted(found)


# --- command line ---------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--base-url", required=True, help="the source server's base URL, e.g. https://kantos.example"
    )
    p.add_argument(
        "--api-key",
        default=os.environ.get("KANTOS_API_KEY"),
        help="a server API key of the source (default: $KANTOS_API_KEY); the pull only reads",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="the fixture folder to write (new or a fixture set)"
    )
    p.add_argument(
        "--format",
        dest="record_format",
        choices=RECORD_FORMATS,
        default="yaml",
        help="records files (default yaml)",
    )
    p.add_argument("--objects", metavar="ID,...", help="only these objects (ids or slugs, comma-separated)")
    p.add_argument(
        "--limit", type=int, metavar="N", help="at most N records per object (plus any referenced)"
    )
    p.add_argument(
        "--resume", action="store_true", help="go on from where an interrupted pull into DIR stopped"
    )
    p.add_argument(
        "--anonymise",
        "--anonymize",
        action="store_true",
        help="replace names, emails, phones, urls, images and free text with fakes (needs Faker)",
    )
    p.add_argument(
        "--seed", type=int, help="seed for --anonymise: the same source and seed give the same files"
    )
    p.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="FIELD",
        help="with --anonymise, leave FIELD (slug or object_slug.slug) as it is; repeatable",
    )
    p.add_argument(
        "--max-wait",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="the longest Retry-After to wait for; longer stops the pull, resumable (default 900)",
    )
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for each response (default 30)"
    )


def run_from_args(ns: argparse.Namespace) -> int:
    def err(message: str) -> int:
        print(f"kantos-mock pull: error: {message}", file=sys.stderr)
        return EXIT_USAGE

    if not ns.api_key:
        return err("--api-key is required (or set KANTOS_API_KEY)")
    if ns.limit is not None and ns.limit < 1:
        return err(f"--limit: expected a positive number of records, got {ns.limit}")
    if (ns.keep or ns.seed is not None) and not ns.anonymise:
        return err("--keep and --seed go with --anonymise")
    if ns.anonymise:
        from .anonymise import INSTALL_HINT, faker_available

        if not faker_available():
            return err(INSTALL_HINT)
    options = PullOptions(
        base_url=ns.base_url,
        api_key=ns.api_key,
        out=Path(ns.out),
        objects=[o.strip() for o in ns.objects.split(",") if o.strip()] if ns.objects else None,
        limit=ns.limit,
        record_format=ns.record_format,
        resume=ns.resume,
        anonymise=ns.anonymise,
        seed=ns.seed,
        keep=[k for item in ns.keep for k in item.split(",")],
        max_wait=ns.max_wait,
        timeout=ns.timeout,
    )
    return pull(options)


def pull(
    options: PullOptions,
    *,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Run a pull, with progress and the summary on stderr; returns the exit status."""

    def say(message: str) -> None:
        print(f"pull: {message}", file=sys.stderr, flush=True)

    client = SourceClient(
        options.base_url,
        options.api_key,
        timeout=options.timeout,
        max_wait=options.max_wait,
        sleep=sleep,
        notify=say,
        transport=transport,
    )
    try:
        result = Puller(options, client, say).run()
    except PullError as exc:
        say(f"stopped: {exc}")
        if exc.resumable:
            say("run the same command with --resume to go on from where it stopped")
            return EXIT_INTERRUPTED
        return EXIT_FAILED
    except KeyboardInterrupt:
        say("interrupted: run the same command with --resume to go on from where it stopped")
        return EXIT_INTERRUPTED
    except ImportError as exc:
        if getattr(exc, "name", None) != "faker":
            raise
        say(INSTALL_HINT)
        return EXIT_USAGE
    finally:
        client.close()
    return _summary(options, result, say)


def _summary(options: PullOptions, result: PullResult, say: Callable[[str], None]) -> int:
    stats = result.stats
    elapsed = time.monotonic() - stats.started
    total = sum(len(r) for r in result.records.values())
    say(
        f"done: {len(result.objects)} object(s), {total} record(s), {len(result.users)} user(s) "
        f"in {elapsed:.1f} s; {stats.requests} request(s), {stats.rate_limited} rate-limited, "
        f"{stats.waited:.1f} s waited for the rate limit"
    )
    for obj in result.objects:
        say(f"  {obj['id']}: {len(result.records.get(obj['id'], []))} record(s)")
    if options.anonymise:
        say(f"anonymised {len(result.changed)} field(s):")
        for line in result.changed:
            say(f"  {line}")
        for k in result.kept:
            say(f"  kept as it is: {k}")
    say(f"wrote {options.out} ({len(result.files)} files)")
    try:
        load_fixtures(options.out)
    except FixtureError as exc:
        say(f"the folder does not pass check-fixtures: {exc}")
        return EXIT_FAILED
    say(f"serve it:  kantos-mock serve --fixtures {options.out}")
    say(
        f"API key:   {DEFAULT_API_KEY} (user {result.admin_user}, admin; "
        "the source's users have placeholder names)"
    )
    return EXIT_OK
