"""The test kit's own promises, which every other test leans on."""

from __future__ import annotations

import pytest

from testkit.processes import ProcessExited, eventually


def test_eventually_gives_up_at_once_when_the_process_is_gone() -> None:
    """A crashed server is reported as what it is, on the first poll, not as a time-out."""
    calls = []

    def check() -> bool:
        calls.append(1)
        raise ProcessExited("restate-server exited")

    with pytest.raises(ProcessExited, match="restate-server exited"):
        eventually(check, timeout=5, what="a server that crashed")
    assert len(calls) == 1


def test_eventually_polls_through_other_errors_and_names_the_last() -> None:
    answers: list[object] = [ConnectionError("refused"), None, 0, "up"]

    def check() -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert eventually(check, timeout=60, what="a server starting", interval=0) == "up"

    def refused() -> bool:
        raise ConnectionError("refused")

    with pytest.raises(TimeoutError, match=r"a port.*ConnectionError: refused"):
        eventually(refused, timeout=0, what="a port")
