"""A `@stub` step is counted whatever the log level (the "stub executed" line is left out when
the level is above INFO, its execution is not), and a JSON line's `time` is the record's UTC
time to the millisecond."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest

from examples_runtime.logs import JsonFormatter

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from examples_runtime import logs
    from examples_runtime.metrics import STUB_EXECUTIONS
    from examples_runtime.stubs import stub

    @stub()
    def create_subscription(user_id: str, subscription: str) -> str:
        return "SUCCESS"

    logs.configure_logging(sys.argv[1], "json")
    asyncio.run(create_subscription("Sam", "Netflix"))
    asyncio.run(create_subscription("Sam", subscription="Disney+"))
    print(STUB_EXECUTIONS.labels(step="create_subscription", outcome="success")._value.get())
    """
)


@pytest.mark.parametrize(("level", "lines"), [("INFO", 2), ("WARNING", 0)])
def test_a_stub_is_counted_whatever_the_log_level(level: str, lines: int) -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, level],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert float(run.stdout) == 2.0, run.stdout
    written = [json.loads(line) for line in run.stderr.splitlines()]
    assert [line["message"] for line in written] == ["stub executed"] * lines, run.stderr
    if lines:
        assert [line["stub_args"] for line in written] == [["Sam", "Netflix"], ["Sam", "Disney+"]]


@pytest.mark.parametrize("created", [1764638580.0, 1764638580.123456, 1764638580.5, 1764638639.98])
def test_a_lines_time_is_the_records_utc_time_in_milliseconds(created: float) -> None:
    record = logging.makeLogRecord({"msg": "stub executed", "levelname": "INFO"})
    record.created = created
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert json.loads(JsonFormatter().format(record))["time"] == expected
