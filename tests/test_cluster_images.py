"""A test's own image reaches a cluster the way the cluster's images do (``ClusterImages``).

The rollout tests build their incompatible image FROM the example's image with the cluster's
engine, save it as a docker-archive and import that into the nodes' image store (kind:
``kind load image-archive``; the local node: containerd). Here, with the engine this machine
has (podman, in a throwaway storage), the same code builds a base and an image FROM it, and the
archive is imported into a second throwaway store standing for a node's: the reference and
both layers' files must be there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plugins.real_cluster import ClusterImages, ImageEngine, by_archive, run

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None, reason="needs podman (make node-packages installs it)"
)


def podman_store(root: Path) -> ImageEngine:
    """podman with its own storage and configuration under ``root`` (nothing global)."""
    root.mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{root}/storage"\nrunroot = "{root}/run"\n'
    )
    (root / "containers.conf").write_text(
        f'[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        f'tmp_dir = "{root}/tmp"\n'
    )
    return ImageEngine(
        "podman",
        {
            **os.environ,
            "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
            "CONTAINERS_CONF": str(root / "containers.conf"),
            "TMPDIR": str(root / "tmp"),
        },
    )


def read_file(engine: ImageEngine, ref: str, path: str, out: Path) -> str:
    container = run([engine.command, "create", ref, "/none"], env=engine.env).stdout.strip()
    try:
        run([engine.command, "cp", f"{container}:{path}", str(out)], env=engine.env)
    finally:
        run([engine.command, "rm", container], env=engine.env, check=False)
    return out.read_text()


def context(path: Path, dockerfile: str, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    (path / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Callable[[str], ImageEngine]]:
    """Throwaway podman stores. Run without root, podman starts a pause process (holding its
    user namespace) per store's tmp_dir, which outlives the command: stopped with the store."""
    roots: list[Path] = []

    def make(name: str) -> ImageEngine:
        roots.append(tmp_path / name)
        return podman_store(tmp_path / name)

    yield make
    for root in roots:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((root / "tmp" / "pause.pid").read_text()), signal.SIGKILL)


def test_an_image_built_from_the_clusters_image_reaches_its_nodes(
    tmp_path: Path, stores: Callable[[str], ImageEngine]
) -> None:
    engine = stores("engine")
    node = stores("node")  # stands for the nodes' image store
    loaded: list[Path] = []

    def load(archive: Path) -> None:
        loaded.append(archive)
        run([node.command, "load", "--input", str(archive)], env=node.env)

    deliver: Callable[[str, Path], None] = by_archive(engine, load)
    images = ClusterImages(engine, "", "e2e", deliver)  # kind's naming: bare, tag e2e
    base = images.add(
        context(tmp_path / "base", "FROM scratch\nCOPY v1 /v1\n", {"v1": "the example\n"}),
        "signup-workflow",
        images.tag,
        tmp_path / "work",
    )
    assert base == "restate-examples-signup-workflow:e2e"
    patched = context(
        tmp_path / "incompatible",
        f"FROM {images.ref('signup-workflow')}\nCOPY v2 /v2\n",
        {"v2": "the patch\n"},
    )
    ref = images.add(patched, "signup-workflow", "incompatible", tmp_path / "work")
    assert ref == "restate-examples-signup-workflow:incompatible"

    assert len(loaded) == 2 and not any(a.exists() for a in loaded)  # archives cleaned up
    listed = run([node.command, "images", "--format", "{{.Repository}}:{{.Tag}}"], env=node.env)
    assert f"localhost/{ref}" in listed.stdout.split() or ref in listed.stdout, listed.stdout
    assert read_file(node, ref, "/v1", tmp_path / "v1") == "the example\n"
    assert read_file(node, ref, "/v2", tmp_path / "v2") == "the patch\n"
