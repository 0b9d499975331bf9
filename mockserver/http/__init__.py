"""The HTTP layer: `/api` in pure ASGI (api.py), the gate and control API for the rest, the error table."""
