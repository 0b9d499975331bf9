"""What the conformance tests run against, and how: one schemathesis configuration, one target.

- The configuration is `schemathesis.toml` at the repository root, the same file `st run` reads.
  The tests apply only what the environment asks for on top of it:

  | variable | effect |
  |---|---|
  | `KANTOS_BASE_URL` | test that server instead of the in-process mock (e.g. `http://127.0.0.1:8000`) |
  | `KANTOS_API_KEY` | the admin server key to send (default: the bundled `kantos_admin_local_key`) |
  | `KANTOS_FUZZ_EXAMPLES` | examples per operation, and stateful scenarios (default: the file's, 30 and 40) |

- The contract is the bundled `openapi.yaml`, read from disk: a live server is judged against
  the contract, not against whatever spec it serves.
- In process, the target is the mock app with its response self-check on, so any response that
  breaks openapi.yaml fails the test that caused it, whatever schemathesis checks.
"""

from __future__ import annotations

import os
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from kantos_support import SyncASGITransport  # tests/kantos_support.py
from starlette.applications import Starlette

from mockserver import create_app
from mockserver.openapi import bundled_spec_path

ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILE = ROOT / "schemathesis.toml"
HOOKS_FILE = Path(__file__).resolve().with_name("hooks.py")
SPEC_FILE = bundled_spec_path()
DEFAULT_API_KEY = "kantos_admin_local_key"
SEED = 20240115

BASE_URL: str | None = os.environ.get("KANTOS_BASE_URL", "").rstrip("/") or None
API_KEY: str = os.environ.get("KANTOS_API_KEY") or DEFAULT_API_KEY
_budget = os.environ.get("KANTOS_FUZZ_EXAMPLES", "").strip()
FUZZ_EXAMPLES: int | None = int(_budget) if _budget else None


def config_data() -> dict[str, Any]:
    """schemathesis.toml as a dict, with the environment's overrides applied."""
    with CONFIG_FILE.open("rb") as fh:
        data = tomllib.load(fh)
    data["hooks"] = str(HOOKS_FILE)  # the file names it relative to the repository root
    data["auth"]["openapi"]["ApiKeyAuth"]["api_key"] = API_KEY
    if FUZZ_EXAMPLES is not None:
        data["generation"]["max-examples"] = FUZZ_EXAMPLES
        data["phases"]["stateful"]["generation"]["max-examples"] = FUZZ_EXAMPLES
    if BASE_URL is not None:
        data["base-url"] = BASE_URL
    return data


def load_config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(config_data(), base_dir=str(ROOT))


def new_app() -> Starlette:
    """The in-process mock on the bundled fixtures, with the response self-check on."""
    from kantos_strategies import FIXTURES

    return create_app(FIXTURES, seed=SEED, validate_responses=True)


def load_schema(app: Starlette | None) -> Any:
    """The contract as a schemathesis schema, bound to `app` (in process) or to BASE_URL."""
    schema = schemathesis.openapi.from_path(SPEC_FILE, config=load_config())
    if BASE_URL is None:
        assert app is not None
        schema.app = app
    return schema


def target_description() -> str:
    return BASE_URL or "the in-process mock (response self-check on)"


def client(app: Starlette | None = None, api_key: str | None = API_KEY) -> httpx.Client:
    """An httpx client for the target: `app` in process, else BASE_URL."""
    headers = {"X-Api-Key": api_key} if api_key is not None else {}
    if BASE_URL is not None and app is None:
        return httpx.Client(base_url=BASE_URL, headers=headers, timeout=30)
    assert app is not None
    return httpx.Client(transport=SyncASGITransport(app), base_url="http://kantos.test", headers=headers)


# ---------------------------------------------------------------------------- statistics


@dataclass
class Stats:
    """Every request the schemathesis tests sent, by operation, phase, generation mode and status."""

    cases: Counter[tuple[str, str, str, int]] = field(default_factory=Counter)

    def record(self, case: schemathesis.Case, status: int) -> None:
        meta = case.meta
        phase = meta.phase.name.value if meta is not None else "explicit"
        mode = meta.generation.mode.value if meta is not None else "positive"
        self.cases[(case.operation.label, phase, mode, status)] += 1

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def by(self, index: int) -> Counter[Any]:
        out: Counter[Any] = Counter()
        for key, n in self.cases.items():
            out[key[index]] += n
        return out

    def statuses(self, label: str, mode: str) -> Counter[int]:
        out: Counter[int] = Counter()
        for (op, _phase, m, status), n in self.cases.items():
            if op == label and m == mode:
                out[status] += n
        return out


STATS = Stats()
