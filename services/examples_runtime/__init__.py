"""Plumbing shared by the four example services, so the examples stay short teaching files.

- `settings`: configuration from environment variables, validated at start.
- `logs`: structured logs that carry the Restate invocation id.
- `metrics`: Prometheus metrics of handlers and stubs.
- `handlers`: input validation (HTTP 400) and instrumentation wrapped around every handler.
- `stubs`: the `@stub` decorator for pretend external systems that fail on purpose.
- `app`: the ASGI app of one service (Restate endpoint plus /healthz, /readyz, /metrics).
- `serve`: runs a service under the configured server (`granian_server`, `hypercorn_server`),
  one process or several (`workers`), with the graceful shutdown of `shutdown` on SIGTERM.
"""
