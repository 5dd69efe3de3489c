"""The documentation: the site builds strictly, the README's Python example runs as written, the README stays
short and every relative link in it and in docs/ points to a file of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# [text](target) and ![alt](target); a target may carry a "title".
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _links(path: Path) -> list[str]:
    text = _FENCE.sub("", path.read_text())  # links inside code blocks are not links
    text = re.sub(r"`[^`\n]*`", "", text)
    return _LINK.findall(text)


def _relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) and not target.startswith("#")


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= 160, f"README.md has {n} lines; the rest belongs in docs/"


@pytest.mark.parametrize("page", [README] + sorted(DOCS.glob("*.md")) + sorted(DOCS.glob("*/*.md")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files(page):
    missing = []
    for target in _links(page):
        if not _relative(target):
            continue
        file = (page.parent / target.split("#", 1)[0]).resolve()
        if not file.exists():
            missing.append(target)
        elif not file.is_relative_to(ROOT):
            missing.append(f"{target} (outside the repository)")
    assert not missing, f"{page.relative_to(ROOT)}: links to missing files: {missing}"


def test_the_link_checker_sees_links(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("[a](docs/x.md#y) ![b](img.png) [c](https://e.org) `[d](not.md)`\n```\n[e](no.md)\n```\n")
    assert [t for t in _links(page) if _relative(t)] == ["docs/x.md#y", "img.png"]


def test_readme_python_example_runs(tmp_path):
    blocks = _python_blocks(README)
    assert len(blocks) == 1, f"README.md should hold one python block, found {len(blocks)}"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=1800)
    assert run.returncode == 0, f"the README's example failed:\n{run.stderr[-3000:]}"
    assert (tmp_path / "astronaut.avatar" / "avatar.json").is_file()
    assert (tmp_path / "turned.png").is_file() and (tmp_path / "astronaut.ply").is_file()


def test_docs_build_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="MkDocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed (pip install -e '.[docs]')")
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    cmd = [mkdocs] if mkdocs else [sys.executable, "-m", "mkdocs"]
    site = tmp_path / "site"
    run = subprocess.run(cmd + ["build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    assert (site / "index.html").is_file()
    assert (site / "api" / "api" / "index.html").is_file()
