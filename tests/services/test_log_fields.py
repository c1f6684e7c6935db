"""A step's "stub executed" JSON line, as `@stub` writes it through `logging`: the fields in a
fixed order (time, level, logger, message, pid, then the extra fields sorted), the invocation
and the step's journal entry while a handler runs, and no field whose value is None (a line
written outside a handler has no `invocation_id`, a step that returned None no `result`)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio
    from examples_runtime import logs
    from examples_runtime.stubs import stub

    @stub()
    def create_subscription(user_id: str, subscription: str) -> str | None:
        return "SUCCESS" if subscription else None

    logs.configure_logging("INFO", "json")
    logs.invocation_id.set("inv_1abc")
    logs.attempt.set(logs.new_attempt())
    logs.run_name.set("create Netflix")
    asyncio.run(create_subscription("Sam", "Netflix"))
    logs.invocation_id.set(None)
    logs.attempt.set(None)
    logs.run_name.set(None)
    asyncio.run(create_subscription("Sam", subscription=""))
    """
)


def test_a_step_line_has_its_fields_in_order_and_none_left_out() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [json.loads(line) for line in run.stderr.splitlines()]
    assert len(lines) == 2, run.stderr
    inside, outside = lines
    head = ["time", "level", "logger", "message", "pid"]
    assert list(inside) == [*head, "attempt", "invocation_id", "result", "run", "step", "stub_args"]
    assert inside["level"] == "INFO" and inside["logger"] == "examples.stubs"
    assert inside["message"] == "stub executed"
    assert inside["invocation_id"] == "inv_1abc" and inside["run"] == "create Netflix"
    assert inside["attempt"].split(".")[0] == str(inside["pid"])
    assert inside["step"] == "create_subscription" and inside["stub_args"] == ["Sam", "Netflix"]
    assert inside["result"] == "SUCCESS"
    # Outside a handler, and for a step that returned None: those fields are not written.
    assert list(outside) == [*head, "step", "stub_args"], outside
    assert outside["stub_args"] == ["Sam", ""]
