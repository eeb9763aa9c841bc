"""Finding a JSON object that repeats a member name.

orjson, like most parsers, keeps the last of repeated names. The forwarder validates that last
value but sends the producer's own bytes, so a receiver that keeps the first would store a
value nobody validated; RFC 8259 leaves repeated names to the implementation and I-JSON
(RFC 7493) forbids them. The decoder therefore dead-letters such an event as ``invalid_json``.

The check runs on every event, so it is tiered by cost (2 shared cores, a 300-byte event):

1. Bytes that orjson would write itself for the parsed object (compact, as orjson, Jackson or
   ``JSON.stringify`` write) cannot repeat a name: re-encoding and comparing costs ~0.2 us.
2. Any other layout (``json.dumps``' ``": "``, escaped non-ASCII, pretty-printed) is parsed again
   by jiter, which reports the first repeated name with its position: ~1.5 us.
3. jiter refuses what orjson accepts only past its nesting limit (200 against orjson's 1024);
   then the names are counted exactly: every string token followed by a colon is a name, and
   there are repeats when the text holds more names than the parsed objects have members.
"""

from __future__ import annotations

import re
from typing import Any

import jiter
import orjson

# A JSON string token, and the colon that makes it a member name. Valid JSON (orjson parsed it)
# has quotes only in strings, so scanning from the start meets every token whole.
_STRING_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"([ \t\r\n]*:)?', re.DOTALL)
_JITER_DUPLICATE = "Detected duplicate key"
MAX_DETAIL_CHARS = 300


def repeated_member(value: bytes, event: dict[str, Any]) -> str | None:
    """A detail naming the first repeated member name in ``value``, or None when there is none.

    ``value`` must be the bytes orjson decoded into ``event``.
    """
    if orjson.dumps(event) == value:
        return None
    try:
        jiter.from_json(value, cache_mode="keys", catch_duplicate_keys=True)
    except ValueError as exc:
        message = str(exc)
        if message.startswith(_JITER_DUPLICATE):
            found = message.removeprefix(_JITER_DUPLICATE).strip()
            if len(found) > MAX_DETAIL_CHARS:
                found = found[: MAX_DETAIL_CHARS - 3] + "..."
            return f"a member name repeats in one object: {found}"
        return _counted(value, event)
    return None


def _counted(value: bytes, event: dict[str, Any]) -> str | None:
    tokens = _STRING_TOKEN.findall(value)
    names = len(tokens) - tokens.count(b"")
    members = _members(event)
    if names > members:
        return (
            f"member names repeat: the text has {names} names but its objects hold "
            f"{members} members"
        )
    return None


def _members(root: object) -> int:
    """Members of every object in ``root``, without recursion (orjson allows 1024 levels)."""
    count = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            count += len(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count
