"""`python -m mockserver`: the same as `kantos-mock` (serve by default)."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
