"""Every relative link in README.md and docs/ resolves: the file exists and, for a link into a
Markdown page, the anchor is one of its headings (GitHub's slugs).

External links are not fetched: CI runs on a closed network, and a check that depends on other
people's servers would fail for reasons outside the project.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.markdown import anchors, links, slug

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with the anchor #{anchor}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_every_docs_page_is_linked_from_the_readme_or_another_page() -> None:
    linked = set()
    for page in PAGES:
        for target in links(page):
            path_part = target.partition("#")[0]
            if path_part and not re.match(r"^[a-z][a-z0-9+.-]*:", path_part):
                linked.add((page.parent / path_part).resolve())
    orphans = [str(p.relative_to(ROOT)) for p in PAGES[1:] if p.resolve() not in linked]
    assert orphans == []


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Quick start", "quick-start"),
        (
            "Memory under a stalled endpoint (`bench/bench_memory.py`)",
            "memory-under-a-stalled-endpoint-benchbench_memorypy",
        ),
        ("ForwarderEndpointDown", "forwarderendpointdown"),
        (
            "Kafka errors, a slow rebalance, the memory bound",
            "kafka-errors-a-slow-rebalance-the-memory-bound",
        ),
        ("At least once — same `uuid`", "at-least-once--same-uuid"),
    ],
)
def test_slug_follows_githubs_rules(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_a_broken_link_and_a_missing_anchor_are_both_reported(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## A section\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-section) [gone](missing.md) [anchor](other.md#no-such)\n"
        "```\n[in code](nowhere.md)\n```\n[web](https://example.com/x)\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#no-such: no heading with the anchor #no-such",
    ]
