"""Structured logs: one JSON object a line, carrying the Restate invocation id when there is one.

Every record names the process that wrote it (`pid`); one written while a handler runs also
names the invocation (`invocation_id`) and the attempt (`attempt`: `<pid>.<n>`, one per HTTP
stream Restate opened to run the handler, so a retry has a new one), and one written inside a
step (`ctx.run`) the step's name in Restate's journal (`run`). A reader of the logs can then
match a side effect to the journal entry that records it, and to the attempt that did it.

Every `@stub` step writes a line, so the path of one record is kept short: no caller lookup
(`logging._srcfile`; no formatter prints it), the timestamp's second formatted once a second,
orjson instead of `json`, and one `write(2)` of the encoded line instead of a text stream's
write and flush. Each line is still written before the call returns (nothing buffered: an
injected crash must not lose the lines before it).
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import sys
import time
from typing import IO, Any

import orjson

# Set by the handler wrapper for the duration of each handler attempt.
invocation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "invocation_id", default=None
)
attempt: contextvars.ContextVar[str | None] = contextvars.ContextVar("attempt", default=None)
# Set by the handler wrapper around each step's action: the step's name in the journal.
run_name: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_name", default=None)

_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# Types `json.dumps(default=str)` wrote with str(): orjson would write them its own way.
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_APPEND_NEWLINE
)


class _Pid:
    """This process's id, read once and again in a forked child (the workers' supervisor
    forks): every record carries it, so a step's log line names the process that ran it."""

    value = os.getpid()

    @classmethod
    def refresh(cls) -> None:
        cls.value = os.getpid()


os.register_at_fork(after_in_child=_Pid.refresh)

_attempts = itertools.count(1)


def new_attempt() -> str:
    """A new attempt's id, `<pid>.<n>`: unique among this process's attempts, and names it."""
    return f"{_Pid.value}.{next(_attempts)}"


class _InvocationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # The fields every line written while a handler runs carries, set one by one (no dict
        # made for each record).
        fields = record.__dict__
        fields["invocation_id"] = invocation_id.get()
        fields["attempt"] = attempt.get()
        fields["run"] = run_name.get()
        return True


# `.123+00:00` for each millisecond: a look-up instead of formatting a number for each record.
_MILLISECONDS = tuple(f".{ms:03d}+00:00" for ms in range(1000))


class _Timestamps:
    """`2026-11-29T16:43:00.123+00:00` (UTC, milliseconds), the second formatted once."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return self._prefix + _MILLISECONDS[int((created - second) * 1000)]


def _str(value: object) -> str:
    return str(value)


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._timestamp = _Timestamps()

    def entry(self, record: logging.LogRecord) -> dict[str, Any]:
        """A line's fields: time, level, logger, message, pid, then the extra fields that are
        not None, sorted."""
        fields = record.__dict__
        entry: dict[str, Any] = {
            "time": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": _Pid.value,
        }
        # The few extra fields (a set difference in C instead of a loop over ~25 attributes).
        for key in sorted(fields.keys() - _STANDARD_ATTRS):
            value = fields[key]
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return entry

    def encode(self, record: logging.LogRecord) -> bytes:
        """The record as one line of JSON, newline included."""
        return self.dump(self.entry(record))

    @staticmethod
    def dump(entry: dict[str, Any]) -> bytes:
        try:
            return orjson.dumps(entry, default=_str, option=_ORJSON_OPTIONS)
        except TypeError:  # what orjson refuses (int too large, non-str keys): as json did
            return (json.dumps(entry, default=str) + "\n").encode()

    def format(self, record: logging.LogRecord) -> str:
        return self.encode(record)[:-1].decode()


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and v}
        fields = " ".join(f"{k}={v}" for k, v in extras.items())
        line = f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        return f"{line}  {fields}" if fields else line


class _JsonLineHandler(logging.StreamHandler[IO[str]]):
    """Writes each JSON line with one `os.write` to the stream's file descriptor (falls back to
    the stream when it has none, as under pytest's capture)."""

    def __init__(self, stream: IO[str], formatter: JsonFormatter) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)
        self._json = formatter
        try:
            self._fd: int | None = stream.fileno()
            stream.flush()
        except (AttributeError, OSError, ValueError):
            self._fd = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._fd is None:
            super().emit(record)
            return
        try:
            self._write(self._json.encode(record))
        except Exception:
            self.handleError(record)

    def _write(self, encoded: bytes) -> None:
        assert self._fd is not None
        line = memoryview(encoded)
        while line:
            line = line[os.write(self._fd, line) :]


def configure_logging(level: str, fmt: str) -> None:
    """Send every log record to stderr, unbuffered, in the chosen format."""
    # No formatter prints the caller's file and line: skip looking them up for every record
    # (the logging HOWTO's "Optimization"). Threads and processes are not printed either.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler: logging.Handler
    if fmt == "json":
        handler = _JsonLineHandler(sys.stderr, JsonFormatter())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(ConsoleFormatter())
    handler.addFilter(_InvocationFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # hypercorn's access log repeats what the handler metrics say; keep its errors.
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)
