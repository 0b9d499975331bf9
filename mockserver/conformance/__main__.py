"""`python -m mockserver.conformance --base-url URL --api-key KEY`: the kit from the command line."""

from __future__ import annotations

import sys

from .command import main

sys.exit(main())
