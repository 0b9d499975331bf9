"""The checking process's entry point: `python -m mockserver.proxy.checkrun FD UPSTREAM SPEC RECORD`."""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection

from .checker import _child

if __name__ == "__main__":
    _child(Connection(int(sys.argv[1])), sys.argv[2], sys.argv[3] or None, sys.argv[4] or None)
