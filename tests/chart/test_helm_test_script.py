"""`helm test`'s script, taken from the rendered test pod and run as the pod runs it, against a
real restate-server with the four examples registered (the `suite` fixture)."""

from __future__ import annotations

import os
import subprocess
import sys

from chart.chartkit import Helm, of_kind

from testkit.restate import Suite


def test_the_helm_test_script_passes_against_restate(helm: Helm, suite: Suite) -> None:
    (pod,) = of_kind(helm.template(), "Pod")
    (container,) = pod["spec"]["containers"]
    assert container["command"][:2] == ["python", "-c"]
    (ingress,) = [e for e in container["env"] if e["name"] == "INGRESS"]
    assert ingress["value"].startswith("http://")  # the pod's own value points into the cluster
    proc = subprocess.run(
        [sys.executable, "-c", container["command"][2]],
        env={**os.environ, "INGRESS": suite.server.ingress_url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all four examples answered through the Restate ingress" in proc.stdout
