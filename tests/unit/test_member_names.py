"""The repeated-member check agrees with a parse that keeps every pair, on every layout."""

from __future__ import annotations

import json

import orjson
from hypothesis import given
from hypothesis import strategies as st

from forwarder.core.member_names import _counted, repeated_member

# Names drawn from a small set so repeats are common; strings with quotes, colons and braces.
names = st.sampled_from(["a", "b", 'q"', "c:", "{", "é", "\u2028"])
scalars = st.one_of(st.integers(-5, 5), st.text(alphabet='ab":{}\\ é', max_size=6), st.none())
# A JSON value as ("obj", [(name, value), ...]) pairs (repeats allowed), a list, or a scalar.
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(st.tuples(names, inner), max_size=4).map(lambda pairs: ("obj", pairs)),
    ),
    max_leaves=12,
)
layouts = st.sampled_from(
    [
        {"separators": (",", ":"), "ensure_ascii": False},
        {"separators": (", ", ": "), "ensure_ascii": True},
        {"indent": 1, "ensure_ascii": False},
    ]
)


def _dump(value: object, layout: dict[str, object]) -> str:
    if isinstance(value, tuple):
        _, pairs = value
        members = [
            json.dumps(name, **layout)  # type: ignore[arg-type]
            + (":" if layout.get("separators") == (",", ":") else ": ")
            + _dump(inner, layout)
            for name, inner in pairs
        ]
        return "{" + ("," if layout.get("separators") == (",", ":") else ", ").join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(item, layout) for item in value) + "]"
    return json.dumps(value, **layout)  # type: ignore[arg-type]


def _repeats(value: object) -> bool:
    if isinstance(value, tuple):
        pairs = value[1]
        seen = [name for name, _ in pairs]
        return len(seen) != len(set(seen)) or any(_repeats(inner) for _, inner in pairs)
    if isinstance(value, list):
        return any(_repeats(item) for item in value)
    return False


@given(st.lists(st.tuples(names, values), max_size=5), layouts)
def test_a_repeat_is_found_exactly_when_there_is_one(
    pairs: list[object], layout: dict[str, object]
) -> None:
    root = ("obj", pairs)
    raw = _dump(root, layout).encode()
    event = orjson.loads(raw)
    truth = _repeats(root)
    assert (repeated_member(raw, event) is not None) == truth, raw
    # The exact count behind jiter's nesting limit, on the same inputs.
    assert (_counted(raw, event) is not None) == truth, raw


def test_orjsons_own_bytes_skip_the_second_parse() -> None:
    event = {"a": 1, "b": [{"c": 'x":y'}]}
    assert repeated_member(orjson.dumps(event), event) is None


def test_the_detail_names_the_repeated_member_and_where() -> None:
    raw = b'{"a": 1, "b": {"c": 2, "c": 3}}'
    detail = repeated_member(raw, orjson.loads(raw))
    assert detail is not None
    assert '"c"' in detail and "line 1 column" in detail
