"""Every JSON log record names the process that wrote it (the soak matches a step's log line
to the death of that very process), in a forked worker too."""

from __future__ import annotations

import json
import logging
import os

from examples_runtime.logs import JsonFormatter


def _line() -> dict[str, object]:
    record = logging.makeLogRecord({"msg": "stub executed", "levelname": "INFO"})
    return dict(json.loads(JsonFormatter().format(record)))


def test_a_record_carries_this_processes_pid_and_a_forked_childs_own() -> None:
    assert _line()["pid"] == os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its record, with its own pid, through the pipe
        try:
            os.write(write, json.dumps({"line": _line(), "pid": os.getpid()}).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = json.loads(pipe.read())
    os.waitpid(child, 0)
    assert answer["line"]["pid"] == answer["pid"] != os.getpid()
