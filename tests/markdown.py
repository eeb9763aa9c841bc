"""Markdown as GitHub renders it, for the tests that check links and anchors."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

_FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_HTML_ID = re.compile(r"""<a\s+(?:id|name)=["']([^"']+)["']""")


def prose(text: str) -> str:
    """The page without its code blocks, where a `[x](y)` is code, not a link."""
    return _FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, spaces to hyphens, and
    every character that is not a letter, a digit, a hyphen or an underscore removed."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.lower().strip()
    kept = []
    for char in text:
        if char == " ":
            kept.append("-")
        elif char in "-_" or unicodedata.category(char)[0] in "LN":
            kept.append(char)
    return "".join(kept)


def anchors(page: Path) -> set[str]:
    """Every anchor a link into ``page`` may name: its headings' slugs (a repeated one with
    ``-1``, ``-2``...) and explicit ``<a id>``s."""
    text = prose(page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set(_HTML_ID.findall(text))
    for heading in _HEADING.findall(text):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    """The targets of the page's links and images, outside code."""
    return _LINK.findall(_INLINE_CODE.sub("", prose(page.read_text(encoding="utf-8"))))
