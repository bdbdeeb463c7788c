"""The README, the benchmarks' index and the pages of docs/ link only to files that exist (relative links: the
code host renders them as they are, so a moved file must take its links along)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: [text](target) and ![alt](target), the target up to a space, ")" or "#"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s#]*)(#[^)\s]*)?(?:\s+\"[^\"]*\")?\)")


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return [m.group(1) for m in LINK.finditer(text)
            if m.group(1) and not re.match(r"[a-z][a-z0-9+.-]*:", m.group(1))]


def test_the_docs_have_pages_with_links():
    assert len(PAGES) >= 9  # the README and docs/index.md, user-guide.md, ...
    assert all(relative_links(page) for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_at_a_file(page):
    missing = [link for link in relative_links(page) if not (page.parent / link).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_the_link_pattern_finds_links_and_leaves_urls_alone(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](a.md) ![b](img/b.png) [c](c.md#part) [d](https://napari.org) "
                    "[e](#here)\n```\n[f](inside-code.md)\n```\n")
    assert relative_links(page) == ["a.md", "img/b.png", "c.md"]
