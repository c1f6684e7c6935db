"""`logs.info`, the path of every step's "stub executed" line, writes the very line
`logger.info` writes (same fields, same order), and still goes through `logging` whenever
something else listens (another handler, a filter), so nothing that reads records misses it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import logging
    from examples_runtime import logs

    logs.configure_logging("INFO", "json")
    logger = logging.getLogger("examples.stubs")
    logs.invocation_id.set("inv_1abc")
    call = {"step": "create_subscription", "stub_args": ["Sam", "Netflix", None, 3]}
    logger.info("stub executed", extra={**call, "result": "SUCCESS"})
    logs.info(logger, "stub executed", {**call, "result": "SUCCESS"})
    logs.invocation_id.set(None)
    logs.info(logger, "stub executed", {**call, "result": None})
    logger.info("stub executed", extra={**call, "result": None})
    logging.getLogger().setLevel("WARNING")
    logs.info(logger, "not written", {})
    """
)


def test_the_fast_line_is_the_line_logger_info_writes() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = run.stderr.splitlines()
    assert len(lines) == 4, run.stderr
    records = [json.loads(line) for line in lines]
    for record in records:
        del record["time"]
    # The same keys in the same order (the extra fields sorted), the same values.
    assert list(records[1].items()) == list(records[0].items())
    assert records[0]["invocation_id"] == "inv_1abc"
    assert list(records[2].items()) == list(records[3].items())
    assert "invocation_id" not in records[2] and "result" not in records[2]


COLLECT = textwrap.dedent(
    """
    import logging
    from examples_runtime import logs

    class Collect(logging.Handler):
        def emit(self, record):
            print(record.getMessage(), getattr(record, "step", None))

    logs.configure_logging("INFO", "json")
    logger = logging.getLogger("examples.stubs")
    collect = Collect()
    logging.getLogger().addHandler(collect)  # as pytest's capture or a log shipper would
    logs.info(logger, "stub executed", {"step": "root handler"})
    logging.getLogger().removeHandler(collect)
    logging.getLogger("examples").addHandler(collect)
    logs.info(logger, "stub executed", {"step": "parent handler"})
    logging.getLogger("examples").removeHandler(collect)
    logger.addFilter(lambda record: False)
    logs.info(logger, "stub executed", {"step": "filtered"})
    """
)


def test_another_handler_or_a_filter_still_sees_the_record() -> None:
    run = subprocess.run(
        [sys.executable, "-c", COLLECT], capture_output=True, text=True, timeout=60, check=True
    )
    assert run.stdout.splitlines() == ["stub executed root handler", "stub executed parent handler"]
    # The JSON line is written in both cases (the JSON handler is still on the root), and
    # the filtered record nowhere.
    steps = [json.loads(line)["step"] for line in run.stderr.splitlines()]
    assert steps == ["root handler", "parent handler"]
