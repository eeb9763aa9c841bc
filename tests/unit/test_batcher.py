import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from forwarder.core.batcher import Batch, Batcher, body_of
from forwarder.core.decode import Event


class _Rec:
    topic = "t"
    partition = 0
    offset = 0
    timestamp = 0
    key = None
    value = b"{}"
    headers = ()


def _event(destination: str = "db.page_view", size: int = 100) -> Event:
    body = orjson.dumps({"pad": "x" * (size - 10)})
    return Event(_Rec(), destination, body, "u")


def test_batch_closes_at_max_events() -> None:
    batcher = Batcher(max_events=3, max_bytes=10_000, linger_s=1.0)
    assert list(batcher.add(_event(), 0.0)) == []
    assert list(batcher.add(_event(), 0.0)) == []
    closed = batcher.add(_event(), 0.0)
    assert len(closed) == 1
    assert len(closed[0]) == 3


def test_batch_closes_before_exceeding_max_bytes_and_size_is_exact() -> None:
    batcher = Batcher(max_events=500, max_bytes=350, linger_s=1.0)
    batcher.add(_event(size=100), 0.0)
    batcher.add(_event(size=100), 0.0)
    closed = batcher.add(_event(size=200), 0.0)
    assert len(closed) == 1
    assert closed[0].size == len(closed[0].body()) <= 350
    assert batcher.pending_events == 1


def test_batches_are_per_destination() -> None:
    batcher = Batcher(max_events=2, max_bytes=10_000, linger_s=1.0)
    batcher.add(_event("db.a"), 0.0)
    assert list(batcher.add(_event("db.b"), 0.0)) == []
    closed = batcher.add(_event("db.a"), 0.0)
    assert [b.destination for b in closed] == ["db.a"]


def test_linger_closes_old_batches_only() -> None:
    batcher = Batcher(max_events=500, max_bytes=10_000, linger_s=0.2)
    batcher.add(_event("db.a"), 0.0)
    batcher.add(_event("db.b"), 0.15)
    assert batcher.next_due() == pytest.approx(0.2)
    assert [b.destination for b in batcher.due(0.25)] == ["db.a"]
    assert batcher.next_due() == pytest.approx(0.35)
    assert [b.destination for b in batcher.drain()] == ["db.b"]
    assert batcher.next_due() is None


def test_body_is_the_events_envelope() -> None:
    events = [_event(size=20), _event(size=30)]
    assert orjson.loads(body_of(events)) == {"events": [orjson.loads(e.body) for e in events]}


def _state(batches: list[Batch]) -> list[tuple[str, list[int], int]]:
    return [(b.destination, [id(e) for e in b.events], b.size) for b in batches]


@settings(max_examples=300)
@given(
    st.integers(1, 6),
    st.integers(40, 600),
    st.lists(st.lists(st.tuples(st.sampled_from("abc"), st.integers(12, 300)), max_size=30)),
)
@example(5, 38, [[("a", 12), ("a", 12), ("a", 12)]])  # two events fill 38 bytes exactly
def test_add_all_closes_the_same_batches_as_adding_one_by_one(
    max_events: int, max_bytes: int, fetches: list[list[tuple[str, int]]]
) -> None:
    one_by_one = Batcher(max_events, max_bytes, linger_s=1.0)
    at_once = Batcher(max_events, max_bytes, linger_s=1.0)
    for fetch in fetches:
        events = [_event(f"db.{d}", size) for d, size in fetch]
        expected = [b for e in events for b in one_by_one.add(e, 0.0)]
        closed = at_once.add_all(events, 0.0)
        # Per destination in the same order; across destinations add_all groups them.
        assert sorted(_state(closed), key=lambda b: b[0]) == sorted(
            _state(expected), key=lambda b: b[0]
        )
        assert all(b.size == len(b.body()) for b in closed)
        assert at_once.pending_events == one_by_one.pending_events
    assert sorted(_state(at_once.drain())) == sorted(_state(one_by_one.drain()))
