import orjson
import pytest

from forwarder.core.batcher import Batcher, body_of
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
