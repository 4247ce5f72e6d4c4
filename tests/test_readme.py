"""The README's Python examples run as written (a changed default or API breaks them here first)."""

from __future__ import annotations

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> dict[str, str]:
    """The README's ```python blocks that are whole programs, by the first line of code."""
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    return {b.strip().splitlines()[0][:60]: b for b in blocks if "check(" in b}


BLOCKS = _blocks()


def test_the_harness_example_is_found():
    assert any("class Square" in b for b in BLOCKS.values())


@pytest.mark.parametrize("name", list(BLOCKS))
def test_readme_example_runs(name):
    namespace: dict = {}
    exec(compile(BLOCKS[name], f"README.md:{name}", "exec"), namespace)  # noqa: S102
    report = namespace["report"]
    assert report.saved_bytes <= report.reference_saved_bytes
    assert "batched-grad" in report.checks and "forward-ad" not in report.checks


def test_readme_links_to_its_own_sections():
    # every in-page link names a heading that exists (GitHub's anchor rule: lower case, spaces to
    # dashes, punctuation dropped)
    text = README.read_text()
    anchors = set()
    for line in text.splitlines():
        if line.startswith("#") and not line.startswith("#!"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links and links <= anchors, sorted(links - anchors)
