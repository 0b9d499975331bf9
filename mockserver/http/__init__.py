"""The Starlette app: the gate (auth, limits), spec-driven routes, thin handlers, error table."""
