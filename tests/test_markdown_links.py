"""Every relative link of every Markdown file of the repository resolves: the file exists and
its ``#anchor`` is a heading of it (GitHub's anchors); and the README stays a guide."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from testkit.restate import REPO

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "--", "*.md"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [REPO / p for p in out.splitlines() if (REPO / p).exists()]


def prose(path: Path) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces to -."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(path):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken(path: Path) -> list[str]:
    bad = []
    for line in prose(path):
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / unquote(file_part)).resolve() if file_part else path
            if not dest.exists():
                bad.append(f"{target}: no file {dest}")
            elif anchor and dest.is_file() and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append(f"{target}: no heading #{anchor} in {dest}")
    return bad


FILES = markdown_files()


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(REPO)) for p in FILES])
def test_relative_links_resolve(path: Path) -> None:
    assert broken(path) == []


def test_the_checker_sees_a_broken_file_and_anchor(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A `b` title\n\n## Two: words\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[ok](a.md#a-b-title) [ok](a.md#two-words) [ok](#x)\n# x\n"
        "[gone](missing.md) [no anchor](a.md#nope)\n```\n[in code](missing2.md)\n```\n"
    )
    assert [b.split(":")[0] for b in broken(doc)] == ["missing.md", "a.md#nope"]


def test_readme_is_a_guide() -> None:
    readme = (REPO / "README.md").read_text().splitlines()
    assert len(readme) <= 200, len(readme)
    headings = [line for line in readme if line.startswith("## ")]
    for section in ("## Two commands", "## The four examples", "## Kubernetes"):
        assert section in headings, headings
