"""What the local node counts as its own on the host: fixed paths other tools share (podman's
CNI networks under /var/lib/cni, Docker's containerd under /run/containerd) that existed before
it started are not leftovers of the node. Unit test of the record; the node's own start and
stop on a host with such a path are exercised by the e2e suite."""

from __future__ import annotations

from pathlib import Path

from localcluster import hoststate


def test_paths_there_before_the_node_are_not_its_leftovers(tmp_path: Path) -> None:
    shared, ours = tmp_path / "cni", tmp_path / "kubelet"
    shared.mkdir()
    record = tmp_path / "record.json"
    hoststate.record_paths(record, [shared, ours])
    ours.mkdir()  # the node creates its own
    hoststate.record_paths(record, [shared, ours])  # a second start keeps the first record
    assert hoststate.recorded_paths(record, [shared, ours]) == {shared}


def test_without_a_record_no_node_ran_since_a_clean_stop(tmp_path: Path) -> None:
    present, absent = tmp_path / "cni", tmp_path / "kubelet"
    present.mkdir()
    assert hoststate.recorded_paths(tmp_path / "none.json", [present, absent]) == {present}
